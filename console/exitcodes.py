"""Exit codes, one per thing a script may want to branch on (docs/cli.md:
Exit codes). Light on purpose: `console --help` prints them without
importing the engine (the outcome mapping lives in console/session.py)."""
import enum


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


MEANING = {
    Exit.OK: "success",
    Exit.INTERNAL: "a bug or an unexpected error",
    Exit.BAD_INPUT: "bad plan, inventory or flags; nothing touched",
    Exit.ROLLED_BACK: "rolled back; the fleet is on the old version",
    Exit.FAILED: "failed; needs a human",
    Exit.ABORTED: "aborted or interrupted at a safe point",
    Exit.REFUSED: "preflight, check or lock refused; nothing touched",
    Exit.PAUSED: "paused awaiting promotion",
    Exit.NOT_ACCEPTED: "a live run refused the command (it does not apply now)",
    Exit.NO_RUN: "no live run matches",
    Exit.DENIED: "the run's control socket refused this user",
    Exit.NOT_CONFIRMED: "a command that asks for confirmation was not confirmed; nothing sent",
}
