"""Exit codes, one per thing a script may want to branch on (README: Exit codes)."""
import enum

from strategies.engine import Outcome


class Exit(enum.IntEnum):
    OK = 0            # success
    INTERNAL = 1      # a bug or an unexpected error
    BAD_INPUT = 2     # bad plan, inventory or flags; nothing touched
    ROLLED_BACK = 3   # rolled back; the fleet is on the old version
    FAILED = 4        # failed; needs a human
    ABORTED = 5       # aborted or interrupted at a safe point
    REFUSED = 6       # preflight or lock refused; nothing touched
    PAUSED = 7        # paused awaiting promotion
    # `console pause|resume|promote|rollback|abort|status|attach`, talking to a live run:
    NOT_ACCEPTED = 8  # the run refused the command (it does not apply now); the reason is printed
    NO_RUN = 9        # no live run matches (or it ended before answering)
    DENIED = 10       # the run's control socket refused this user (not its owner, not root)
    NOT_CONFIRMED = 11  # a destructive command was not confirmed; nothing was sent


FOR_OUTCOME = {
    Outcome.SUCCEEDED: Exit.OK,
    Outcome.ROLLED_BACK: Exit.ROLLED_BACK,
    Outcome.FAILED: Exit.FAILED,
    Outcome.ABORTED: Exit.ABORTED,
    Outcome.REFUSED: Exit.REFUSED,
    Outcome.AWAITING_PROMOTION: Exit.PAUSED,
}
