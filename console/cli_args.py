"""What every subcommand's parser shares: the one-line-error parser, value
types, and the flag groups several commands take (inputs, live, lock).

Imports nothing heavy: `console --help` and `console status` build parsers
from here without loading the engine, Textual or asyncssh.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence, TypedDict, TypeVar

from .exitcodes import Exit

RELEASE_RULE = ("`--release VERSION` names the release to ship. The old spelling `--version VALUE` still "
                "means the release when a value follows it; `--version` alone (last, or before another "
                "option) prints the tool's own version, like `-V` and `console version`.")


class Parser(argparse.ArgumentParser):
    """argparse, but every usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(Exit.BAD_INPUT)


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    return value


N = TypeVar("N", int, float)


def number_in(low: float, high: float, kind: Callable[[str], N], what: str = "a number") -> Callable[[str], N]:
    """An argparse type: a `kind` number from low to high inclusive."""
    def convert(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {text!r}")
        return value
    return convert


seconds = number_in(0, 86400, float, "seconds")


def journal_error(prog: str, exc: OSError) -> int:
    """A run's journal could not be made: --record names an existing file
    (bad input), or the directory refuses it (nothing touched)."""
    if isinstance(exc, FileExistsError):
        print(f"{prog}: error: --record: {exc.filename} already exists", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"{prog}: refused: cannot create the journal {exc.filename or ''}: {exc.strerror or exc}; "
          f"nothing touched", file=sys.stderr)
    return Exit.REFUSED


def ask(p: argparse.ArgumentParser, question: str, yes: bool) -> bool:
    """A yes/no question before a command acts: True with --yes; a usage
    error when nobody can answer (stdin not a terminal); Ctrl-C and Ctrl-D
    answer no."""
    if yes:
        return True
    if not sys.stdin.isatty():
        p.error(f"{p.prog.split()[-1]} asks for confirmation; stdin is not a terminal: pass --yes")
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except (EOFError, KeyboardInterrupt):
        print()
        return False


def release_spelling(argv: Sequence[str]) -> list[str]:
    """The old `--version VALUE` spelling rewritten to `--release VALUE`
    (RELEASE_RULE); a bare `--version` is left for the caller (the tool's
    version)."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg.startswith("--version="):
            out[i] = "--release=" + arg.split("=", 1)[1]
        elif arg == "--version" and i + 1 < len(out) and not out[i + 1].startswith("-"):
            out[i] = "--release"
    return out


def asks_tool_version(argv: Sequence[str]) -> bool:
    """`-V`, or `--version` with no value after it (RELEASE_RULE)."""
    return any(a == "-V" or a == "--version" for a in release_spelling(argv))


def add_input_flags(p: argparse.ArgumentParser, *, plan_required: bool = True, release: bool = True) -> None:
    """--plan, --inventory, --release (old: --version VALUE), --limit."""
    p.add_argument("--plan", required=plan_required, metavar="FILE",
                   help="plan YAML (native form or the seed's *_deployment: blocks)")
    p.add_argument("--inventory", metavar="FILE",
                   help="Ansible-style inventory (YAML or INI); default: the embedded SIMULATED fleet")
    if release:
        p.add_argument("--release", metavar="VERSION",
                       help="release to ship (sets or overrides the plan's); the old spelling `--version VERSION` "
                            "still works")
    p.add_argument("--limit", metavar="PATTERN",
                   help="only these hosts, in Ansible's pattern syntax: `web*`, `g1:g2`, `g1:&g2`, `g1:!h3`, "
                        "`~regex`, `@file` (the load balancers are always kept); the upstream's other instances "
                        "keep serving, untouched (docs/cli.md)")


def add_live_flags(p: argparse.ArgumentParser) -> None:
    from .detach import DEFAULT_ON_HANGUP, HANGUP_POLICIES

    p.add_argument("--detach", action="store_true", help="run in the background (new session, no terminal "
                   "output; journal and control socket only): follow with `console attach`")
    p.add_argument("--on-hangup", choices=HANGUP_POLICIES, default=DEFAULT_ON_HANGUP,
                   help=f"when the terminal hangs up (SIGHUP): stop at the next safe point, or detach and go on "
                        f"(default {DEFAULT_ON_HANGUP})")
    p.add_argument("--wait-for-promotion", action="store_true",
                   help="headless: at an indefinite pause, wait for `console promote` or `console rollback` "
                        "instead of exiting 7")


def add_lock_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-wait", type=seconds, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for another console's rollout lock (default: refuse at once)")
    p.add_argument("--break-stale-lock", action="store_true",
                   help="remove a rollout lock whose holder is gone or sent no heartbeat for --lock-max-age")
    p.add_argument("--lock-max-age", type=positive, default=120.0, metavar="SECONDS",
                   help="a lock without heartbeat for this long is stale (default 120)")


def add_output_flags(p: argparse.ArgumentParser, *, headless: bool = True) -> None:
    if headless:
        p.add_argument("--headless", action="store_true",
                       help="no TUI: print one line per event, exit with a meaningful code")
    p.add_argument("--output", choices=["text", "json"], default="text",
                   help="text lines for people, or JSON Lines for scripts (default text)")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="text: also print each remote command that succeeded (a failed one always prints; "
                        "the journal and JSON keep every one)")


class LockOptions(TypedDict):
    """The lock flags, as Session takes them."""

    lock_wait: float
    break_stale_lock: bool
    lock_max_age: float


def lock_kwargs(args: argparse.Namespace) -> LockOptions:
    return {"lock_wait": args.lock_wait, "break_stale_lock": args.break_stale_lock,
            "lock_max_age": args.lock_max_age}


def interactive(args: argparse.Namespace) -> bool:
    """Whether the engine waits for an operator at indefinite pauses."""
    return not (args.headless or args.detach) or args.wait_for_promotion
