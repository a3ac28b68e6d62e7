"""Traffic control: every change to nginx, and what clients saw through it.

A routing change goes only to instances verified just now; the original
managed file is put back byte for byte when the run ends in the shape it
started; and from the first change to the last, every second of client
traffic is counted and watched between analysis windows. Over the narrow
`inventory.driver.LoadBalancerDriver`. Strategies see this through the
`Traffic` protocol (strategies/context.py).
"""
from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Protocol, Sequence

from inventory.driver import DriverError, HealthSample, LoadBalancerDriver, PoolStats
from inventory.model import Instance
from inventory.nginx_config import Backend, LbState, parse_generation, parse_pools

from . import analysis
from .down import Down, DownWatch, answering, find_down, per_backend
from .events import AlertRaised, ClientTraffic, Emit, Notice, RoutingVerified, TrafficChanged
from .origin import Origin
from .plan import Plan
from .topology import Pool, backend, lb_state, with_untouched


@dataclass
class ClientTally:
    """Requests clients sent through the LBs and how many failed (5xx as
    the client saw it), from the console's first LB change to its last."""

    requests: int = 0
    failed: int = 0
    hidden: int = 0  # failures nginx retried away from the client

    def add(self, pools: Iterable[PoolStats]) -> None:
        for st in pools:
            self.requests += st.requests
            self.failed += st.errors
            self.hidden += st.hidden

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "failed": self.failed, "hidden": self.hidden}


def pool_summary(stats: PoolStats) -> dict[str, float]:
    p95 = analysis.percentile(stats.latencies)
    return {"requests": stats.requests, "errors": stats.errors, "retried": stats.retried, "hidden": stats.hidden,
            "error_rate": round(stats.errors / stats.requests, 6) if stats.requests else 0.0,
            "p95": round(p95, 4) if p95 is not None else 0.0}


class RoutedInstances(Protocol):
    """What routing needs of the instances (strategies/instances.py InstanceOps):
    who they are, and whether each was verified just now."""

    @property
    def all(self) -> Sequence[Instance]: ...

    @property
    def by_key(self) -> Mapping[str, Instance]: ...

    @property
    def by_backend(self) -> Mapping[str, Instance]: ...

    async def probe(self, inst: Instance, *, quiet: bool = False, idle: bool = False) -> HealthSample: ...

    def why_unverified(self, inst: Instance, sample: HealthSample) -> str: ...

    def verified_within(self, inst: Instance, seconds: float) -> bool: ...


class Routing(Protocol):
    """What nginx routes to, as the run's status folds it (strategies/status.py
    RunStatus): as the run found it, then as each verified change set it."""

    def routed(self) -> list[str]: ...

    def routes(self, key: str) -> bool: ...


class Alarm(Protocol):
    """Where the clients' watcher raises a critical error rate (strategies/control.py RunControl)."""

    @property
    def alarmed(self) -> bool: ...

    def alarm(self, reason: str) -> None: ...


