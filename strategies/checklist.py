"""The seed's pre-deployment checklist, against the real hosts, before
anything changes (`console check`, and the start of every rollout).

Items: SSH reach (and sudo when become), the unit exists, `nginx -t` passes
and the managed file is present on each LB, health endpoints answer, the
target release is present or fetchable (`deploy.check`), disk space, the
plan's thresholds are sane, and a rollback target is known (every serving
instance reports a version). Each item is pass/fail with a one-line reason.

`evaluate_*` functions are pure; `run_checklist` gathers facts through the
driver (read-only commands only) and evaluates them.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, Sequence, TypeVar

from inventory.driver import CommandRecord, DriverError, FleetDriver, HealthSample, HostFacts, UnitStatus
from inventory.model import Host, Instance
from inventory.nginx_config import parse_generation, parse_pools

from .plan import Plan, render_template

MIN_FREE_BYTES = 200 * 2**20
DISK_PATHS = ("/", "/opt")


@dataclass(frozen=True)
class CheckItem:
    name: str
    ok: bool
    reason: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.reason}"


def failed(items: Sequence[CheckItem]) -> list[CheckItem]:
    return [i for i in items if not i.ok]


def unchecked(plan: Plan, version: str) -> list[str]:
    """What a passing checklist does not vouch for, said beside its count:
    "54 of 54 passed" read as "the run will work" before a release that
    no host had (nothing looked for it: the plan had no deploy.check)."""
    out = []
    if not plan.deploy.check:
        out.append(f"that release {version} exists (the plan has no deploy.check; its deploy commands "
                   f"are the first to try it)")
    out.append(f"how {version} behaves once running (start, health, errors, latency): the rollout's gates judge that")
    out.append("that nginx routes to what the plan expects, and the rollout lock: the rollout's preflight checks those")
    return out


def summary(items: Sequence[CheckItem], plan: Plan, version: str, simulated: bool = False) -> str:
    """The checklist's count and, on lines after it, what it did not check."""
    bad = failed(items)
    return "\n".join([f"{len(items) - len(bad)} of {len(items)} checks passed" + (" [SIMULATED]" if simulated else ""),
                      *(f"not checked: {what}" for what in unchecked(plan, version))])


# -- pure evaluation -------------------------------------------------------------

def evaluate_thresholds(plan: Plan) -> list[CheckItem]:
    t = plan.thresholds
    problems = []
    if not 0 < t.error_rate < 1:
        problems.append(f"error_rate {t.error_rate:g} must be between 0 and 1")
    if t.persistence < 1:
        problems.append(f"persistence {t.persistence} must be at least 1")
    if not 0 < t.health_pass_rate <= 1:
        problems.append(f"health_pass_rate {t.health_pass_rate:g} must be in (0, 1]")
    if not 0 < t.cpu <= 1:
        problems.append(f"cpu {t.cpu:g} must be in (0, 1]")
    if not 0 <= t.quality_score < 1:
        problems.append(f"quality_score {t.quality_score:g} must be in [0, 1)")
    if t.p95_latency <= 0:
        problems.append(f"p95_latency {t.p95_latency:g} must be positive")
    h = plan.health
    if h.interval * h.passes > h.deadline:
        problems.append(f"health: {h.passes} passes every {h.interval:g}s cannot fit the {h.deadline:g}s deadline")
    return [CheckItem("thresholds", not problems, "; ".join(problems) or
                      f"error_rate {t.error_rate:g}, persistence {t.persistence}, p95 {t.p95_latency:g}s")]


def evaluate_unit(inst: Instance, status: UnitStatus | Exception) -> CheckItem:
    name = f"unit {inst.key}"
    if isinstance(status, Exception):
        return CheckItem(name, False, _why(status))
    if status.load_state != "loaded":
        return CheckItem(name, False, f"{inst.unit}: LoadState={status.load_state or '?'}")
    return CheckItem(name, True, f"{inst.unit} loaded, {status.active_state}")


def evaluate_disk(host: Host, free: dict[str, int | None] | Exception,
                  minimum: int = MIN_FREE_BYTES) -> CheckItem:
    name = f"disk {host.name}"
    if isinstance(free, Exception):
        return CheckItem(name, False, _why(free))
    known = {p: b for p, b in free.items() if b is not None}
    if not known:
        return CheckItem(name, False, "df reported nothing")
    low = [f"{p} {b / 2**20:.0f} MiB free" for p, b in known.items() if b < minimum]
    if low:
        return CheckItem(name, False, f"{', '.join(low)} (< {minimum / 2**20:.0f} MiB)")
    return CheckItem(name, True, ", ".join(f"{p} {b / 2**30:.1f} GiB free" for p, b in known.items()))


def evaluate_lb(lb: Host, text: str | None, nginx_t: CommandRecord | Exception, config_path: str) -> list[CheckItem]:
    items = []
    if isinstance(nginx_t, Exception):
        items.append(CheckItem(f"nginx -t {lb.name}", False, _why(nginx_t)))
    else:
        ok = nginx_t.exit_status == 0
        from inventory.sshfleet import nginx_error_line
        items.append(CheckItem(f"nginx -t {lb.name}", ok,
                               "configuration valid" if ok else nginx_error_line(nginx_t.stderr or nginx_t.stdout)))
    if text is None:
        items.append(CheckItem(f"managed file {lb.name}", False, f"{config_path}: could not be read"))
    elif parse_generation(text) is None:
        items.append(CheckItem(f"managed file {lb.name}", False, f"{config_path}: absent or not managed by rollout-console"))
    else:
        items.append(CheckItem(f"managed file {lb.name}", True, f"{config_path} generation {parse_generation(text)}"))
    return items


