"""`console --plan P [--inventory I] [--headless]`: a rollout, its dry run
and its host list. Bad flags or inputs print one line and exit 2 before
anything touches a host."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Sequence

from .cli_args import (
    Parser,
    add_input_flags,
    add_live_flags,
    add_lock_flags,
    add_output_flags,
    interactive,
    journal_error,
    lock_kwargs,
    positive,
)
from .exitcodes import Exit
from .trust_flag import add_trust_flag

if TYPE_CHECKING:  # imported where used: `console --help` starts without them
    from .session import Inputs, Session

DESCRIPTION = ("Roll out a new version of an agent service to Linux hosts over SSH: rolling, canary or\n"
               "blue-green, in a TUI or headless. Run `console` alone for the subcommands.")


class ToolVersion(argparse.Action):
    """argparse's "version" action, but the version (importlib.metadata,
    ~40 % of `console --help`'s imports) is read only when asked for."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        from .version import tool_version

        print(f"console {tool_version()}")
        parser.exit()


def parser_run(prog: str = "console") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-V", "--version", action=ToolVersion, nargs=0,
                   help="print the tool's own version and exit (`--version VALUE` is the old spelling of --release)")
    add_input_flags(p)
    add_output_flags(p)
    p.add_argument("--dry-run", action="store_true", help="print the steps and commands; touch nothing")
    p.add_argument("--list-hosts", action="store_true",
                   help="print the hosts the plan (and --limit) would touch, as `ansible --list-hosts` does; "
                        "touch nothing")
    p.add_argument("--record", metavar="FILE", help="journal path (default: see docs/cli.md, 'Journals')")
    p.add_argument("--time-scale", type=positive, default=1.0, metavar="N",
                   help="simulated fleet only: run its clock N times faster")
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust and record unknown SSH host keys (changed keys are always refused)")
    p.add_argument("--auto-promote", action="store_true", help="headless: continue through indefinite pauses")
    p.add_argument("--judge-shadow", action="store_true", help="the judge records every verdict and acts on none "
                   "(the plan's analysis.shadow); see docs/judge.md")
    add_live_flags(p)
    add_lock_flags(p)
    add_trust_flag(p)
    return p


def load_limited(plan: str, inventory: str | None, release: str | None, limit: str | None, *,
                 judge_shadow: bool = False) -> Inputs:
    """load_inputs, then cut to --limit (session.limit_inputs)."""
    from .session import limit_inputs, load_inputs

    inputs = load_inputs(plan, inventory, release, judge_shadow=judge_shadow)
    return limit_inputs(inputs, limit) if limit else inputs


def list_hosts(inputs: Inputs) -> int:
    from strategies.topology import load_balancers, resolve_instances

    hosts = list(dict.fromkeys(i.host.name for i in resolve_instances(inputs.plan, inputs.inventory)))
    lbs = [h.name for h in load_balancers(inputs.plan, inputs.inventory)]
    label = " [SIMULATED]" if inputs.inventory.simulated else ""
    print(f"  hosts ({len(hosts)}){label}:")
    for name in hosts:
        print(f"    {name}")
    print(f"  load balancers ({len(lbs)}):")
    for name in lbs:
        print(f"    {name}")
    left = untouched_hosts(inputs)
    if left:
        print(f"  left out by --limit, serving untouched ({len(left)}):")
        for name in left:
            print(f"    {name}")
    return Exit.OK


def untouched_hosts(inputs: Inputs) -> list[str]:
    return list(dict.fromkeys(i.host.name for i in inputs.untouched))


def dry_run(inputs: Inputs) -> int:
    from strategies.plan import render_commands, summary
    from strategies.registry import runner_for
    from strategies.topology import resolve_instances

    plan = inputs.plan
    instances = {i.key: i for i in resolve_instances(plan, inputs.inventory)}
    print(f"DRY RUN (nothing is touched): {summary(plan)}")
    print(f"inventory {inputs.inventory_path}: {len(instances)} instance(s)"
          + (" [SIMULATED]" if inputs.inventory.simulated else "")
          + (f", read by {inputs.inventory.engine}" if inputs.inventory_given else ""))
    if inputs.untouched:
        print(f"left out by --limit, serving untouched: {', '.join(untouched_hosts(inputs))}")
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


def drive(session: Session, args: argparse.Namespace) -> int:
    """Run a built session headless (or detached) or in the TUI; the exit code."""
    if args.headless or args.detach:
        from .session import run_headless

        return int(run_headless(session, args.output, on_hangup=args.on_hangup, detach=args.detach,
                                verbose=getattr(args, "verbose", False)))
    from .tui.app import run_app

    return int(run_app(session, on_hangup=args.on_hangup))


def start_run(args: argparse.Namespace, argv: Sequence[str], prog: str = "console") -> int:
    """Load, check and run what `args` (a parser_run namespace) names."""
    from inventory.errors import InputError
    from strategies.topology import limit_refusal

    from .session import Session, UsageError

    try:
        inputs = load_limited(args.plan, args.inventory, args.release, args.limit, judge_shadow=args.judge_shadow)
    except (InputError, UsageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    if args.list_hosts:
        return list_hosts(inputs)
    if args.dry_run:
        return dry_run(inputs)
    try:
        refusal = limit_refusal(inputs.plan, inputs.untouched)
        if refusal:
            raise UsageError(refusal)
        session = Session(inputs, argv=["console", *argv], record=args.record, time_scale=args.time_scale,
                          accept_new_host_keys=args.accept_new_host_keys, interactive=interactive(args),
                          auto_promote=args.auto_promote, **lock_kwargs(args))
    except (InputError, UsageError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    except OSError as exc:
        return journal_error(prog, exc)
    return drive(session, args)


def main_run(argv: Sequence[str]) -> int:
    return start_run(parser_run().parse_args(argv), argv)
