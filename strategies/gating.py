"""Analysis in a live run: sample the fleet, judge windows, raise alerts,
and guard capacity before a drain.

The decisions are pure (strategies/analysis.py judges evidence,
strategies/capacity.py counts who serves); this module feeds them live
samples at the plan's interval and turns their verdicts into events and
exceptions. Strategies see it through the `Analysis` protocol
(strategies/context.py).
"""
from __future__ import annotations

import asyncio
import math
from typing import Awaitable, Container, Iterable, Mapping, Protocol, Sequence, TypeVar

from inventory.driver import DriverError, HealthSample, InstanceDriver, PoolStats
from inventory.exposition import Series
from inventory.model import Instance
from inventory.nginx_config import Backend

from . import analysis, coverage, custom_metrics
from .batches import plan_batches
from .capacity import CapacityCheck, check_capacity
from .context import NextDrain
from .control import GateFailed
from .down import Down
from .events import (
    AlertRaised,
    CapacityChecked,
    Emit,
    FindingRecord,
    GateEvaluated,
    JudgeBudget,
    JudgeSampled,
    MetricsSampled,
    Notice,
)
from .judge_stats import SHARES
from .metric_sources import CustomReader
from .plan import Plan
from .topology import backend
from .traffic import pool_summary

T = TypeVar("T")
# How long a sample waits for one instance's CPU or quality reading (a
# command over SSH, an HTTP GET) before calling it unknown.
READING_SECONDS = 2.0


def side_evidence(traffic: dict[str, PoolStats], insts: Sequence[Instance]) -> analysis.Evidence:
    """Every request these instances answered, over all pools, per
    instance and pooled. A request an instance failed counts against it
    even when nginx retried it elsewhere and the client never saw it (a
    release that drops connections or answers 502/503 would otherwise look
    clean behind the retries), but once: its further tries are not more
    failed requests (counting tries made failures come in clusters)."""
    names = {str(backend(i)): i.key for i in insts}
    hosts: dict[str, tuple[int, int, list[float]]] = {}
    for stats in traffic.values():
        for addr, st in stats.backends.items():
            if addr in names:
                n, k, lat = hosts.get(names[addr], (0, 0, []))
                hosts[names[addr]] = (n + st.requests, k + st.failed_requests, lat + st.latencies)
    per_host = tuple(sorted((key, analysis.Evidence(n, k, tuple(lat))) for key, (n, k, lat) in hosts.items()))
    return analysis.Evidence(sum(e.requests for _, e in per_host), sum(e.errors for _, e in per_host),
                             tuple(x for _, e in per_host for x in e.latencies), per_host)


def sample_record(ev: analysis.Evidence) -> dict[str, object]:
    """A side of one sample as JudgeSampled (and backtest input) has it."""
    return {"requests": ev.requests, "failed": ev.errors, "latencies": [round(x, 3) for x in ev.latencies]}


def judged_windows(plan: Plan, instances: Sequence[Instance]) -> int:
    """How many windows the plan judges: the canary's analysis steps, the
    gates between rolling batches, blue-green's window after the switch."""
    if plan.strategy == "canary":
        return sum(1 for s in plan.canary.steps if s.kind == "analysis")
    if plan.strategy == "rolling":
        return len(plan_batches(instances, plan.rolling.batch)) - 1 if plan.rolling.interval > 0 else 0
    return 1


def finding_fields(f: analysis.Finding) -> FindingRecord:
    """A finding as the typed fields a GateEvaluated event carries."""
    return {"metric": f.metric, "value": f.value, "limit": f.limit, "op": f.op, "tier": f.tier}