class TrafficControl:
    def __init__(self, plan: Plan, driver: LoadBalancerDriver, instances: RoutedInstances, routing: Routing,
                 control: Alarm, emit: Emit, untouched: Sequence[Instance] = ()):
        self.plan = plan
        # the upstream's instances a --limit left out: in every change, as they serve, never touched
        self.untouched = tuple(backend(i) for i in untouched)
        self.driver = driver
        self.instances = instances
        self.routing = routing
        self.control = control
        self.emit = emit
        self._snapshot: dict[str, str] = {}  # every LB's managed file before the run (start_from)
        self.clients = ClientTally()
        self._window_open = False  # an analysis window reads traffic itself (open_window)
        self._generation = itertools.count(1)
        self._run_id = time.strftime("%Y%m%d%H%M%S")
        self._lock = asyncio.Lock()
        self._accounting = False
        self._watcher: asyncio.Task[None] | None = None
        self.down = DownWatch()  # instances that should serve and were found down (strategies/down.py)

    def start_from(self, origin: Origin) -> None:
        """Where the run starts (strategies/origin.py): the LB files before
        any change, which `restore` puts back."""
        self._snapshot = dict(origin.lb_files)

    def open_window(self) -> None:
        """An analysis window reads traffic itself from now: the clients'
        watcher leaves every read to it until `close_window`."""
        self._window_open = True

    def close_window(self) -> None:
        self._window_open = False

    def next_generation(self) -> str:
        return f"{self._run_id}-{next(self._generation)}"

    # -- routing ---------------------------------------------------------------
    async def apply(self, state: LbState) -> None:
        """Apply a routing change, sending traffic only to instances verified
        just now (see `verified`); the instances a --limit left out keep
        serving in it (topology.with_untouched)."""
        state = with_untouched(await self.verified(state), self.untouched, len(self.instances.all))
        await self.start_accounting()
        started = self.driver.clock.now()
        steps = await self.driver.lb_apply(state)
        self.emit(TrafficChanged(generation=state.generation,
                                 pools={p: [str(b) for b in bs] for p, bs in state.pools.items()},
                                 weights=dict(state.weights), duration=round(self.driver.clock.now() - started, 4),
                                 serving=state.default_pool, steps=dict(steps or {})))

    def original(self) -> dict[str, tuple[Backend, ...]]:
        """The pools of the managed file before the run."""
        return parse_pools(next(iter(self._snapshot.values())), self.plan.nginx.upstream)

    async def restore(self) -> None:
        """Put every LB's managed file back exactly as it was before the run,
        when every instance it routes to is verified now; otherwise the same
        pools without the instances that failed verification."""
        first = next(iter(self._snapshot.values()))
        pools = self.original()
        original = replace(lb_state(self.plan, {}, next(iter(pools), Pool.STABLE), generation=self.next_generation()),
                           pools=pools)
        checked = await self.verified(original)
        if checked.pools != original.pools:
            await self.apply(checked)
            return
        await self.start_accounting()
        started = self.driver.clock.now()
        steps = await self.driver.lb_restore(self._snapshot)
        self.emit(TrafficChanged(generation=parse_generation(first) or "restored",
                                 pools={p: [str(b) for b in bs] for p, bs in pools.items()}, weights={},
                                 duration=round(self.driver.clock.now() - started, 4), serving=original.default_pool,
                                 steps=dict(steps or {})))

    async def verified(self, state: LbState) -> LbState:
        """Route only to what was verified: every instance `state` sends
        traffic to must have passed the health gate's probe, on the version
        the engine expects it to run, within the last health interval;
        others are probed now. Instances that fail are left out of the
        change (and named); a pool that would lose every server it is meant
        to serve from refuses the change."""
        ops = self.instances
        routed = [ops.by_backend[str(b)] for bs in state.pools.values() for b in bs if str(b) in ops.by_backend]
        stale = list({i.key: i for i in routed
                      if not ops.verified_within(i, self.plan.health.interval)}.values())
        samples = await asyncio.gather(*(ops.probe(i, quiet=True) for i in stale))
        bad = {i.key: ops.why_unverified(i, s) for i, s in zip(stale, samples)}
        bad = {k: v for k, v in bad.items() if v}
        self.emit(RoutingVerified(generation=state.generation, instances=len({i.key for i in routed}),
                                  probed=len(stale), left_out=dict(bad)))
        if not bad:
            return state
        drop = {str(backend(ops.by_key[k])) for k in bad}
        pools = {p: tuple(b for b in bs if str(b) not in drop) for p, bs in state.pools.items()}
        emptied = [p for p, bs in state.pools.items()
                   if bs and not pools[p] and (p == state.default_pool or state.weights.get(p, 0) > 0)]
        names = ", ".join(f"{k} ({v})" for k, v in bad.items())
        if emptied:
            raise DriverError("nginx", "route", f"pool {emptied[0]} would have no verified instance: {names}")
        self.emit(Notice(level="warning", message=f"left out of nginx, not verified just now: {names}"))
        return replace(state, pools=pools)

    def routes(self, inst: Instance) -> bool:
        """Does nginx send traffic to `inst` (as the run found it, then as its last change set it)?"""
        return self.routing.routes(inst.key)

    def routed(self) -> list[Instance]:
        """The instances nginx routes to (as the run found it, then as its last change set it)."""
        keys = set(self.routing.routed())
        return [i for i in self.instances.all if i.key in keys]

    def report_down(self, traffic: Mapping[str, PoolStats], probes: Mapping[str, bool],
                    should_serve: Sequence[Instance], where: str) -> list[Down]:
        """The instances of `should_serve` down in this sample (every try
        nginx sent them failed, or their probe did); a critical alert names
        each one the first time it is found down, and again only after it
        was seen answering in between."""
        addrs = {str(backend(i)): i.key for i in should_serve}
        tries = per_backend(traffic)
        found = find_down(addrs, tries, probes)
        for d in self.down.see(found, answering(addrs, tries, probes)):
            share = d.failed / d.tries if d.tries else 1.0
            self.emit(AlertRaised(tier="critical", metric="instance_down", value=share, threshold=1.0,
                                  where=where, instance=d.instance, reason=d.reason.value))
        return found

    # -- what clients saw ------------------------------------------------------------
    async def read(self) -> dict[str, PoolStats]:
        """Traffic since the last read, counted into what clients saw once
        the console has changed nginx."""
        async with self._lock:
            traffic = await self.driver.traffic()
        if self._accounting:
            self.clients.add(traffic.values())
        return traffic

    async def start_accounting(self) -> None:
        """Before the first LB change: from here to the last change every
        second of client traffic is counted, and watched between windows."""
        if self._accounting:
            return
        await self.read()  # what came before the console changed anything is not ours
        self._accounting = True
        self._watcher = asyncio.ensure_future(self._watch_clients())

    async def _watch_clients(self) -> None:
        """Between analysis windows, read what clients see every sample
        interval: the journal records it, and a critical error rate applies
        on_failure at the next safe point (a switch or a step is never
        unwatched)."""
        policy = analysis.Policy.of(self.plan.thresholds, self.plan.alerts)
        limits = [r.value for r in policy.critical if r.metric == "error_rate" and r.op == ">"]
        interval = float(self.plan.canary.sample_interval)
        cost = 0.0  # engine-clock seconds the last read took
        while True:
            # never more than a fifth of the event loop (a SIMULATED fleet at a
            # high time scale makes every read expensive in engine seconds)
            await self.driver.clock.sleep(max(interval, 4 * cost))
            if self._window_open:
                continue
            started = time.perf_counter()
            try:
                traffic = await self.read()
            except DriverError:
                continue
            cost = (time.perf_counter() - started) * self.driver.clock.scale
            self.emit_clients(traffic)
            self.report_down(traffic, {}, self.routed(), "clients")
            requests = sum(s.requests for s in traffic.values())
            failed = sum(s.errors for s in traffic.values())
            for limit in limits:
                if not self.control.alarmed and analysis.clearly_above(failed, requests, limit):
                    self.emit(AlertRaised(tier="critical", metric="error_rate", value=failed / requests,
                                          threshold=limit, where="clients"))
                    self.control.alarm(f"critical: clients saw error_rate {failed / requests * 100:.2f}% > "
                                       f"{limit * 100:.2f}% ({failed} of {requests} requests)")

    def emit_clients(self, traffic: dict[str, PoolStats]) -> None:
        self.emit(ClientTraffic(pools={p: pool_summary(s) for p, s in traffic.items()},
                                requests=self.clients.requests, failed=self.clients.failed))

    async def stop_accounting(self) -> None:
        """After the last LB change: count the tail, stop watching."""
        if self._watcher is not None:
            self._watcher.cancel()
            try:
                await self._watcher
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the watcher never decides the outcome
                pass
            self._watcher = None
        if self._accounting:
            try:
                self.emit_clients(await self.read())
            except DriverError:
                pass
