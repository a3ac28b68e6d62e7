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


FOR_OUTCOME = {
    Outcome.SUCCEEDED: Exit.OK,
    Outcome.ROLLED_BACK: Exit.ROLLED_BACK,
    Outcome.FAILED: Exit.FAILED,
    Outcome.ABORTED: Exit.ABORTED,
    Outcome.REFUSED: Exit.REFUSED,
    Outcome.AWAITING_PROMOTION: Exit.PAUSED,
}
