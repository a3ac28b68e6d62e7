"""Command line: `console --plan P [--inventory I] [--headless]` and the
subcommands (sandbox, replay, audit, recommend). Bad flags or inputs print
one line and exit 2 before anything touches a host."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from inventory.errors import InputError

from .exitcodes import Exit


class _Parser(argparse.ArgumentParser):
    """argparse, but every usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(Exit.BAD_INPUT)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than zero, got {text!r}")
    return value


def run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="console", description="Roll out a new version of an agent service: rolling, canary "
                "or blue-green, over SSH, in a TUI or headless. Subcommands: sandbox, replay, audit, recommend.")
    p.add_argument("--plan", required=True, help="plan YAML (native form or the seed's *_deployment: blocks)")
    p.add_argument("--inventory", help="Ansible-style inventory (YAML or INI); default: the embedded SIMULATED fleet")
    p.add_argument("--version", dest="release", metavar="VERSION", help="release to ship (sets or overrides the plan's)")
    p.add_argument("--headless", action="store_true", help="no TUI: print events, exit with a meaningful code")
    p.add_argument("--output", choices=["text", "json"], default="text", help="headless output format")
    p.add_argument("--dry-run", action="store_true", help="print the steps and commands; touch nothing")
    p.add_argument("--record", metavar="FILE", help="journal path (default: see README, 'Journals')")
    p.add_argument("--time-scale", type=_positive, default=1.0, help="simulated fleet only: run its clock N times faster")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust and record unknown SSH host keys (changed keys are always refused)")
    p.add_argument("--auto-promote", action="store_true", help="headless: continue through indefinite pauses")
    p.add_argument("--judge-shadow", action="store_true", help="the judge records every verdict and acts on none "
                   "(the plan's analysis.shadow); see docs/judge.md")
    add_live_flags(p)
    add_lock_flags(p)
    return p


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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400, got {text!r}")
    return value


def add_lock_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lock-wait", type=_seconds, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for another console's rollout lock (default: refuse at once)")
    p.add_argument("--break-stale-lock", action="store_true",
                   help="remove a rollout lock whose holder is gone or sent no heartbeat for --lock-max-age")
    p.add_argument("--lock-max-age", type=_positive, default=120.0, metavar="SECONDS",
                   help="a lock without heartbeat for this long is stale (default 120)")


def _lock_kwargs(args) -> dict:
    return {"lock_wait": args.lock_wait, "break_stale_lock": args.break_stale_lock,
            "lock_max_age": args.lock_max_age}


def dry_run(inputs) -> int:
    from strategies.plan import render_commands, summary
    from strategies.registry import runner_for
    from strategies.topology import resolve_instances

    plan = inputs.plan
    instances = {i.key: i for i in resolve_instances(plan, inputs.inventory)}
    print(f"DRY RUN (nothing is touched): {summary(plan)}")
    print(f"inventory {inputs.inventory_path}: {len(instances)} instance(s)"
          + (" [SIMULATED]" if inputs.inventory.simulated else "")
          + (f", read by {inputs.inventory.engine}" if inputs.inventory_given else ""))
    for n, step in enumerate(runner_for(plan).steps(plan, list(instances.values())), 1):
        print(f"step {n}: {step.title}" + (f": {', '.join(step.instances)}" if step.instances else ""))
        for key in step.instances:
            inst = instances.get(key)
            if inst is None:
                continue
            for command in render_commands(plan, inputs.version, inst.slot, inst.host.name):
                print(f"  {inst.host.name}$ {command}")
            print(f"  {inst.host.name}$ systemctl restart {inst.unit}")
    return Exit.OK


def drive(session, args) -> int:
    """Run a built session headless (or detached) or in the TUI; the exit code."""
    if args.headless or args.detach:
        from .session import run_headless

        return run_headless(session, args.output, on_hangup=args.on_hangup, detach=args.detach)
    from .tui.app import run_app

    return run_app(session, on_hangup=args.on_hangup)


def _interactive(args) -> bool:
    """Whether the engine waits for an operator at indefinite pauses."""
    return not (args.headless or args.detach) or args.wait_for_promotion


