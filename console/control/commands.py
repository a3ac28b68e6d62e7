"""`console status`, `console pause|resume|promote|rollback|abort` and
`console attach`: the clients an operator runs from any shell."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ..cli_args import Parser, ask, positive
from ..exitcodes import Exit
from ..status_record import EndedRun, StatusRecord, has_ended
from ..status_text import gate_text, phase_text, weights_text
from .client import ControlError, ask_command, find_run, finished_runs, live_runs, status_of
from .errors import report_error, report_malformed, report_stale
from .runs import matches

CONFIRM = {"rollback": "Roll back?", "abort": "Abort?"}
VERBS = ("pause", "resume", "promote", "rollback", "abort")


def describe_run(s: StatusRecord | EndedRun) -> str:
    """A few lines on one run, live or ended."""
    label = " SIMULATED" if s["simulated"] else ""
    lines = [f"{s['run_id']}  pid {s['pid']}  {s['user']}{label}",
             f"  plan {s['plan']} ({s['strategy']}, upstream {s['upstream']}): "
             f"{s['old_version'] or '?'} -> {s['version']}"]
    if has_ended(s):
        lines.append(f"  ENDED {s['outcome']} (exit {s['exit_code']}): {s['message']}")
    else:
        lines.append(f"  {phase_text(s)}")
        lines.append(f"  gate {gate_text(s)}  weights {weights_text(s)}  elapsed {s['elapsed']:.1f}s  "
                     f"viewers {s['viewers']}")
    lines.append(f"  journal {s['journal']}")
    return "\n".join(lines)


def brief_line(s: EndedRun, now: float) -> str:
    """One line on an ended run, for the list under the live ones."""
    ago = max(0.0, now - s["ended"])
    when = f"{ago:.0f}s" if ago < 60 else f"{ago / 60:.0f} min" if ago < 3600 else f"{ago / 3600:.1f} h"
    label = " SIMULATED" if s["simulated"] else ""
    return f"  {s['run_id']}{label}  {when} ago  {s['outcome']} (exit {s['exit_code']}): {s['message']}"


def print_status(live: list[StatusRecord], ended: list[EndedRun], everything: bool, named: bool) -> None:
    """Live runs in full; ended ones a line each, the last hour's few
    unless `everything`; a run asked for by name in full, ended or not."""
    import time

    from .runs import RECENT, RECENT_MOST, recent_ended

    if named:
        for s in live + ended:
            print(describe_run(s))
        return
    for s in live:
        print(describe_run(s))
    if not live:
        print("no live run")
    now = time.time()
    shown, left_out = recent_ended(ended, now, everything)
    if shown:
        print(f"ended{'' if everything else f' in the last {RECENT // 60} min'} (newest first; "
              f"`console status RUN` for one in full):")
        for s in shown:
            print(brief_line(s, now))
    if left_out:
        print(f"{left_out} more ended run(s) not listed (older than {RECENT // 60} min, or past the "
              f"newest {RECENT_MOST}): `console status --all`")


def parser_status() -> argparse.ArgumentParser:
    p = Parser(prog="console status", description="Live runs of this user in full: plan, strategy, versions, "
               "phase, step, gate, weights, elapsed, controller pid; then the runs that ended in the last hour "
               "(the newest five), a line each. --all lists every ended run kept (a day); naming a run shows "
               "it in full. --watch follows them: one line per change, plain text (an SSH session, a CI log); "
               "it ends when the runs it follows have ended, with the exit code of the one it followed.")
    p.add_argument("run", nargs="?", help="run id, pid, upstream, plan or journal path (default: all)")
    p.add_argument("--all", "-a", action="store_true", dest="everything",
                   help="list every ended run of the last day, not only the last hour's newest five")
    p.add_argument("--output", choices=["text", "json"], default="text",
                   help="text for people, or JSON for scripts (with --watch: one JSON object per change)")
    p.add_argument("--watch", "-w", action="store_true", help="follow the runs: a line per change until they end")
    p.add_argument("--interval", type=positive, default=1.0, metavar="SECONDS",
                   help="with --watch: how often to ask the runs (default 1)")
    return p


def runs_named(selector: str | None) -> tuple[list[StatusRecord], list[EndedRun]]:
    """(live, ended) runs `selector` names (all when None); a malformed
    answer or result file is a line on stderr and left out."""
    live = [s for _p, s in live_runs(report_stale, report_malformed) if selector is None or matches(s, selector)]
    ended = [s for s in finished_runs(report_malformed) if selector is None or matches(s, selector)]
    return live, ended


def main_status(argv: Sequence[str]) -> int:
    args = parser_status().parse_args(argv)
    try:
        if args.watch:
            from .watch import watch

            return watch(lambda: runs_named(args.run), args.run, args.interval, args.output)
        live, ended = runs_named(args.run)
    except ControlError as exc:
        return report_error(exc)
    if args.output == "json":  # for scripts: every kept ended run, whatever --all says
        print(json.dumps({"live": live, "ended": ended}, separators=(",", ":")))
    elif args.run and not live and not ended:
        print(f"no live run matches {args.run!r}")
    else:
        print_status(live, ended, args.everything, named=args.run is not None)
    return Exit.OK if live or ended or args.run is None else Exit.NO_RUN


def _confirm(p: argparse.ArgumentParser, verb: str, status: StatusRecord) -> bool:
    """The TUI dialog's question and sentence, then a yes/no (cli_args.ask)."""
    title = CONFIRM[verb]
    if sys.stdin.isatty():
        what = status["rollback_plan"] if verb == "rollback" else status["abort_plan"]
        print(f"{title} {status['run_id']} ({status['plan']})\n{what}")
    return ask(p, f"{title[:-1]} now?", False)


