"""`console rollback`: of a live run, the TUI's rollback key (as before); of
a finished run, a new rollout of the release the fleet ran before, taken
from the release history the journals keep (console/releases.py), as
Kamal's `rollback VERSION` and Argo's `undo`. And `console releases`,
that history.

Which one: `--plan` or `--to` always mean a finished run; otherwise a live
run when one matches, else the most recent succeeded run's fleet (its plan
and inventory from its journal). A finished-run rollback asks for
confirmation (a terminal's y, or --yes) before it touches anything.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .releases import Release

from .cli_args import Parser, add_input_flags, add_live_flags, add_lock_flags, add_output_flags, ask, positive
from .exitcodes import Exit
from .trust_flag import add_trust_flag


def parser_rollback() -> argparse.ArgumentParser:
    from .control.commands import add_command_args

    p = Parser(prog="console rollback", description="Roll back. A live run: at its next safe point, as the "
               "TUI's key does. A finished run (no live run, or --plan / --to): ship the release the fleet "
               "ran before its last successful rollout, or --to VERSION, taken from the journals' release "
               "history (`console releases`), as a new rollout of the same plan.")
    add_command_args(p, "rollback")
    p.add_argument("--to", metavar="VERSION", help="finished run: the release to go back to (default: the one "
                   "before the fleet's last successful rollout); it must be in the fleet's history")
    add_input_flags(p, plan_required=False, release=False)
    p.add_argument("--journals", metavar="DIR", help="where to read the history (default: the journal "
                   "directory, see docs/cli.md)")
    add_output_flags(p)
    p.add_argument("--dry-run", action="store_true", help="finished run: print the steps and commands; touch nothing")
    p.add_argument("--record", metavar="FILE", help="journal path of the rollback's session")
    p.add_argument("--time-scale", type=positive, default=1.0, metavar="N",
                   help="simulated fleet only: run its clock N times faster")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust and record unknown SSH host keys (changed keys are always refused)")
    add_live_flags(p)
    add_lock_flags(p)
    add_trust_flag(p)
    p.set_defaults(list_hosts=False, auto_promote=False, judge_shadow=False)
    return p


def _live(args: argparse.Namespace) -> bool:
    """Whether this rollback is for a live run (ControlError when the runs
    cannot be listed: that is said, not guessed around)."""
    if args.to or args.plan:
        return False
    from .control.client import live_runs
    from .control.runs import matches

    return any(args.run is None or matches(s, args.run) for _p, s in live_runs())


def main_rollback(argv: Sequence[str]) -> int:
    from .control.client import ControlError
    from .control.commands import send_verb
    from .control.errors import report_error

    p = parser_rollback()
    args = p.parse_args(argv)
    try:
        live = _live(args)
    except ControlError as exc:
        return report_error(exc)
    if live:
        return send_verb(p, "rollback", args)
    return rollback_finished(p, args, argv)


def _names(selector: str | None) -> set[str]:
    """What a RUN selector may be for a finished run: itself (a service or
    a journal path), and the journal of a run that ended in the last day
    whose id, pid, plan or upstream it names (`console status` lists them)."""
    if selector is None:
        return set()
    from .control.client import ControlError, finished_runs
    from .control.runs import matches

    try:
        ended = [str(Path(s["journal"]).resolve()) for s in finished_runs() if matches(s, selector)]
    except ControlError:
        ended = []
    return {selector, str(Path(selector).resolve()), *ended}


def _target(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Release, str, str, str]:
    """(last succeeded release, target version, plan, inventory)."""
    from .releases import history, last_success, of_fleet, shipped

    every = history(Path(args.journals) if args.journals else None)
    if args.plan:
        from .session import read_plan_and_inventory

        plan, _inv, inv_path = read_plan_and_inventory(args.plan, args.inventory, None)
        fleet = of_fleet(every, plan.service, inv_path)
        plan_path = args.plan
    else:
        names = _names(args.run)
        last = last_success(r for r in every if args.run is None or names & {r.service, r.journal})
        if last is None:
            p.error(f"no live run{' matches ' + repr(args.run) if args.run else ''}, and no succeeded run "
                    f"{'of it ' if args.run else ''}in the journals to roll back: name one with --plan")
        fleet, plan_path, inv_path = of_fleet(every, last.service, last.inventory), last.plan, last.inventory
    current = last_success(fleet)
    if current is None:
        p.error(f"the journals hold no succeeded rollout of this plan's service on {inv_path}: nothing to roll back")
    target = args.to or current.previous
    if not target:
        p.error(f"the last rollout ({current.journal}) found nothing installed before it: name a release with --to")
    if target not in shipped(fleet):
        p.error(f"--to {target}: this fleet never ran it (its journals know {', '.join(sorted(shipped(fleet)))}); "
                f"to ship a new release use `console --plan {plan_path} --release {target}`")
    return current, target, plan_path, inv_path


def rollback_finished(p: argparse.ArgumentParser, args: argparse.Namespace, argv: Sequence[str]) -> int:
    from inventory.errors import InputError

    from .cli_run import start_run
    from .session import UsageError

    try:
        current, target, plan_path, inv_path = _target(p, args)
    except (InputError, UsageError) as exc:
        print(f"console rollback: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    print(f"rollback: {current.service} on {inv_path}: {current.version} -> {target} "
          f"(last succeeded rollout {current.started}, journal {current.journal})", file=sys.stderr)
    if target == current.version:
        print(f"rollback: the fleet already runs {target}; nothing to do")
        return Exit.OK
    if not ask(p, f"Roll {current.service} back from {current.version} to {target} with {plan_path}?",
               args.yes or args.dry_run):
        print("rollback: not confirmed; nothing touched")
        return Exit.NOT_CONFIRMED
    args.plan, args.inventory, args.release = plan_path, inv_path, target
    return start_run(args, ["rollback", *argv], prog="console rollback")


def parser_releases() -> argparse.ArgumentParser:
    p = Parser(prog="console releases", description="The release history the journals keep: when each "
               "run started, the service, from which release to which, and how it ended.")
    p.add_argument("--journals", metavar="DIR", help="where to read it (default: the journal directory)")
    p.add_argument("--service", metavar="NAME", help="only this service")
    return p


def main_releases(argv: Sequence[str]) -> int:
    args = parser_releases().parse_args(argv)
    from .releases import history

    rows = [r for r in history(Path(args.journals) if args.journals else None)
            if args.service is None or r.service == args.service]
    for r in rows:
        print(r.line())
    if not rows:
        print("no release recorded" + (f" for {args.service}" if args.service else ""))
    return Exit.OK