def main_run(argv: Sequence[str]) -> int:
    from .session import Session, UsageError, load_inputs

    args = run_parser().parse_args(argv)
    try:
        inputs = load_inputs(args.plan, args.inventory, args.release, judge_shadow=args.judge_shadow)
        if args.dry_run:
            return dry_run(inputs)
        session = Session(inputs, argv=["console", *argv], record=args.record, time_scale=args.time_scale,
                          accept_new_host_keys=args.accept_new_host_keys, interactive=_interactive(args),
                          auto_promote=args.auto_promote, **_lock_kwargs(args))
    except (InputError, UsageError) as exc:
        print(f"console: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except FileExistsError as exc:
        print(f"console: error: --record: {exc.filename} already exists", file=sys.stderr)
        return Exit.BAD_INPUT
    except OSError as exc:
        print(f"console: refused: cannot create the journal {exc.filename or ''}: {exc.strerror or exc}; "
              f"nothing touched", file=sys.stderr)
        return Exit.REFUSED
    return drive(session, args)


def main_sandbox(argv: Sequence[str]) -> int:
    p = _Parser(prog="console sandbox", description="Real sandbox fleet: systemd-nspawn hosts with sshd, "
                "systemd and nginx (Linux, root).")
    sub = p.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="boot N agent hosts and one nginx LB; prints the inventory path last")
    up.add_argument("--hosts", type=int, default=6)
    up.add_argument("--install-deps", action="store_true",
                    help="apt-get install the missing Debian packages instead of naming them")
    sub.add_parser("down", help="remove every container, mount and interface the sandbox made")
    sub.add_parser("status", help="list the sandbox hosts")
    rel = sub.add_parser("release", help="define how a release behaves on the sandbox hosts")
    rel.add_argument("version")
    rel.add_argument("--behaviour", default="{}", help='JSON, e.g. {"error_rate": 0.05}')
    args = p.parse_args(argv)
    from inventory import sandbox

    try:
        if args.action == "up":
            if not 1 <= args.hosts <= 60:
                p.error("--hosts must be between 1 and 60")
            print(sandbox.up(hosts=args.hosts, install_deps=args.install_deps))
        elif args.action == "down":
            sandbox.down()
        elif args.action == "status":
            for row in sandbox.status():
                print(f"{row['name']:10} {row['ip']:12} pid {row['pid']} {'running' if row['running'] else 'stopped'}")
        elif args.action == "release":
            try:
                behaviour = json.loads(args.behaviour)
            except json.JSONDecodeError as exc:
                p.error(f"--behaviour: not JSON: {exc}")
            sandbox.write_release(None, args.version, behaviour)
    except sandbox.SandboxError as exc:
        print(f"console sandbox: error: {exc}", file=sys.stderr)
        return Exit.REFUSED
    return Exit.OK


