"""The subcommands that read a session journal: `console audit`, `console
replay` and `console resume` (which also resumes a paused live run)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .cli_args import Parser, add_live_flags, add_lock_flags, add_output_flags, number_in, positive
from .exitcodes import Exit
from .trust_flag import add_trust_flag


def parser_replay() -> argparse.ArgumentParser:
    p = Parser(prog="console replay", description="Replay a recorded session: in the TUI (default), "
               "as a timeline (--headless), its status at a time (--status [--at SECONDS]: the record "
               "`console status` prints for a live run), or re-scored against other thresholds (--thresholds).")
    p.add_argument("journal", metavar="JOURNAL", help="the session journal (.jsonl) to replay")
    p.add_argument("--headless", action="store_true", help="print the timeline instead of opening the TUI")
    add_output_flags(p, headless=False)
    p.add_argument("--thresholds", metavar="FILE", help="YAML with a thresholds: block to re-score against")
    p.add_argument("--status", action="store_true",
                   help="print the run's status rebuilt from the journal's events (text, or JSON with --output json)")
    p.add_argument("--at", type=number_in(0, float("inf"), float, "seconds"), metavar="SECONDS",
                   help="with --status: as it stood this many seconds into the run (default: at its end)")
    return p


def main_replay(argv: Sequence[str]) -> int:
    p = parser_replay()
    args = p.parse_args(argv)
    if args.at is not None and not args.status:
        p.error("--at applies only with --status")
    if args.status and (args.thresholds or args.headless):
        p.error("--status prints the status alone: not with --headless or --thresholds")
    from inventory.errors import InputError
    from strategies.plan import load_thresholds

    from .journal import read_journal
    from .replay import print_status, print_timeline, rescore

    try:
        journal = read_journal(Path(args.journal))
        thresholds = load_thresholds(args.thresholds) if args.thresholds else None
    except (FileNotFoundError, IsADirectoryError) as exc:
        print(f"console replay: error: {exc.filename}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    except (ValueError, InputError) as exc:
        print(f"console replay: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    if args.status:
        print_status(journal, args.journal, args.at, args.output)
        return Exit.OK
    if thresholds is not None:
        verdict = rescore(journal.events, thresholds)
        if verdict is None:
            print("what-if: these thresholds would not have stopped this rollout")
        else:
            print(f"what-if: would have stopped at {verdict.gate} at {verdict.at:.1f}s: {'; '.join(verdict.reasons)}")
        return Exit.OK
    if args.headless:
        print_timeline(journal, args.output)
        return Exit.OK
    from .tui.app import run_replay

    return int(run_replay(journal))


def parser_resume() -> argparse.ArgumentParser:
    p = Parser(prog="console resume", description="Continue (or roll back) a rollout whose console died "
               "or stopped, from its JOURNAL: every host is inspected and made safe first. With no "
               "argument, or a live run's id, resume that paused live run instead (as the TUI's key does).")
    p.add_argument("journal", nargs="?", metavar="JOURNAL|RUN",
                   help="the journal of a run that died or stopped; or a live run's id, pid, upstream or plan "
                        "(default: the only live run, which must be paused)")
    p.add_argument("--rollback", action="store_true", help="roll back instead of continuing (journal resume)")
    add_output_flags(p)
    p.add_argument("--record", metavar="FILE", help="journal path of the resumed session (default: see docs/cli.md)")
    p.add_argument("--time-scale", type=positive, default=1.0, metavar="N",
                   help="simulated fleet only: run its clock N times faster")
    p.add_argument("--auto-promote", action="store_true", help="headless: continue through indefinite pauses")
    add_live_flags(p)
    add_lock_flags(p)
    add_trust_flag(p)
    return p


def main_resume(argv: Sequence[str]) -> int:
    """`console resume JOURNAL` picks up a dead run; `console resume [RUN]`
    resumes a paused live one (a JOURNAL of a live run means that run)."""
    from .control.commands import main_command, names_live_run

    if names_live_run(argv):
        return main_command("resume", argv)
    p = parser_resume()
    args = p.parse_args(argv)
    if args.journal is None:
        p.error("these options resume from a journal: name the JOURNAL (`console resume` alone resumes a "
                "paused live run)")
    return resume_journal(args, argv)


def resume_journal(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from inventory.errors import InputError
    from strategies.control import Command

    from .cli_args import interactive, journal_error, lock_kwargs
    from .cli_run import drive
    from .resume import NothingToResume, ResumeRefused, load_resume
    from .session import Session

    try:
        inputs, state = load_resume(args.journal)
        session = Session(inputs, argv=["console", "resume", *argv], record=args.record,
                          time_scale=args.time_scale, interactive=interactive(args),
                          auto_promote=args.auto_promote, resume=state, **lock_kwargs(args))
    except (FileNotFoundError, IsADirectoryError):
        print(f"console resume: error: {args.journal}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    except NothingToResume as exc:
        print(f"console resume: {exc}")
        return Exit.OK
    except ResumeRefused as exc:
        print(f"console resume: refused: {exc}", file=sys.stderr)
        return Exit.REFUSED
    except (InputError, ValueError) as exc:
        print(f"console resume: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except OSError as exc:
        return journal_error("console resume", exc)
    if args.rollback:
        session.command(Command.ROLLBACK, source="cli resume --rollback")
    elif state.status.rollback:  # what was judged bad is never shipped by a resume
        print(f"console resume: the session was rolling back ({state.status.rollback}): this resume finishes "
              "the rollback", file=sys.stderr)
        session.command(Command.ROLLBACK, source=f"resume: the session was rolling back ({state.status.rollback})")
    return drive(session, args)
