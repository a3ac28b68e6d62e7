"""`console lock status` and `console lock release`: the rollout lock on a
plan's load balancers (inventory/lock.py), as Kamal's `lock status|release`.

Release keeps the lock's own safety: it removes a lock only through the
lock's token check (`owned_script`), so a lock that changed hands between
reading and removing it stays; a lock whose holder looks alive (by the
lock's own `staleness`) is released only with --force, and either way only
after a confirmation (a terminal's y, or --yes).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # imported when run: `--help` stays fast (bench/cli_latency.py)
    from inventory.driver import FleetDriver
    from inventory.lock import LockRecord
    from inventory.model import Host

from .cli_args import Parser, ask, positive
from .exitcodes import Exit


def parser_lock() -> argparse.ArgumentParser:
    p = Parser(prog="console lock", description="The rollout lock a run holds on its plan's load balancers "
               "(one console per upstream at a time).")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = sub.add_parser("status", help="who holds the lock on each load balancer, and whether it looks stale",
                            description="Who holds the plan's rollout lock on each load balancer; read only.")
    release = sub.add_parser("release", help="remove a stale lock (a live holder's only with --force)",
                             description="Remove the plan's rollout lock where it is stale: the holder's pid "
                             "is gone on this machine, or it sent no heartbeat for --lock-max-age. A lock "
                             "that changed hands meanwhile is left alone.")
    for action in (status, release):
        action.add_argument("--plan", required=True, metavar="FILE", help="the plan whose lock (its upstream, "
                            "on its load balancers) this is")
        action.add_argument("--inventory", metavar="FILE", help="Ansible-style inventory (YAML or INI); "
                            "default: the embedded SIMULATED fleet")
        action.add_argument("--lock-max-age", type=positive, default=120.0, metavar="SECONDS",
                            help="a lock without heartbeat for this long is stale (default 120)")
        action.add_argument("--accept-new-host-keys", action="store_true",
                            help="trust and record unknown SSH host keys (changed keys are always refused)")
    release.add_argument("--force", action="store_true",
                         help="also remove a lock whose holder looks alive (it then fails its next heartbeat)")
    release.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation (scripts)")
    return p


@dataclass(frozen=True)
class Seen:
    """The lock on one load balancer."""

    lb: str
    record: LockRecord | None  # None: free, or unreadable when raw is set
    raw: str
    stale: str | None
    error: str = ""

    @property
    def held(self) -> bool:
        return self.record is not None or bool(self.raw.strip())

    def line(self) -> str:
        if self.error:
            return f"{self.lb}: UNKNOWN ({self.error})"
        if not self.held:
            return f"{self.lb}: free"
        who = self.record.describe() if self.record else f"unreadable record {self.raw[:60]!r}"
        return f"{self.lb}: HELD by {who}" + (f"; STALE ({self.stale})" if self.stale else "; holder looks alive")


def read_script(path: str) -> str:
    """FREE, or HELD then `<now> <mtime>` (the LB's clock) then the record:
    the HELD branch of the lock's acquire script, without taking it."""
    from inventory.lock import RECORD_MAX

    lk = shlex.quote(path)
    return (f"if [ -e {lk} ]; then echo HELD; echo \"$(date +%s) $(stat -c %Y {lk} 2>/dev/null || echo 0)\"; "
            f"head -c {RECORD_MAX} {lk}; else echo FREE; fi")


async def _read_all(driver: FleetDriver, lbs: list[Host], path: str, max_age: float) -> list[Seen]:
    from inventory.driver import DriverError
    from inventory.lock import LockRecord, parse_held, staleness

    seen = []
    for lb in lbs:
        try:
            rec = await driver.run_check(lb, read_script(path), 30.0)
        except DriverError as exc:
            seen.append(Seen(lb.name, None, "", None, str(exc)))
            continue
        if not rec.ok:
            seen.append(Seen(lb.name, None, "", None, f"exit {rec.exit_status}: {rec.stderr.strip()[-200:]}"))
        elif rec.stdout.startswith("FREE"):
            seen.append(Seen(lb.name, None, "", None))
        else:
            age, raw = parse_held(rec.stdout)
            record = LockRecord.parse(raw)
            seen.append(Seen(lb.name, record, raw, staleness(record, age, max_age=max_age)))
    return seen


async def _release(driver: FleetDriver, lb: Host, path: str, seen: Seen) -> str:
    from inventory.lock import owned_script

    script = owned_script(path, seen.record.token, "rm -f") if seen.record else f"rm -f {shlex.quote(path)}"
    rec = await driver.run_check(lb, script, 30.0)
    if not rec.ok:
        return f"{lb.name}: not released: exit {rec.exit_status}: {rec.stderr.strip()[-200:]}"
    if rec.stdout.startswith("GONE"):
        return f"{lb.name}: not released: the lock changed hands since it was read"
    return f"{lb.name}: released (was {seen.record.describe() if seen.record else 'an unreadable record'})"


def main_lock(argv: Sequence[str]) -> int:
    p = parser_lock()
    args = p.parse_args(argv)
    import asyncio

    from inventory.driver import DriverError
    from inventory.errors import InputError
    from inventory.lock import lock_path
    from strategies.topology import TopologyError, load_balancers

    from .session import Inputs, UsageError, make_driver, read_plan_and_inventory

    try:
        plan, inventory, inv_path = read_plan_and_inventory(args.plan, args.inventory, None)
        lbs = load_balancers(plan, inventory)
    except (InputError, UsageError, TopologyError) as exc:
        print(f"console lock: error: {exc}", file=sys.stderr)
        return Exit.BAD_INPUT
    if inventory.simulated:
        print("SIMULATED fleet: its rollout lock lives inside the run's own process (see `console status`); "
              "nothing to read or release on hosts")
        return Exit.OK
    path = lock_path(plan.nginx.upstream)
    driver = make_driver(Inputs(plan, inventory, args.plan, inv_path, plan.version or ""), time_scale=1.0,
                         accept_new_host_keys=args.accept_new_host_keys)

    async def go() -> int:
        try:
            await driver.open([], lbs)
        except DriverError as exc:
            print(f"console lock: refused: {exc}", file=sys.stderr)
            return Exit.REFUSED
        try:
            seen = await _read_all(driver, lbs, path, args.lock_max_age)
            print(f"lock {path} (upstream {plan.nginx.upstream}):")
            for s in seen:
                print(f"  {s.line()}")
            if any(s.error for s in seen):
                return Exit.REFUSED
            if args.action == "status":
                return Exit.OK
            return await _release_held(driver, {lb.name: lb for lb in lbs}, path, seen)
        finally:
            await driver.close()

    async def _release_held(driver: FleetDriver, by_name: dict[str, Host], path: str, seen: list[Seen]) -> int:
        held = [s for s in seen if s.held]
        if not held:
            print("nothing to release")
            return Exit.OK
        alive = [s for s in held if not s.stale]
        if alive and not args.force:
            print(f"console lock: refused: the holder looks alive on {', '.join(s.lb for s in alive)}: stop it "
                  f"(`console abort`), wait for it, or pass --force if you know it is dead", file=sys.stderr)
            return Exit.REFUSED
        if not ask(p, f"Release the lock on {', '.join(s.lb for s in held)}?", args.yes):
            print("release: not confirmed; nothing removed")
            return Exit.NOT_CONFIRMED
        lines = [await _release(driver, by_name[s.lb], path, s) for s in held]
        for line in lines:
            print(line)
        return Exit.OK if all(": released" in line for line in lines) else Exit.REFUSED

    return asyncio.run(go())