def main_audit(argv: Sequence[str]) -> int:
    p = _Parser(prog="console audit", description="Check a session journal's hash chain.")
    sub = p.add_subparsers(dest="action", required=True)
    v = sub.add_parser("verify", help="verify the chain; names the first broken record")
    v.add_argument("journal")
    args = p.parse_args(argv)
    from .journal import verify

    if not Path(args.journal).is_file():
        print(f"console audit: error: {args.journal}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    result = verify(Path(args.journal))
    print(("OK " if result.ok else "BROKEN ") + result.message + (f" final {result.final_hash}" if result.ok else ""))
    return Exit.OK if result.ok else Exit.FAILED


def main_recommend(argv: Sequence[str]) -> int:
    from strategies.recommend import QUESTIONS, MissingAnswer, recommend

    p = _Parser(prog="console recommend", description="Answer the seed article's questions and get a "
                "strategy from its decision tree, with the reason. Missing answers are asked interactively.")
    for key, (question, choices) in QUESTIONS.items():
        p.add_argument(f"--{key.replace('_', '-')}", choices=choices, help=question)
    args = vars(p.parse_args(argv))
    answers = {k: args[k] for k in QUESTIONS}
    while True:
        try:
            if answers["criticality"] is None:
                raise MissingAnswer("criticality")
            rec = recommend(**answers)
            break
        except MissingAnswer as missing:
            question, choices = QUESTIONS[missing.key]
            if not sys.stdin.isatty():
                p.error(f"--{missing.key.replace('_', '-')} is needed ({question} {'/'.join(choices)})")
            reply = input(f"{question} [{'/'.join(choices)}] ").strip()
            if reply in choices:
                answers[missing.key] = reply
    print(f"recommended: {rec.strategy.replace('_', '-')}")
    print(f"because: {rec.why}")
    print(f"path: {' -> '.join(rec.path)}")
    print(f"start from: {rec.example}")
    return Exit.OK


def main_replay(argv: Sequence[str]) -> int:
    p = _Parser(prog="console replay", description="Replay a recorded session: in the TUI (default), "
                "as a timeline (--headless), or re-scored against other thresholds (--thresholds).")
    p.add_argument("journal")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.add_argument("--thresholds", metavar="FILE", help="YAML with a thresholds: block to re-score against")
    args = p.parse_args(argv)
    from strategies.plan import load_thresholds

    from .journal import read_journal
    from .replay import print_timeline, rescore

    try:
        journal = read_journal(Path(args.journal))
        thresholds = load_thresholds(args.thresholds) if args.thresholds else None
    except FileNotFoundError:
        print(f"console replay: error: {args.journal}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    except (ValueError, InputError) as exc:
        print(f"console replay: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
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

    return run_replay(journal)


def main_resume(argv: Sequence[str]) -> int:
    """`console resume JOURNAL` picks up a dead run; `console resume [RUN]`
    resumes a paused live one (a JOURNAL of a live run means that run)."""
    from .control.commands import names_live_run

    if names_live_run(argv):
        return _verb("resume")(argv)
    p = _Parser(prog="console resume", description="Continue (or roll back) a rollout whose console died "
                "or stopped, from its journal: every host is inspected and made safe first.")
    p.add_argument("journal", help="the journal of a run that died or stopped (`console resume [RUN]` "
                   "with a live run's id, or no argument, resumes that paused run instead)")
    p.add_argument("--rollback", action="store_true", help="roll back instead of continuing")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--output", choices=["text", "json"], default="text")
    p.add_argument("--record", metavar="FILE")
    p.add_argument("--time-scale", type=_positive, default=1.0)
    p.add_argument("--auto-promote", action="store_true")
    add_live_flags(p)
    add_lock_flags(p)
    args = p.parse_args(argv)
    from strategies.control import Command

    from .resume import NothingToResume, ResumeRefused, load_resume
    from .session import Session

    try:
        inputs, state = load_resume(args.journal)
        session = Session(inputs, argv=["console", "resume", *argv], record=args.record,
                          time_scale=args.time_scale, interactive=_interactive(args),
                          auto_promote=args.auto_promote, resume=state, **_lock_kwargs(args))
    except FileNotFoundError:
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
        print(f"console resume: refused: cannot create the journal: {exc.strerror or exc}", file=sys.stderr)
        return Exit.REFUSED
    if args.rollback:
        session.engine.command(Command.ROLLBACK, source="cli resume --rollback")
    elif state.rolling_back:  # what was judged bad is never shipped by a resume
        print(f"console resume: the session was rolling back ({state.rolling_back}): this resume finishes "
              "the rollback", file=sys.stderr)
        session.engine.command(Command.ROLLBACK, source=f"resume: the session was rolling back ({state.rolling_back})")
    return drive(session, args)


def main_check(argv: Sequence[str]) -> int:
    p = _Parser(prog="console check", description="The pre-deployment checklist against the real hosts, "
                "changing nothing: reach and sudo, units, nginx -t and the managed file, health, the "
                "release (deploy.check), disk space, thresholds, rollback targets. Exit 6 on any failure.")
    p.add_argument("--plan", required=True)
    p.add_argument("--inventory")
    p.add_argument("--version", dest="release", metavar="VERSION")
    p.add_argument("--accept-new-host-keys", action="store_true")
    args = p.parse_args(argv)
    import asyncio

    from strategies.checklist import CheckItem, failed, run_checklist
    from strategies.topology import load_balancers, resolve_instances

    from .session import UsageError, load_inputs, make_driver

    try:
        inputs = load_inputs(args.plan, args.inventory, args.release)
        driver = make_driver(inputs, time_scale=1.0, accept_new_host_keys=args.accept_new_host_keys)
    except (InputError, UsageError) as exc:
        print(f"console check: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    plan = inputs.plan
    instances = resolve_instances(plan, inputs.inventory)
    lbs = load_balancers(plan, inputs.inventory)

    async def go() -> list[CheckItem]:
        from inventory.driver import DriverError

        hosts = list({i.host.name: i.host for i in instances}.values())
        try:
            try:
                await driver.open(hosts, lbs)
            except DriverError as exc:
                # One host down must not hide the others: the checklist checks them one by one.
                print(f"FAIL open: {exc}")
            return await run_checklist(plan, instances, lbs, driver, inputs.version)
        finally:
            await driver.close()

    items = asyncio.run(go())
    for item in items:
        print(item.line())
    bad = failed(items)
    print(f"{len(items) - len(bad)} of {len(items)} checks passed" + (" [SIMULATED]" if inputs.inventory.simulated else ""))
    return Exit.REFUSED if bad else Exit.OK


def main_status(argv: Sequence[str]) -> int:
    from .control.commands import main_status as status

    return status(argv, _Parser)


def main_attach(argv: Sequence[str]) -> int:
    p = _Parser(prog="console attach", description="Open the TUI on a live run (another process's): state "
                "from its journal, then its live events. Several viewers may attach; `q` leaves, the run goes on.")
    p.add_argument("run", nargs="?", help="run id, pid, upstream, plan, journal path or socket "
                   "(default: the only live run)")
    args = p.parse_args(argv)
    from .control.attach import main_attach as attach

    return attach(args.run)


def _verb(name: str):
    def main(argv: Sequence[str]) -> int:
        from .control.commands import main_command

        return main_command(name, argv, _Parser)
    return main


SUBCOMMANDS = {"check": main_check, "sandbox": main_sandbox, "audit": main_audit, "recommend": main_recommend,
               "replay": main_replay, "resume": main_resume, "status": main_status, "attach": main_attach,
               **{verb: _verb(verb) for verb in ("pause", "promote", "rollback", "abort")}}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:])
    return main_run(argv)
