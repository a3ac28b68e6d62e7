"""Command line entry point: `console --plan P ...` runs a rollout, `console
SUBCOMMAND ...` the rest. This module only dispatches: each subcommand's
parser and code live in a module of their own, imported when that
subcommand runs, so `console --help`, `console version` and `console
status` start without loading the engine, Textual or asyncssh.

Adding a subcommand: one line in SUBCOMMANDS, either
`"name": Sub("console.x_cli", "", "one line for --help")` (the module
defines `main(argv) -> int` and `parser()`, imported only when used), or a callable
`main(argv) -> int` whose module defines `parser()` (its docstring's first
line is the summary).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any, Callable, NamedTuple, Sequence

from .cli_args import RELEASE_RULE, asks_tool_version, release_spelling
from .exitcodes import MEANING, Exit


class Sub(NamedTuple):
    """A subcommand by reference: `module` defines `main_<name>(argv)` and
    `parser_<name>()` (plain `main` and `parser` when `name` is ""); `verb`
    is passed first to both when one function serves several subcommands
    (pause, promote, abort). (A NamedTuple: the
    dataclasses module alone costs `console --help` a tenth of its start.)"""

    module: str
    name: str
    summary: str
    verb: str | None = None

    def _get(self, kind: str) -> Callable[..., Any]:
        fn = getattr(importlib.import_module(self.module), f"{kind}_{self.name}" if self.name else kind)
        return fn if self.verb is None else (lambda *a: fn(self.verb, *a))

    def main(self, argv: Sequence[str]) -> int:
        return int(self._get("main")(argv))

    def parser(self) -> argparse.ArgumentParser:
        return self._get("parser")()  # type: ignore[no-any-return]


_CONTROL = "console.control.commands"
SUBCOMMANDS: dict[str, Any] = {
    "status": Sub(_CONTROL, "status", "live and recently ended runs; --watch follows them line by line"),
    "attach": Sub(_CONTROL, "attach", "open the TUI on a live run of another process"),
    "pause": Sub(_CONTROL, "command", "pause a live run at its next safe point", "pause"),
    "resume": Sub("console.cli_journal", "resume", "resume a paused live run, or a dead run from its journal"),
    "promote": Sub(_CONTROL, "command", "promote a live run past its pause (--full: skip the remaining steps)",
                   "promote"),
    "rollback": Sub("console.cli_rollback", "rollback", "roll a live run back; or a finished one to the "
                    "previous release (--to VERSION)"),
    "abort": Sub(_CONTROL, "command", "stop a live run at its next safe point, no rollback", "abort"),
    "check": Sub("console.cli_fleet", "check", "pre-deployment checklist against the hosts; changes nothing"),
    "init": Sub("console.cli_plan", "init", "write a commented plan for an inventory, strategy by the decision tree"),
    "recommend": Sub("console.cli_plan", "recommend", "the article's decision tree: which strategy, and why"),
    "lock": Sub("console.cli_lock", "lock", "rollout lock on the load balancers: status, release"),
    "releases": Sub("console.cli_rollback", "releases", "release history of a service, from the journals"),
    "sandbox": Sub("console.cli_fleet", "sandbox", "real systemd-nspawn fleet for trying it out: up, down, status"),
    "replay": Sub("console.cli_journal", "replay", "replay a journal in the TUI, as a timeline, or re-scored"),
    "audit": Sub("console.audit_cli", "", "verify a journal (chain, seal, count, signature); sign one with an SSH key"),
    "completion": Sub("console.cli_completion", "completion", "print a shell completion script: bash, zsh, fish"),
    "version": Sub("console.cli", "version", "print the tool's own version"),
    "judge": Sub("console.judge_cli", "", "the judge offline: `judge backtest` replays recorded samples"),
    "report": Sub("console.report_cli", "", "a recorded session as a report: timeline, verdicts, plots (--html)"),
    "help": Sub("console.cli", "help", "this help, or a subcommand's (`console help status`)"),
}

EXAMPLES = """\
  console --plan examples/rolling.yaml --headless --time-scale 10   # a rollout on the simulated fleet
  console status --watch                                            # follow it from another shell
  console --plan plan.yaml --inventory hosts.ini --limit 'agents:!agent-03' --list-hosts"""


def summary(entry: object) -> str:
    if isinstance(entry, Sub):
        return entry.summary
    return (entry.__doc__ or "").strip().splitlines()[0] if entry.__doc__ else ""


def parser_of(name: str) -> argparse.ArgumentParser:
    """The parser of a subcommand (for help, completion and the tests)."""
    entry = SUBCOMMANDS[name]
    if isinstance(entry, Sub):
        return entry.parser()
    make = getattr(sys.modules[entry.__module__], "parser", None)
    if make is None:  # a module without `parser()`: its name and summary still complete and list
        from .cli_args import Parser

        return Parser(prog=f"console {name}", description=summary(entry))
    return make()  # type: ignore[no-any-return]


def _subcommand_lines() -> str:
    width = max(map(len, SUBCOMMANDS))
    return "\n".join(f"  {name:<{width}}  {summary(entry)}" for name, entry in SUBCOMMANDS.items())


def overview() -> str:
    """What `console` alone prints."""
    return (f"console: roll out a new version of an agent service over SSH (rolling, canary, blue-green).\n\n"
            f"Run a rollout:\n  console --plan FILE [--inventory FILE] [--headless] [--release VERSION]\n\n"
            f"Subcommands (`console SUBCOMMAND --help` for each):\n{_subcommand_lines()}\n\n"
            f"`console --help` adds the rollout's options, exit codes and examples.\n")


def full_help() -> str:
    import textwrap

    from .cli_run import parser_run

    codes = "\n".join(f"  {int(code):>2}  {MEANING[code]}" for code in Exit)
    rule = textwrap.fill(RELEASE_RULE, 100, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
    return (parser_run().format_help() + f"\nsubcommands (`console SUBCOMMAND --help` for each):\n"
            f"{_subcommand_lines()}\n\nexit codes:\n{codes}\n\nthe release flag:\n{rule}\n\n"
            f"examples:\n{EXAMPLES}\n")


def parser_version() -> argparse.ArgumentParser:
    from .cli_args import Parser

    return Parser(prog="console version", description="Print the tool's own version (also `console -V`).")


def main_version(argv: Sequence[str]) -> int:
    from .version import tool_version

    parser_version().parse_args(argv)
    print(f"console {tool_version()}")
    return Exit.OK


def parser_help() -> argparse.ArgumentParser:
    from .cli_args import Parser

    p = Parser(prog="console help", description="Print the full help, or one subcommand's.")
    p.add_argument("subcommand", nargs="?", choices=list(SUBCOMMANDS), metavar="SUBCOMMAND",
                   help="the subcommand to explain (default: everything)")
    return p


def main_help(argv: Sequence[str]) -> int:
    args = parser_help().parse_args(argv)
    if args.subcommand is None:
        sys.stdout.write(full_help())
    else:
        parser_of(args.subcommand).print_help()
    return Exit.OK


def _dispatch(argv: list[str]) -> int:
    if not argv:
        sys.stdout.write(overview())
        return Exit.OK
    if argv[0] in SUBCOMMANDS:
        entry, rest = SUBCOMMANDS[argv[0]], argv[1:]
        if argv[0] == "check":  # the other command with --release (the run's is below)
            if asks_tool_version(rest):
                return main_version([])
            rest = release_spelling(rest)
        return int(entry.main(rest) if isinstance(entry, Sub) else entry(rest))
    if not argv[0].startswith("-"):
        import difflib

        close = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1)
        print(f"console: error: unknown subcommand {argv[0]!r}" + (f"; did you mean {close[0]}?" if close else "")
              + " (`console` lists them)", file=sys.stderr)
        return Exit.BAD_INPUT
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(full_help())
        return Exit.OK
    if asks_tool_version(argv):
        return main_version([])
    from .cli_run import main_run

    return main_run(release_spelling(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """Every path ends in an exit code and at most a line on stderr: Ctrl-C
    at a prompt and a closed stdout (`console --help | head -1`) included."""
    try:
        code = _dispatch(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit where Python reports it
        return code
    except KeyboardInterrupt:
        print("\nconsole: interrupted", file=sys.stderr)
        return Exit.ABORTED
    except BrokenPipeError:
        from .headless import silence

        silence(sys.stdout)  # the reader left: nothing more to say, and no error at exit
        return Exit.OK
    except Exception as exc:  # noqa: BLE001 - a bug: one line and exit 1; the traceback on request
        if os.environ.get("ROLLOUT_DEBUG"):
            raise
        print(f"console: internal error: {exc!r} (a bug: ROLLOUT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return Exit.INTERNAL