def evaluate_health(inst: Instance, sample: HealthSample, serving: bool) -> list[CheckItem]:
    """Health of a serving instance must pass and name a version (the
    rollback target); an idle one is reported but does not fail."""
    if not serving:
        return [CheckItem(f"health {inst.key}", True,
                          "not serving (idle)" + (f", reports {sample.version}" if sample.ok else ""))]
    items = [CheckItem(f"health {inst.key}", sample.ok,
                       f"ok on {sample.version} in {sample.latency * 1000:.0f} ms" if sample.ok
                       else f"serving but unhealthy: {sample.detail or 'no answer'}")]
    items.append(CheckItem(f"rollback target {inst.key}", bool(sample.ok and sample.version),
                           f"old version {sample.version}" if sample.ok and sample.version
                           else "reports no version: nothing known to roll back to"))
    return items


def evaluate_release(host: Host, version: str, record: CommandRecord | Exception) -> CheckItem:
    name = f"release {host.name}"
    if isinstance(record, Exception):
        return CheckItem(name, False, _why(record))
    if record.exit_status == 0:
        return CheckItem(name, True, f"{version} present or fetchable")
    detail = (record.stderr or record.stdout or "").strip().splitlines()
    return CheckItem(name, False, f"{version}: check exit {record.exit_status}"
                     + (f": {detail[-1][:160]}" if detail else ""))


def render_check(plan: Plan, check: str, version: str, slot: str, host_name: str) -> str:
    """`deploy.check` with every value shell-quoted (as render_commands)."""
    return render_template(plan, check, version, slot, host_name, reveal=True)


T = TypeVar("T")


def _unit_of(facts: HostFacts, inst: Instance) -> UnitStatus | Exception:
    if inst.unit in facts.units:
        return facts.units[inst.unit]
    return DriverError(inst.host.name, "unit_status", facts.unit_errors.get(inst.unit, "not reported"))


async def _nothing() -> dict[str, str]:
    return {}


async def _nothing_each() -> list[CommandRecord | Exception]:
    return []


def _why(exc: Exception) -> str:
    return exc.message if isinstance(exc, DriverError) else f"{type(exc).__name__}: {exc}"


# -- gathering (I/O through the driver) -------------------------------------------

async def run_checklist(plan: Plan, instances: Sequence[Instance], lbs: Sequence[Host], driver: FleetDriver,
                        version: str, *, probe: Callable[[Instance], Awaitable[HealthSample]] | None = None,
                        min_free: int = MIN_FREE_BYTES) -> list[CheckItem]:
    """Every checklist item, in a stable order. `driver` must be open.
    `probe(inst)` defaults to driver.health with the plan's settings."""
    items: list[CheckItem] = list(evaluate_thresholds(plan))
    hosts: dict[str, Host] = {}
    for i in instances:
        hosts.setdefault(i.host.name, i.host)
    slot_of = {i.host.name: i.slot for i in instances}

    async def guard(coro: Awaitable[T]) -> T | Exception:
        try:
            return await coro
        except Exception as exc:  # noqa: BLE001 - every failure is an item
            return exc

    async def health(inst: Instance) -> HealthSample:
        if probe is not None:
            return await probe(inst)
        return await driver.health(inst, plan.health.path, plan.health.port or inst.port, plan.health.timeout)

    async def each(aws: Iterable[Awaitable[T]]) -> list[T]:
        return list(await asyncio.gather(*aws))

    all_hosts = {**hosts, **{lb.name: lb for lb in lbs}}
    on_host: dict[str, list[Instance]] = {}
    for i in instances:
        on_host.setdefault(i.host.name, []).append(i)
    check = plan.deploy.check
    # Every check only reads and none needs another's answer, so all run at
    # once and the checklist costs its slowest check, not their sum. Each
    # host's facts command is its reach check too: what a host that was not
    # reached answered elsewhere is dropped below, as if never asked.
    facts, texts, tests, samples, recs = await asyncio.gather(
        each(guard(driver.host_facts(h, on_host.get(n, []), DISK_PATHS if n in hosts else []))
             for n, h in all_hosts.items()),
        guard(driver.lb_read()) if lbs else _nothing(),
        each(guard(driver.run_check(lb, "nginx -t", 60.0)) for lb in lbs),
        each(health(i) for i in instances),
        each(guard(driver.run_check(h, render_check(plan, check, version, slot_of[h.name], h.name),
                                    plan.deploy.timeout, version=version)) for h in hosts.values()
             ) if check else _nothing_each())
    reached = dict(zip(all_hosts, facts))
    for name, h in all_hosts.items():
        what = "SSH and sudo -n" if h.become else "SSH"
        r = reached[name]
        items.append(CheckItem(f"reach {name}", not isinstance(r, Exception),
                               f"{what}: {_why(r)}" if isinstance(r, Exception) else f"{what} ok"))
    up = {n: r for n, r in reached.items() if not isinstance(r, Exception)}
    if isinstance(texts, Exception):
        texts = {}
    for lb, t in zip(lbs, tests):
        if lb.name in up:
            items.extend(evaluate_lb(lb, texts.get(lb.name), t, plan.nginx.config))
    first = next((t for t in texts.values() if t), "")
    serving = {str(b) for bs in parse_pools(first, plan.nginx.upstream).values() for b in bs} if first else set()
    live = [i for i in instances if i.host.name in up]
    items.extend(evaluate_unit(i, _unit_of(up[i.host.name], i)) for i in live)
    for inst, sample in zip(instances, samples):
        if inst.host.name in up:
            items.extend(evaluate_health(inst, sample, f"{inst.host.address}:{inst.port}" in serving))
    if check:
        items.extend(evaluate_release(h, version, r) for h, r in zip(hosts.values(), recs) if h.name in up)
    items.extend(evaluate_disk(h, up[n].free, min_free) for n, h in hosts.items() if n in up)
    return items