def parser_command(verb: str) -> argparse.ArgumentParser:
    p = Parser(prog=f"console {verb}", description=f"Send `{verb}` to a live run, as its key in the TUI does; "
               "it acts at the run's next safe point. Answers accepted, or refused and why.")
    add_command_args(p, verb)
    return p


def add_command_args(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("run", nargs="?", help="run id, pid, upstream, plan, journal path or socket "
                   "(default: the only live run)")
    if verb == "promote":
        p.add_argument("--full", action="store_true", help="skip the remaining steps")
    if verb in CONFIRM:
        p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (scripts)")


def main_command(verb: str, argv: Sequence[str]) -> int:
    p = parser_command(verb)
    return send_verb(p, verb, p.parse_args(argv))


def send_verb(p: argparse.ArgumentParser, verb: str, args: argparse.Namespace) -> int:
    command = "promote_full" if getattr(args, "full", False) else verb
    try:
        path, status = find_run(args.run, report_stale, report_malformed)
        if verb in CONFIRM and not args.yes:
            if not _confirm(p, verb, status or status_of(path)):
                print(f"{verb}: not confirmed; nothing sent")
                return Exit.NOT_CONFIRMED
        reply = ask_command(path, command)
    except ControlError as exc:
        return report_error(exc)
    detail = f" ({reply['detail']})" if reply["detail"] else ""
    if reply["accepted"]:
        print(f"accepted: {command}{detail}")
        return Exit.OK
    print(f"refused: {command}{detail}")
    return Exit.NOT_ACCEPTED


def names_live_run(argv: Sequence[str]) -> bool:
    """Whether `console resume ARGV` means a live run: no journal-resume
    flag, and either nothing named, or what is named is not a file, or it
    is a live run's journal."""
    if any(a.startswith("--") and a != "--help" for a in argv):
        return False
    positional = [a for a in argv if not a.startswith("-")]
    if not positional:
        return not any(a in ("-h", "--help") for a in argv)
    target = positional[0]
    if not Path(target).is_file():
        return True
    try:
        return any(matches(s, target) for _p, s in live_runs())
    except ControlError:
        return False  # no runs to ask: the file is a journal


def parser_attach() -> argparse.ArgumentParser:
    p = Parser(prog="console attach", description="Open the TUI on a live run (another process's): state "
               "from its journal, then its live events. Several viewers may attach; `q` leaves, the run goes on.")
    p.add_argument("run", nargs="?", help="run id, pid, upstream, plan, journal path or socket "
                   "(default: the only live run)")
    return p


def main_attach(argv: Sequence[str]) -> int:
    args = parser_attach().parse_args(argv)
    from .attach import main_attach as attach

    return attach(args.run)
