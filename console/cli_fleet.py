"""The subcommands about hosts rather than a rollout: `console sandbox` (the
real systemd-nspawn fleet) and `console check` (the pre-deployment
checklist, changing nothing)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .cli_args import Parser, add_input_flags, number_in
from .exitcodes import Exit
from .trust_flag import add_trust_flag


def parser_sandbox() -> argparse.ArgumentParser:
    p = Parser(prog="console sandbox", description="Real sandbox fleet: systemd-nspawn hosts with sshd, "
               "systemd and nginx (Linux, root). ROLLOUT_SANDBOX_NET=N picks the address block.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="boot N agent hosts and one nginx LB; prints the inventory path last")
    up.add_argument("--hosts", type=number_in(1, 60, int, "a whole number"), default=6, metavar="N",
                    help="agent hosts to boot, 1-60 (default 6)")
    up.add_argument("--install-deps", action="store_true",
                    help="apt-get install the missing Debian packages instead of naming them")
    up.add_argument("--prometheus", action="store_true",
                    help="also run a Prometheus server on the LB scraping every agent (docs/metrics.md)")
    sub.add_parser("down", help="remove every container, mount and interface the sandbox made")
    sub.add_parser("status", help="list the sandbox hosts")
    rel = sub.add_parser("release", help="define how a release behaves on the sandbox hosts")
    rel.add_argument("version", metavar="VERSION", help="the release version these behaviours apply to")
    rel.add_argument("--behaviour", default="{}", metavar="JSON", help='JSON, e.g. {"error_rate": 0.05}')
    return p


def main_sandbox(argv: Sequence[str]) -> int:
    p = parser_sandbox()
    args = p.parse_args(argv)
    behaviour: dict[str, object] = {}
    if args.action == "release":
        try:
            given = json.loads(args.behaviour)
        except json.JSONDecodeError as exc:
            p.error(f"--behaviour: not JSON: {exc}")
        if not isinstance(given, dict):
            p.error(f"--behaviour: expected a JSON object of behaviour keys (e.g. {{\"error_rate\": 0.05}}), "
                    f"got {type(given).__name__} {args.behaviour}")
        behaviour = given
    import sandbox

    try:
        if args.action == "up":
            inventory_path = sandbox.up(hosts=args.hosts, install_deps=args.install_deps)
            if args.prometheus:
                from sandbox import prometheus_server

                prometheus_server.start()
            print(inventory_path)
        elif args.action == "down":
            sandbox.down()
        elif args.action == "status":
            for row in sandbox.status():
                print(f"{row['name']:10} {row['ip']:12} pid {row['pid']} {'running' if row['running'] else 'stopped'}")
        elif args.action == "release":
            sandbox.write_release(None, args.version, behaviour)
    except sandbox.SandboxError as exc:
        print(f"console sandbox: error: {exc}", file=sys.stderr)
        return Exit.REFUSED
    return Exit.OK


def parser_check() -> argparse.ArgumentParser:
    p = Parser(prog="console check", description="The pre-deployment checklist against the real hosts, "
               "changing nothing: reach and sudo, units, nginx -t and the managed file, health, the "
               "release (deploy.check), disk space, thresholds, rollback targets. Exit 6 on any failure.")
    add_input_flags(p)
    p.add_argument("--accept-new-host-keys", action="store_true",
                   help="trust and record unknown SSH host keys (changed keys are always refused)")
    add_trust_flag(p)
    return p


def main_check(argv: Sequence[str]) -> int:
    args = parser_check().parse_args(argv)
    import asyncio

    from inventory.errors import InputError
    from strategies.checklist import CheckItem, failed, run_checklist, summary
    from strategies.topology import load_balancers, resolve_instances

    from .cli_run import load_limited
    from .session import UsageError, make_driver

    try:
        inputs = load_limited(args.plan, args.inventory, args.release, args.limit)
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
    print(summary(items, plan, inputs.version, inputs.inventory.simulated))
    return Exit.REFUSED if bad else Exit.OK