def spread(insts: Sequence[Instance], most: int) -> list[Instance]:
    """Up to `most` instances spread evenly over the list."""
    return list(insts)[:: max(1, len(insts) // most)][:most] if insts else []


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


class JudgedInstances(Protocol):
    """What the judge needs of the instances (strategies/instances.py InstanceOps)."""

    version: str
    restarted_at: dict[str, float]

    @property
    def versions(self) -> Mapping[str, str | None]: ...

    @property
    def old_versions(self) -> Mapping[str, str | None]: ...

    async def probe(self, inst: Instance, *, quiet: bool = False, idle: bool = False) -> HealthSample: ...


class JudgedTraffic(Protocol):
    """What the judge needs of traffic control (strategies/traffic.py
    TrafficControl): the traffic a window reads, who it found down, and
    telling it a window reads traffic itself meanwhile."""

    @property
    def down(self) -> Container[str]: ...

    @property
    def untouched(self) -> Sequence[Backend]: ...

    async def read(self) -> dict[str, PoolStats]: ...

    def report_down(self, traffic: Mapping[str, PoolStats], probes: Mapping[str, bool],
                    should_serve: Sequence[Instance], where: str) -> list[Down]: ...

    def open_window(self) -> None: ...

    def close_window(self) -> None: ...


class GateControl(Protocol):
    """What the judge needs of run control (strategies/control.py RunControl)."""

    async def wait(self, seconds: float, promotable: bool = False) -> None: ...

    async def wait_for_promotion(self, title: str) -> bool: ...

    def take_promotion(self) -> bool: ...


class Gatekeeper:
    def __init__(self, plan: Plan, driver: InstanceDriver, instances: JudgedInstances, traffic: JudgedTraffic,
                 control: GateControl, emit: Emit):
        self.plan = plan
        self.driver = driver
        self.instances = instances
        self.traffic = traffic
        self.control = control
        self.emit = emit
        self.sample_interval = float(plan.canary.sample_interval)
        self._alerts: dict[tuple[str, str], str] = {}  # (where, metric) -> tier last raised
        self.custom = CustomReader(plan.metrics, self.sample_interval, lambda i: instances.versions.get(i.key))
        self.windows = 1  # judged windows of this run (announce): the budget is spread over them
        self.judged = 0  # windows judged so far: the first gets the larger part of the budget
        self.shadow = plan.analysis.shadow

    def policy(self) -> analysis.Policy:
        a = self.plan.analysis
        return analysis.Policy.of(self.plan.thresholds, self.plan.alerts, budget=a.false_alarm_budget,
                                  windows=self.windows, sample_interval=self.sample_interval, warm_up=a.latency_warm_up,
                                  window=self.judged, hold_for_tail=self.plan.strategy != "rolling")

    def announce(self, windows: int) -> None:
        """Say at the start what the judge may spend: the release's
        false-alarm budget, over how many windows, and each test's part."""
        self.windows = max(1, windows)
        budget = self.policy().budget
        self.emit(JudgeBudget(alpha=budget.alpha, windows=budget.windows, per_window=budget.per_window(),
                              tests={name: budget.test(name) for name in SHARES}, shadow=self.shadow))

    # -- samples --------------------------------------------------------------------
    async def sample(self, judged: Sequence[Instance], baseline: Sequence[Instance] = ()
                     ) -> tuple[dict[str, PoolStats], analysis.Readings, dict[str, custom_metrics.Reading],
                                dict[str, bool]]:
        """Traffic per pool since the last sample, and the health, quality
        and unit CPU of (a spread of up to 50 of) the judged instances, with
        the CPU of up to 10 baseline instances to compare against, and the
        plan's custom metrics of both sides. Up to 50 baseline instances are
        probed too: a dead one is named at once (strategies/down.py). Last,
        the probes' results by instance key."""
        traffic = await self.traffic.read()
        probe = spread(judged, 50)
        base_probe = spread(baseline, 50)
        base = spread(baseline, 10)
        scraped = [*probe, *base] if self.custom.wants_series else probe
        # all at once: a dead host costs one probe timeout, not three in a row
        healths, base_healths, series, cpus, base_cpus = await asyncio.gather(
            asyncio.gather(*(self.instances.probe(i) for i in probe)),
            asyncio.gather(*(self.instances.probe(i, quiet=True) for i in base_probe)),
            asyncio.gather(*(self._series(i) for i in scraped)),
            asyncio.gather(*(self._cpu(i) for i in probe)),
            asyncio.gather(*(self._cpu(i) for i in base)))
        scrapes = {i.key: s for i, s in zip(scraped, series)}
        custom = await self.custom.read(probe, base, scrapes)
        wanted = self.plan.metrics.instance.quality_score.selector
        metrics = [None if s is None else s.value(wanted) for s in series[:len(probe)]]
        cpu = {i.key: c for i, c in zip([*probe, *base], [*cpus, *base_cpus]) if c is not None}
        quality = {i.key: q for i, q in zip(probe, metrics) if q is not None}
        pass_rate = sum(1 for h in healths if h.ok) / len(healths) if healths else None
        self.emit(MetricsSampled(pools={p: pool_summary(s) for p, s in traffic.items()},
                                 cpu={k: round(c, 4) for k, c in cpu.items()}, quality=quality, health_pass_rate=pass_rate))
        probes = {i.key: h.ok for i, h in zip([*probe, *base_probe], [*healths, *base_healths])}
        return traffic, analysis.Readings(
            health_pass_rate=pass_rate, quality_score=mean(quality.values()),
            cpu=mean(c for c in cpus if c is not None), baseline_cpu=mean(c for c in base_cpus if c is not None),
            health_failed=sum(1 for h in healths if not h.ok) if healths else None), custom, probes

    async def _series(self, inst: Instance) -> Series | None:
        metrics = await self._reading(self.driver.instance_metrics(inst, inst.port))
        return None if metrics is None else metrics.series

    async def _cpu(self, inst: Instance) -> float | None:
        return await self._reading(self.driver.unit_cpu(inst))  # unknown is None, never "0 %"

    async def _reading(self, read: Awaitable[T]) -> T | None:
        """One instance's reading, or None (unknown) when it fails or does
        not come within READING_SECONDS (or the health probe's own timeout,
        if longer). Over SSH to a host whose link was cut, a command gives
        up only after the transport's grace and keep-alive (18 s seen in the
        soak, seed 2 run 154): waiting for it held the whole sample, and the
        critical health alert it carried, while clients met the dead host."""
        limit = max(READING_SECONDS, self.plan.health.timeout) / self.driver.clock.scale
        try:
            return await asyncio.wait_for(read, limit)
        except (DriverError, TimeoutError):
            return None

    # -- windows ----------------------------------------------------------------------
    async def gate(self, name: str, seconds: float, judged: Sequence[Instance],
                   baseline: Sequence[Instance] = (), where: str = "new", drain_next: NextDrain | None = None,
                   ) -> None:
        """An analysis window whose inconclusive end waits for a human
        (exit 7 headless), as does a failing environment (the baseline fails
        as much as the release); a failure raises GateFailed."""
        verdict = await self.observe(name, seconds, judged, baseline, where, drain_next)
        if verdict == analysis.Verdict.INCONCLUSIVE:
            await self.control.wait_for_promotion(f"{name}: inconclusive")
        elif verdict == analysis.Verdict.ENVIRONMENT:
            await self.control.wait_for_promotion(f"{name}: the baseline fails as much as the release")

    async def observe(self, name: str, seconds: float, judged: Sequence[Instance],
                      baseline: Sequence[Instance] = (), where: str = "new",
                      drain_next: NextDrain | None = None) -> analysis.Verdict:
        """Judge a window on its pooled samples (strategies/analysis.py).

        Samples every `sample_interval`; fails as soon as the evidence is
        clear (a critical alert at once); at the window's end passes only on
        enough evidence with no breach outstanding, else extends sample by
        sample up to `thresholds.max_window` and is then INCONCLUSIVE. An
        operator's promote ends it as a pass. Paused time does not count.
        A shadow judge (plan `analysis.shadow`, `--judge-shadow`) records
        each verdict and acts on none: the window lasts its planned length
        and passes."""
        thresholds = self.plan.thresholds
        policy = self.policy()
        limit = seconds if self.shadow else max(seconds, thresholds.max_window)
        window, spent, extended = analysis.Window(), 0.0, False
        customs, cwin = self.plan.metrics.custom, custom_metrics.CustomWindow()
        self.judged += 1
        gone: set[str] = set()  # baseline instances found down: out of the baseline for the window
        self.traffic.open_window()
        try:
            await self.traffic.read()  # the window judges only traffic inside it
            while True:
                chunk = min(self.sample_interval, seconds - spent) if spent < seconds else self.sample_interval
                chunk = min(chunk, limit - spent)
                await self.control.wait(chunk)
                spent += chunk
                if self.control.take_promotion():
                    self.emit(GateEvaluated(name=name, verdict=analysis.Verdict.PASS,
                                            reasons=["promoted by operator"], values={}, final=True))
                    return analysis.Verdict.PASS
                traffic, readings, custom, probes = await self.sample(judged, [b for b in baseline if b.key not in gone])
                found = self.traffic.report_down(traffic, probes, [*judged, *baseline], where)
                await self.baseline_down(name, found, judged, gone, drain_next)
                live = [b for b in baseline if b.key not in gone]
                judged_ev = side_evidence(traffic, judged)
                base_ev = side_evidence(traffic, live) if live else None
                self.emit(JudgeSampled(name=name, t=round(spent, 3), canary=sample_record(judged_ev),
                                       baseline=sample_record(base_ev) if base_ev is not None else None))
                window, verdict = analysis.fold(window, judged_ev, base_ev, readings, policy,
                                                   self.ages([*judged, *live]))
                cwin, folded = custom_metrics.fold(cwin, customs, custom, policy.budget.test("custom_metrics"))
                verdict = custom_metrics.merge(verdict, folded, cwin)
                self.raise_alerts(window, where, verdict, custom_metrics.alerts(folded))
                if verdict.verdict in (analysis.Verdict.FAIL, analysis.Verdict.ENVIRONMENT):
                    self.emit_gate(name, verdict, 0.0, final=True)
                    if self.shadow:  # recorded; the window runs out its planned length and the run goes on
                        await self.control.wait(max(0.0, limit - spent))
                        return analysis.Verdict.PASS
                    if verdict.verdict == analysis.Verdict.ENVIRONMENT:
                        self.emit(Notice(level="warning", message=f"{name}: " + "; ".join(verdict.reasons)))
                        return verdict.verdict
                    raise GateFailed(f"{name}: " + "; ".join(verdict.reasons))
                if not self.shadow:
                    self.judged_down(name, found, judged)
                if spent + 1e-9 < seconds:
                    self.emit_gate(name, verdict, seconds - spent)
                    continue
                final = spent + 1e-9 >= limit
                verdict = custom_metrics.settle(analysis.close(window, policy, final=final), cwin, customs,
                                                policy.beta, final=final)
                verdict, why = coverage.hold(verdict, window, policy, cwin, customs, final=final)
                if verdict.verdict == analysis.Verdict.PENDING:
                    if not extended:
                        extended = True
                        self.emit(Notice(level="warning", message=f"{name}: extended (up to "
                                         f"{limit:g}s): " + "; ".join(verdict.reasons)))
                    self.emit_gate(name, verdict, limit - spent, extended=True, why=why)
                    continue
                self.emit_gate(name, verdict, 0.0, final=True, extended=extended, why=why)
                return analysis.Verdict.PASS if self.shadow else verdict.verdict
        finally:
            self.traffic.close_window()

    def ages(self, insts: Sequence[Instance]) -> dict[str, float]:
        """Seconds since this run restarted each instance (one it has not
        restarted is taken as long warm): the judge leaves out the
        latencies of an instance still warming up, from its own restart,
        the release's and the baseline's alike (a matched baseline restarts
        with the canary)."""
        now = self.driver.clock.now()
        return {i.key: now - self.instances.restarted_at.get(i.key, -math.inf) for i in insts}

    async def baseline_down(self, name: str, found: Sequence[Down], judged: Sequence[Instance], gone: set[str],
                            drain_next: NextDrain | None) -> None:
        """Baseline instances found down in a sample leave the baseline
        (`gone`); the first time, the capacity guard is asked about
        `drain_next` (see `observe`)."""
        mine = {i.key for i in judged}
        news = {d.instance for d in found if d.instance not in mine} - gone
        gone.update(news)
        if news and drain_next is not None:
            await self.guard_capacity(f"{name}, before {drain_next.title}", drain_next.should_serve,
                                      drain_next.batch, drain_next.floor)

    def judged_down(self, name: str, found: Sequence[Down], judged: Sequence[Instance]) -> None:
        """A judged instance found down fails the window at once (the
        critical tier), when the judge's own tests have not already."""
        mine = {i.key for i in judged}
        reasons = [f"{d.instance} down ({d.reason.value})" for d in found if d.instance in mine]
        if reasons:
            self.emit(GateEvaluated(name=name, verdict=analysis.Verdict.FAIL, reasons=reasons,
                                    values={}, final=True))
            raise GateFailed(f"{name}: " + "; ".join(reasons))

    def emit_gate(self, name: str, j: analysis.Judgement, remaining: float, *, final: bool = False,
                  extended: bool = False, why: Sequence[coverage.Why] = ()) -> None:
        self.emit(GateEvaluated(name=name, verdict=j.verdict, reasons=j.reasons, values=j.values,
                                remaining=round(max(0.0, remaining), 3), final=final, extended=extended,
                                needed=j.needed, seen=j.seen, findings=[finding_fields(f) for f in j.findings],
                                shadow=self.shadow, why=[w.value for w in why]))

    def raise_alerts(self, window: analysis.Window, where: str, judged: analysis.Judgement,
                     custom: Sequence[analysis.Alert] = ()) -> None:
        """Emit an alert when a metric enters a tier (or changes tier). A
        failing gate's findings are alerts too (important, or critical):
        the sequential test can be sure of a bad release before a tier's
        fixed-level test is. `custom`: the custom metrics' own alerts, at
        the tiers their plan gives them (custom_metrics.alerts)."""
        current = {a.metric: a for a in analysis.alerts_for(window, self.plan.alerts)}
        current.update({a.metric: a for a in custom})
        basis: dict[str, str] = {}
        if judged.verdict == analysis.Verdict.FAIL:
            for f in (f for f in judged.findings if f.metric not in {a.metric for a in custom}):
                tier = "critical" if f.tier == "critical" else "important"
                held = current.get(f.metric)
                if held is None or analysis.TIERS.index(held.tier) > analysis.TIERS.index(tier):
                    current[f.metric] = analysis.Alert(tier, f.metric, f.value, self.plan_threshold(tier, f))
                    basis[f.metric] = f.note
        for metric, alert in current.items():
            if self._alerts.get((where, metric)) != alert.tier:
                self.emit(AlertRaised(tier=alert.tier, metric=metric, value=alert.value,
                                      threshold=alert.threshold, where=where, basis=basis.get(metric, "")))
        self._alerts = {k: v for k, v in self._alerts.items() if k[0] != where}
        self._alerts.update({(where, m): a.tier for m, a in current.items()})

    def plan_threshold(self, tier: str, finding: analysis.Finding) -> float:
        """The threshold the plan wrote for a finding's metric: its alert rule
        in `tier`, else `thresholds:`. A likelihood verdict's own limit is the
        rate the test weighed against the baseline (twice the threshold, or
        the gross 10 %), which an operator would read as the plan's."""
        if finding.op != "~":
            return finding.limit
        for rule in getattr(self.plan.alerts, tier, ()) or ():
            if rule.metric == finding.metric and rule.op == ">":
                return float(rule.value)
        written = getattr(self.plan.thresholds, finding.metric, None)
        return float(written) if isinstance(written, (int, float)) else finding.limit

    # -- capacity -----------------------------------------------------------------------
    async def guard_capacity(self, title: str, should_serve: Sequence[Instance], batch: Sequence[Instance],
                             floor: int) -> None:
        """Before draining `batch`: probe every instance that should be
        serving, including those this run has not touched. If one is
        unhealthy and draining would leave fewer than `floor` serving, or it
        is in the batch (a dead host would only fail its deploy, slowly),
        do not drain: pause for a human (exit 7 headless), or apply
        on_failure when the plan says so. It is named, and said not to be
        the release's fault when the release has not touched it."""
        check = await self.capacity(should_serve, batch, floor)
        if check.ok:
            return
        reason = self.capacity_reason(title, check)
        self.emit(Notice(level="error", message=reason))
        section = self.plan.canary if self.plan.strategy == "canary" else self.plan.rolling
        if section.capacity_guard == "on_failure":
            raise GateFailed(reason)
        await self.control.wait_for_promotion(reason)

    async def capacity(self, should_serve: Sequence[Instance], batch: Sequence[Instance],
                       floor: int) -> CapacityCheck:
        """Probe every instance in `should_serve` and decide (capacity.py)
        whether `batch` may be drained; journalled, not acted on. One known
        down from nginx's log (strategies/down.py) counts as unhealthy."""
        samples = await asyncio.gather(*(self.instances.probe(i, quiet=True) for i in should_serve))
        # an instance whose every try failed in the last sample does not serve, whatever /health says
        healthy = {i.key for i, s in zip(should_serve, samples) if s.ok and i.key not in self.traffic.down}
        # the upstream's servers a --limit left out serve too, unprobed (the run leaves them alone): the
        # check is over the whole upstream, its floor raised by as many as they add
        spare = [str(b) for b in self.traffic.untouched]
        check = check_capacity([i.key for i in should_serve] + spare, healthy | set(spare), [i.key for i in batch],
                               floor + len(spare))
        self.emit(CapacityChecked(serving=check.serving, after=check.after, floor=check.floor,
                                  unhealthy=list(check.unhealthy), in_batch=list(check.in_batch), ok=check.ok))
        return check

    def capacity_reason(self, title: str, check: CapacityCheck) -> str:
        ops = self.instances
        parts = []
        for key in check.unhealthy:
            untouched = ops.versions.get(key) == ops.old_versions.get(key) != ops.version
            parts.append(f"{key} unhealthy" + (" (not touched by this release)" if untouched else ""))
        return (f"{title}: " + ", ".join(parts) + f"; draining would leave {check.after} of "
                f"{check.serving + len(check.unhealthy)} serving, the plan allows no fewer than {check.floor}"
                + ("; it is in this batch" if check.in_batch else ""))
