"""The async engine: runs a plan against a fleet driver, emitting events and
obeying operator commands.

The engine owns the operations every strategy shares (drain, update one
instance, gate a window of metrics, put nginx back) and the control loop
(pause, resume, promote, rollback, abort). Strategies (rolling.py, canary.py,
bluegreen.py) sequence those operations; pure decisions live in batches.py,
analysis.py, capacity.py and topology.py; all I/O goes through the driver.

Safety rule: commands and failures are acted on only at safe points, where
every instance is either serving on one version or deliberately out of
nginx, so no interrupt leaves a host half-drained.
"""
from __future__ import annotations

import asyncio
import enum
import itertools
import time
from dataclasses import dataclass, replace
from typing import Any, Iterable, Sequence

from inventory.driver import CommandRecord, DriverError, FleetDriver, HealthSample, PoolStats
from inventory.lock import HEARTBEAT_INTERVAL, LockHeld
from inventory.model import Instance, Inventory
from inventory.nginx_config import LbState, parse_generation, parse_pools

from . import analysis, checklist
from .capacity import CapacityCheck, check_capacity
from .events import (AlertRaised, CapacityChecked, ClientTraffic, CommandRan, Event, EventBus, GateEvaluated,
                     HealthChecked, InstanceChanged, InstancePhase, MetricsSampled, Notice, OperatorCommand,
                     Phase, PhaseChanged, RoutingVerified, RunFinished, RunStarted, TrafficChanged)
from .plan import render_commands
from .topology import backend, lb_state, load_balancers, resolve_instances


# how often a drain asks an instance for its in-flight count: requests still
# running on a just-drained backend mostly end within tens of milliseconds,
# so a coarser poll would add its own interval to most batches
DRAIN_POLL = 0.05


class Command(str, enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote_full"
    ROLLBACK = "rollback"
    ABORT = "abort"


class Outcome(str, enum.Enum):
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    ABORTED = "aborted"
    REFUSED = "refused"
    AWAITING_PROMOTION = "awaiting_promotion"


class PreflightError(Exception):
    """The fleet is not in a state to start from; nothing was changed."""


class Stop(Exception):
    """Raised at a safe point when an operator asked to roll back or abort."""

    def __init__(self, command: Command, reason: str):
        super().__init__(reason)
        self.command = command
        self.reason = reason


class GateFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class AwaitingPromotion(Exception):
    """Headless run reached an indefinite pause without --auto-promote."""


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    message: str
    versions: dict[str, str | None]


@dataclass(frozen=True)
class ResumeState:
    """What a resumed session takes from the journal of the one that died:
    the versions and LB files from before any change."""

    journal: str
    old_versions: dict[str, str | None]
    lb_snapshot: dict[str, str]


@dataclass(frozen=True)
class PlannedStep:
    title: str
    instances: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "instances": list(self.instances)}


class Engine:
    """One rollout. Create, subscribe to `bus`, then `await run()`."""

    def __init__(self, plan: Any, inventory: Inventory, driver: FleetDriver, *, version: str,
                 bus: EventBus | None = None, interactive: bool = False, auto_promote: bool = False,
                 resume: "ResumeState | None" = None, lock_holder: dict | None = None,
                 lock_wait: float = 0.0, break_stale_lock: bool = False, lock_max_age: float = 120.0,
                 run_checklist: bool = True):
        self.plan = plan
        self.lock_holder = dict(lock_holder or {"plan": getattr(plan, "source", "")})
        self.lock_wait = lock_wait
        self.break_stale_lock = break_stale_lock
        self.lock_max_age = lock_max_age
        self.run_checklist = run_checklist
        self._locked = False
        self._heartbeat: asyncio.Task | None = None
        self._fatal: str | None = None
        self.inventory = inventory
        self.driver = driver
        self.version = version
        self.bus = bus or EventBus()
        self.interactive = interactive
        self.auto_promote = auto_promote
        self.resume = resume
        self._made_safe = False
        self.instances: list[Instance] = resolve_instances(plan, inventory)
        self.lbs = load_balancers(plan, inventory)
        self.by_key = {i.key: i for i in self.instances}
        self.old_versions: dict[str, str | None] = {}
        self.versions: dict[str, str | None] = {}
        self.lb: LbState | None = None
        self.lb_snapshot: dict[str, str] = {}
        self.sample_interval = float(plan.canary.sample_interval)
        self._generation = itertools.count(1)
        self._run_id = time.strftime("%Y%m%d%H%M%S")
        self._t0 = driver.clock.now()
        self._requested: tuple[Command, str] | None = None
        self._running = asyncio.Event()
        self._running.set()
        self._promoted = asyncio.Event()
        self._promote_full = False
        self._wake = asyncio.Event()
        self._finished = False
        self._alerts: dict[tuple[str, str], str] = {}
        self.phase = Phase.PREFLIGHT
        self.by_backend = {str(backend(i)): i for i in self.instances}
        self._verified_at: dict[str, float] = {}  # instance key -> engine time of its last good probe
        self._traffic_lock = asyncio.Lock()
        self.clients = ClientTally()  # what clients saw, from the first LB change to the last
        self._accounting = False
        self._window_open = False
        self._watcher: asyncio.Task | None = None
        self._alarm: str | None = None  # a critical alert between windows: on_failure at the next safe point

    # -- events ----------------------------------------------------------
    def elapsed(self) -> float:
        return self.driver.clock.now() - self._t0

    def emit(self, event_type: type[Event], **fields: Any) -> None:
        self.bus.publish(event_type(at=round(self.elapsed(), 3), **fields))

    def set_phase(self, phase: Phase, reason: str = "") -> None:
        self.phase = phase
        self.emit(PhaseChanged, phase=phase.value, reason=reason)

    def instance_phase(self, inst: Instance, phase: InstancePhase, detail: str = "") -> None:
        self.emit(InstanceChanged, instance=inst.key, phase=phase.value,
                  version=self.versions.get(inst.key), detail=detail)

    def _on_command(self, record: CommandRecord) -> None:
        self.emit(CommandRan, host=record.host, command=record.command, exit_status=record.exit_status,
                  duration=round(record.duration, 4), stdout=record.stdout, stderr=record.stderr)

    # -- operator commands --------------------------------------------------
    def command(self, cmd: Command, source: str = "operator", sender: dict[str, Any] | None = None) -> bool:
        """Ask the engine to do something; acted on at the next safe point.
        Returns whether the command applies in the current state. `sender`
        identifies who sent it from another shell (journalled)."""
        accepted, detail = self._accept(cmd)
        self.emit(OperatorCommand, command=cmd.value, source=source, accepted=accepted, detail=detail,
                  sender=dict(sender or {}))
        return accepted

    def _accept(self, cmd: Command) -> tuple[bool, str]:
        if self._finished:
            return False, "the run has finished"
        if cmd in (Command.ROLLBACK, Command.ABORT):
            if self._requested is not None or self.phase == Phase.ROLLING_BACK:
                return False, "already stopping"
            self._requested = (cmd, f"{cmd.value} requested by operator")
            self._running.set()
            self._wake.set()
            return True, "at the next safe point"
        if cmd == Command.PAUSE:
            if not self._running.is_set():
                return False, "already paused"
            self._running.clear()
            return True, "at the next safe point"
        if cmd == Command.RESUME:
            if self._running.is_set():
                return False, "not paused"
            self._running.set()
            self._wake.set()
            return True, ""
        if cmd in (Command.PROMOTE, Command.PROMOTE_FULL):
            self._promote_full = self._promote_full or cmd == Command.PROMOTE_FULL
            self._promoted.set()
            self._running.set()
            self._wake.set()
            return True, "skipping the remaining steps" if cmd == Command.PROMOTE_FULL else "next step"
        return False, "unknown command"

    def fail_stop(self, reason: str) -> None:
        """Something the run depends on broke (e.g. the journal cannot be
        written): stop at the next safe point, ending FAILED (a human must
        look), without starting further changes."""
        if self._finished or self._fatal:
            return
        self._fatal = reason
        self.emit(Notice, level="error", message=f"{reason}: stopping at the next safe point")
        if self._requested is None:
            self._requested = (Command.ABORT, reason)
        self._running.set()
        self._wake.set()

    @property
    def promote_full(self) -> bool:
        return self._promote_full

    async def safe_point(self) -> None:
        """Honour rollback/abort/pause and critical alarms. Call only where
        the fleet is safe."""
        if self._requested:
            raise Stop(*self._requested)
        self._raise_alarm()
        if not self._running.is_set():
            previous = self.phase
            self.set_phase(Phase.PAUSED, "operator")
            while not self._running.is_set():
                await self._wait_wake(None)
            if self._requested:
                raise Stop(*self._requested)
            self.set_phase(previous, "resumed")

    async def _wait_wake(self, seconds: float | None) -> None:
        """Wait for a command, or `seconds` of engine-clock time."""
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.driver.clock.sleep(seconds)) if seconds is not None else None
        waiter = asyncio.ensure_future(self._wake.wait())
        pending = {waiter} | ({sleeper} if sleeper else set())
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pending:
                task.cancel()

    async def wait(self, seconds: float, promotable: bool = False) -> None:
        """Sleep on the engine clock, waking at once for commands; time spent
        paused does not count. A `promotable` wait (a canary's timed pause)
        ends early on promote or promote-full: the operator's "next step"."""
        end = self.driver.clock.now() + seconds
        while True:
            await self.safe_point()
            if promotable and self._promoted.is_set():
                self._promoted.clear()
                return
            remaining = end - self.driver.clock.now()
            if remaining <= 0:
                return
            before = self.driver.clock.now()
            await self._wait_wake(remaining)
            if not self._running.is_set():
                paused_at = before
                await self.safe_point()
                end += self.driver.clock.now() - paused_at

    async def wait_for_promotion(self, title: str) -> bool:
        """An indefinite pause. Returns True when promoted; raises
        AwaitingPromotion in headless mode without auto-promote."""
        if self._promoted.is_set() or self.auto_promote:
            self._promoted.clear()
            return True
        if not self.interactive:
            raise AwaitingPromotion(title)
        self.set_phase(Phase.PAUSED, f"{title}: waiting for promote")
        while not self._promoted.is_set():
            await self._wait_wake(None)
            if self._requested:
                raise Stop(*self._requested)
            self._raise_alarm()
        self._promoted.clear()
        self.set_phase(Phase.RUNNING, "promoted")
        return True

    # -- load balancer ------------------------------------------------------
    def next_generation(self) -> str:
        return f"{self._run_id}-{next(self._generation)}"

    async def apply_lb(self, state: LbState) -> None:
        """Apply a routing change, sending traffic only to instances verified
        just now (see `verified`)."""
        state = await self.verified(state)
        await self.start_accounting()
        started = self.driver.clock.now()
        steps = await self.driver.lb_apply(state)
        self.lb = state
        self.emit(TrafficChanged, generation=state.generation,
                  pools={p: [str(b) for b in bs] for p, bs in state.pools.items()},
                  weights=dict(state.weights), duration=round(self.driver.clock.now() - started, 4),
                  serving=state.default_pool, steps=dict(steps or {}))

    async def restore_lb(self) -> None:
        """Put every LB's managed file back exactly as it was before the run,
        when every instance it routes to is verified now; otherwise the same
        pools without the instances that failed verification."""
        first = next(iter(self.lb_snapshot.values()))
        pools = parse_pools(first, self.plan.nginx.upstream)
        original = replace(lb_state(self.plan, {}, next(iter(pools), "stable"), generation=self.next_generation()),
                           pools=pools)
        checked = await self.verified(original)
        if checked.pools != original.pools:
            await self.apply_lb(checked)
            return
        await self.start_accounting()
        started = self.driver.clock.now()
        steps = await self.driver.lb_restore(self.lb_snapshot)
        self.lb = original
        self.emit(TrafficChanged, generation=parse_generation(first) or "restored",
                  pools={p: [str(b) for b in bs] for p, bs in pools.items()}, weights={},
                  duration=round(self.driver.clock.now() - started, 4), serving=original.default_pool,
                  steps=dict(steps or {}))

    async def verified(self, state: LbState) -> LbState:
        """Route only to what was verified: every instance `state` sends
        traffic to must have passed the health gate's probe, on the version
        the engine expects it to run, within the last health interval;
        others are probed now. Instances that fail are left out of the
        change (and named); a pool that would lose every server it is meant
        to serve from refuses the change."""
        now = self.driver.clock.now()
        routed = [self.by_backend[str(b)] for bs in state.pools.values() for b in bs if str(b) in self.by_backend]
        stale = list({i.key: i for i in routed
                      if now - self._verified_at.get(i.key, float("-inf")) > self.plan.health.interval}.values())
        samples = await asyncio.gather(*(self.probe(i, quiet=True) for i in stale))
        bad = {i.key: self.why_unverified(i, s) for i, s in zip(stale, samples)}
        bad = {k: v for k, v in bad.items() if v}
        self.emit(RoutingVerified, generation=state.generation, instances=len({i.key for i in routed}),
                  probed=len(stale), left_out=dict(bad))
        if not bad:
            return state
        drop = {str(backend(self.by_key[k])) for k in bad}
        pools = {p: tuple(b for b in bs if str(b) not in drop) for p, bs in state.pools.items()}
        emptied = [p for p, bs in state.pools.items()
                   if bs and not pools[p] and (p == state.default_pool or state.weights.get(p, 0) > 0)]
        names = ", ".join(f"{k} ({v})" for k, v in bad.items())
        if emptied:
            raise DriverError("nginx", "route", f"pool {emptied[0]} would have no verified instance: {names}")
        self.emit(Notice, level="warning", message=f"left out of nginx, not verified just now: {names}")
        return replace(state, pools=pools)

    def routes(self, inst: Instance) -> bool:
        """Does the LB state this session last applied send traffic to `inst`?"""
        return self.lb is not None and any(str(b) == str(backend(inst)) for bs in self.lb.pools.values() for b in bs)

    def why_unverified(self, inst: Instance, sample: HealthSample) -> str:
        """'' when the probe verifies the instance, else why not."""
        if not sample.ok:
            return sample.detail or "unhealthy"
        expected = self.versions.get(inst.key)
        if self.plan.health.expect_version and expected is not None and sample.version != expected:
            return f"reports version {sample.version}, expected {expected}"
        return ""

    # -- what clients saw -------------------------------------------------------
    async def read_traffic(self) -> dict[str, PoolStats]:
        """Traffic since the last read, counted into what clients saw once
        the console has changed nginx."""
        async with self._traffic_lock:
            traffic = await self.driver.traffic()
        if self._accounting:
            self.clients.add(traffic.values())
        return traffic

    async def start_accounting(self) -> None:
        """Before the first LB change: from here to the last change every
        second of client traffic is counted, and watched between windows."""
        if self._accounting:
            return
        await self.read_traffic()  # what came before the console changed anything is not ours
        self._accounting = True
        self._watcher = asyncio.ensure_future(self._watch_clients())

    async def _watch_clients(self) -> None:
        """Between analysis windows, read what clients see every sample
        interval: the journal records it, and a critical error rate applies
        on_failure at the next safe point (a switch or a step is never
        unwatched)."""
        policy = analysis.Policy.of(self.plan.thresholds, self.plan.alerts)
        limits = [r.value for r in policy.critical if r.metric == "error_rate" and r.op == ">"]
        cost = 0.0  # engine-clock seconds the last read took
        while True:
            # never more than a fifth of the event loop (a SIMULATED fleet at a
            # high time scale makes every read expensive in engine seconds)
            await self.driver.clock.sleep(max(self.sample_interval, 4 * cost))
            if self._window_open:
                continue
            started = time.perf_counter()
            try:
                traffic = await self.read_traffic()
            except DriverError:
                continue
            cost = (time.perf_counter() - started) * self.driver.clock.scale
            self.emit_client_traffic(traffic)
            requests = sum(s.requests for s in traffic.values())
            failed = sum(s.errors for s in traffic.values())
            for limit in limits:
                if self._alarm is None and analysis.clearly_above(failed, requests, limit):
                    self._alarm = (f"critical: clients saw error_rate {failed / requests * 100:.2f}% > "
                                   f"{limit * 100:.2f}% ({failed} of {requests} requests)")
                    self.emit(AlertRaised, tier="critical", metric="error_rate", value=failed / requests,
                              threshold=limit, where="clients")
                    self._wake.set()

    def emit_client_traffic(self, traffic: dict[str, PoolStats]) -> None:
        self.emit(ClientTraffic, pools={p: pool_summary(s) for p, s in traffic.items()},
                  requests=self.clients.requests, failed=self.clients.failed)

    def _raise_alarm(self) -> None:
        if self._alarm:
            reason, self._alarm = self._alarm, None
            raise GateFailed(reason)

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
                self.emit_client_traffic(await self.read_traffic())
            except DriverError:
                pass

    # -- the rollout lock -----------------------------------------------------
    async def acquire_lock(self) -> None:
        """Take the rollout lock on the LBs before preflight changes anything;
        raises LockHeld (refused) naming the holder."""
        takeover = self.resume.journal if self.resume is not None else None
        await self.driver.lock_acquire(self.lock_holder, self.lock_wait, break_stale=self.break_stale_lock,
                                       max_age=self.lock_max_age, takeover_journal=takeover)
        self._locked = True
        self._heartbeat = asyncio.ensure_future(self._beat())

    async def _beat(self) -> None:
        warned = False
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                ours = await self.driver.lock_heartbeat()
            except DriverError as exc:
                if not warned:
                    self.emit(Notice, level="warning", message=f"lock heartbeat failed: {exc}")
                    warned = True
                continue
            warned = False
            if not ours:
                self.fail_stop("the rollout lock was broken by someone else")
                return

    async def release_lock(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            try:
                await self._heartbeat
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._heartbeat = None
        if not self._locked:
            return
        self._locked = False
        try:
            await self.driver.lock_release()
        except DriverError as exc:
            self.emit(Notice, level="warning", message=f"rollout lock not released ({exc}); "
                      f"it goes stale after {self.lock_max_age:g} s without heartbeat")

    # -- preflight ---------------------------------------------------------
    async def checklist(self) -> list["checklist.CheckItem"]:
        """The pre-deployment checklist (strategies/checklist.py), each item
        also reported as a Notice."""
        items = await checklist.run_checklist(self.plan, self.instances, self.lbs, self.driver,
                                              self.version, probe=self.probe)
        bad = checklist.failed(items)
        for item in bad:
            self.emit(Notice, level="error", message="check: " + item.line())
        self.emit(Notice, level="info" if not bad else "error",
                  message=f"checklist: {len(items) - len(bad)} of {len(items)} items passed")
        return items
    async def locked_preflight(self, expected: Sequence[Instance]) -> None:
        """Take the lock and run the checklist side by side, then the rest of
        preflight under the lock. The checklist only reads, so nothing is
        changed before the lock is held; the LB snapshot is read only once
        it is (a console finishing its own run may still change the file
        until it lets go). A refused lock is reported before a failed
        checklist, as when they ran one after the other."""
        async def no_checklist() -> None:
            return None

        run_checklist = self.run_checklist and self.resume is None
        locked, items = await asyncio.gather(self.acquire_lock(),
                                             self.checklist() if run_checklist else no_checklist(),
                                             return_exceptions=True)
        if isinstance(locked, BaseException):
            raise locked
        if isinstance(items, BaseException):
            raise items
        await self.preflight(expected, items)

    async def preflight(self, expected: Sequence[Instance],
                        items: Sequence["checklist.CheckItem"] | None = None) -> None:
        """Record where the fleet starts: the LB files and every instance's
        version. Refuses (nothing changed) if the LBs are not managed by the
        console, disagree, route to other instances than `expected` (what
        the plan says serves now), or an instance that takes traffic is
        unhealthy, or the checklist's `items` (run beside the lock) failed.
        A resumed session starts from the recorded originals instead."""
        texts = await self.driver.lb_read()
        missing = [name for name, text in texts.items() if parse_generation(text) is None]
        if missing:
            raise PreflightError(f"{', '.join(missing)}: no rollout-console managed nginx file at "
                                 f"{self.plan.nginx.config}")
        if len(set(texts.values())) > 1 and self.resume is None:
            raise PreflightError("load balancers disagree: their managed nginx files differ")
        if self.resume is None:
            first = next(iter(texts.values()))
            self.check_live_routing({str(b) for bs in parse_pools(first, self.plan.nginx.upstream).values()
                                     for b in bs}, expected)
        if items is not None:
            bad = checklist.failed(items)
            if bad:
                raise PreflightError("checklist: " + "; ".join(f"{i.name}: {i.reason}" for i in bad[:5])
                                     + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
        probes = await asyncio.gather(*(self.probe(i) for i in self.instances))
        current = {inst.key: (s.version if s.ok else None) for inst, s in zip(self.instances, probes)}
        if self.resume is not None:
            self.lb_snapshot = dict(self.resume.lb_snapshot)
            self.old_versions = dict(self.resume.old_versions)
            self.versions = current
            return
        self.lb_snapshot = texts
        serving = {str(b) for bs in parse_pools(next(iter(texts.values())), self.plan.nginx.upstream).values()
                   for b in bs}
        sick = [i.key for i, s in zip(self.instances, probes)
                if not s.ok and str(backend(i)) in serving]
        if sick:
            raise PreflightError(f"{', '.join(sick)}: unhealthy while taking traffic, before any change")
        self.old_versions = current
        self.versions = dict(current)

    def check_live_routing(self, routed: set[str], expected: Sequence[Instance]) -> None:
        """What nginx routes to now is the truth: a plan that expects other
        instances to be serving is refused before anything changes."""
        want = {str(backend(i)) for i in expected}
        if routed == want:
            return
        upstream = self.plan.nginx.upstream
        what = ", ".join(sorted(routed)) or "nothing"
        plan_says = ", ".join(sorted(want)) or "nothing"
        detail = ""
        if self.plan.strategy == "blue_green":
            bg = self.plan.blue_green
            detail = f" (active: {bg.active}, {bg.mode} form)"
        raise PreflightError(f"live routing disagrees with the plan: nginx upstream {upstream!r} routes to {what} "
                             f"({self.plan.nginx.config}); the plan{detail} expects {plan_says}")

    async def probe(self, inst: Instance, *, quiet: bool = False) -> HealthSample:
        """The health gate's probe. A pass on the expected version marks the
        instance verified (routing may use it); `quiet` emits only failures
        (routing checks of many instances)."""
        health = self.plan.health
        sample = await self.driver.health(inst, health.path, health.port or inst.port, health.timeout)
        if not self.why_unverified(inst, sample):
            self._verified_at[inst.key] = self.driver.clock.now()
        if not quiet or not sample.ok:
            self.emit(HealthChecked, instance=inst.key, ok=sample.ok, version=sample.version,
                      latency=round(sample.latency, 4), detail=sample.detail)
        return sample

    # -- one instance ------------------------------------------------------
    async def drain(self, insts: Sequence[Instance]) -> None:
        """Wait for in-flight requests on instances already out of nginx."""
        async def one(inst: Instance) -> None:
            self.instance_phase(inst, InstancePhase.DRAINING)
            end = self.driver.clock.now() + self.plan.drain.timeout
            while self.driver.clock.now() < end:
                try:
                    if await self.driver.inflight(inst) == 0:
                        return
                except DriverError:
                    return  # not answering: nothing in flight to protect
                await self.driver.clock.sleep(DRAIN_POLL)
            self.emit(Notice, level="warning", message=f"{inst.key}: still busy after drain timeout")
        await asyncio.gather(*(one(i) for i in insts))

    async def update_instance(self, inst: Instance, version: str) -> tuple[bool, str]:
        """Deploy `version`, restart, and wait until healthy on it. The
        plan's health deadline is a progress deadline: it runs from the
        restart, so a unit slow to start counts against it too."""
        plan = self.plan
        deadline = plan.health.deadline
        try:
            self.instance_phase(inst, InstancePhase.DEPLOYING, version)
            commands = render_commands(plan, version, inst.slot, inst.host.name)
            await self.driver.run_commands(inst, commands, plan.deploy.timeout, version=version)
            self.instance_phase(inst, InstancePhase.RESTARTING)
            started = self.driver.clock.now()
            await asyncio.wait_for(self.driver.restart(inst), deadline / self.driver.clock.scale)
        except DriverError as exc:
            self.versions[inst.key] = None
            return False, exc.message
        except asyncio.TimeoutError:
            self.versions[inst.key] = None
            return False, f"{inst.unit} still starting after the {deadline:g}s deadline"
        self.versions[inst.key] = version
        return await self.wait_healthy(inst, version, started + deadline)

    async def wait_healthy(self, inst: Instance, version: str, end: float) -> tuple[bool, str]:
        """Probe until `passes` checks in a row pass on `version`, or `end`
        (engine clock) comes."""
        health = self.plan.health
        self.instance_phase(inst, InstancePhase.CHECKING)
        passes = 0
        last = "no check ran"
        while self.driver.clock.now() < end:
            sample = await self.probe(inst)
            if sample.ok and (not health.expect_version or sample.version == version):
                passes += 1
                if passes >= health.passes:
                    return True, "healthy"
            else:
                passes = 0
                last = sample.detail if not sample.ok else f"reports version {sample.version}, expected {version}"
            await self.driver.clock.sleep(health.interval)
        return False, f"not healthy within the {health.deadline:g}s deadline: {last}"

    async def update_all(self, insts: Sequence[Instance], version: str) -> dict[str, tuple[bool, str]]:
        results = await asyncio.gather(*(self.update_instance(i, version) for i in insts))
        return {i.key: r for i, r in zip(insts, results)}

    # -- metrics and gates ---------------------------------------------------
    async def sample(self, judged: Sequence[Instance],
                     baseline: Sequence[Instance] = ()) -> tuple[dict[str, PoolStats], analysis.Readings]:
        """Traffic per pool since the last sample, and the health, quality
        and unit CPU of (a spread of up to 50 of) the judged instances, with
        the CPU of up to 10 baseline instances to compare against."""
        traffic = await self.read_traffic()
        probe = spread(judged, 50)
        base = spread(baseline, 10)
        # all at once: a dead host costs one probe timeout, not three in a row
        healths, metrics, cpus, base_cpus = await asyncio.gather(
            asyncio.gather(*(self.probe(i) for i in probe)),
            asyncio.gather(*(self._quality(i) for i in probe)),
            asyncio.gather(*(self._cpu(i) for i in probe)),
            asyncio.gather(*(self._cpu(i) for i in base)))
        cpu = {i.key: c for i, c in zip([*probe, *base], [*cpus, *base_cpus]) if c is not None}
        quality = {i.key: q for i, q in zip(probe, metrics) if q is not None}
        pass_rate = sum(1 for h in healths if h.ok) / len(healths) if healths else None
        self.emit(MetricsSampled, pools={p: pool_summary(s) for p, s in traffic.items()},
                  cpu={k: round(c, 4) for k, c in cpu.items()}, quality=quality, health_pass_rate=pass_rate)
        return traffic, analysis.Readings(
            health_pass_rate=pass_rate, quality_score=mean(quality.values()),
            cpu=mean(c for c in cpus if c is not None), baseline_cpu=mean(c for c in base_cpus if c is not None))

    async def _quality(self, inst: Instance) -> float | None:
        try:
            return (await self.driver.instance_metrics(inst, inst.port)).quality_score
        except DriverError:
            return None

    async def _cpu(self, inst: Instance) -> float | None:
        try:
            return await self.driver.unit_cpu(inst)
        except DriverError:
            return None  # unreachable or no accounting: unknown, never "0 %"

    async def gate(self, name: str, seconds: float, judged: Sequence[Instance],
                   baseline: Sequence[Instance] = (), where: str = "new") -> None:
        """An analysis window whose inconclusive end waits for a human
        (exit 7 headless); a failure raises GateFailed."""
        if await self.observe(name, seconds, judged, baseline, where) == analysis.Verdict.INCONCLUSIVE:
            await self.wait_for_promotion(f"{name}: inconclusive")

    async def observe(self, name: str, seconds: float, judged: Sequence[Instance],
                      baseline: Sequence[Instance] = (), where: str = "new") -> analysis.Verdict:
        """Judge a window on its pooled samples (strategies/analysis.py).

        Samples every `sample_interval`; fails as soon as the evidence is
        clear (a critical alert at once); at the window's end passes only on
        enough evidence with no breach outstanding, else extends sample by
        sample up to `thresholds.max_window` and is then INCONCLUSIVE. An
        operator's promote ends it as a pass. Paused time does not count."""
        thresholds = self.plan.thresholds
        policy = analysis.Policy.of(thresholds, self.plan.alerts)
        limit = max(seconds, thresholds.max_window)
        window, spent, extended = analysis.Window(), 0.0, False
        self._window_open = True
        try:
            await self.read_traffic()  # the window judges only traffic inside it
            while True:
                chunk = min(self.sample_interval, seconds - spent) if spent < seconds else self.sample_interval
                chunk = min(chunk, limit - spent)
                await self.wait(chunk)
                spent += chunk
                if self._promoted.is_set():
                    self._promoted.clear()
                    self.emit(GateEvaluated, name=name, verdict=analysis.Verdict.PASS.value,
                              reasons=["promoted by operator"], values={}, final=True)
                    return analysis.Verdict.PASS
                traffic, readings = await self.sample(judged, baseline)
                judged_ev = side_evidence(traffic, judged)
                base_ev = side_evidence(traffic, baseline) if baseline else None
                window, found = analysis.fold(window, judged_ev, base_ev, readings, policy)
                self.raise_alerts(window, where, found)
                if found.verdict == analysis.Verdict.FAIL:
                    self.emit_gate(name, found, 0.0, final=True)
                    raise GateFailed(f"{name}: " + "; ".join(found.reasons))
                if spent + 1e-9 < seconds:
                    self.emit_gate(name, found, seconds - spent)
                    continue
                verdict = analysis.close(window, policy, final=spent + 1e-9 >= limit)
                if verdict.verdict == analysis.Verdict.PENDING:
                    if not extended:
                        extended = True
                        self.emit(Notice, level="warning", message=f"{name}: extended (up to "
                                  f"{limit:g}s): " + "; ".join(verdict.reasons))
                    self.emit_gate(name, verdict, limit - spent, extended=True)
                    continue
                self.emit_gate(name, verdict, 0.0, final=True, extended=extended)
                return verdict.verdict
        finally:
            self._window_open = False

    def emit_gate(self, name: str, j: analysis.Judgement, remaining: float, *, final: bool = False,
                  extended: bool = False) -> None:
        self.emit(GateEvaluated, name=name, verdict=j.verdict.value, reasons=j.reasons, values=j.values,
                  remaining=round(max(0.0, remaining), 3), final=final, extended=extended,
                  needed=j.needed, seen=j.seen)

    def raise_alerts(self, window: analysis.Window, where: str, judged: analysis.Judgement) -> None:
        """Emit an alert when a metric enters a tier (or changes tier). A
        failing gate's findings are alerts too (important, or critical):
        the sequential test can be sure of a bad release before a tier's
        fixed-level test is."""
        current = {a.metric: a for a in analysis.alerts_for(window, self.plan.alerts)}
        if judged.verdict == analysis.Verdict.FAIL:
            for f in judged.findings:
                tier = "critical" if f.tier == "critical" else "important"
                held = current.get(f.metric)
                if held is None or analysis.TIERS.index(held.tier) > analysis.TIERS.index(tier):
                    current[f.metric] = analysis.Alert(tier, f.metric, f.value, f.limit)
        for metric, alert in current.items():
            if self._alerts.get((where, metric)) != alert.tier:
                self.emit(AlertRaised, tier=alert.tier, metric=metric, value=alert.value,
                          threshold=alert.threshold, where=where)
        self._alerts = {k: v for k, v in self._alerts.items() if k[0] != where}
        self._alerts.update({(where, m): a.tier for m, a in current.items()})

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
        self.emit(Notice, level="error", message=reason)
        if self.plan.rolling.capacity_guard == "on_failure":
            raise GateFailed(reason)
        await self.wait_for_promotion(reason)

    async def capacity(self, should_serve: Sequence[Instance], batch: Sequence[Instance],
                       floor: int) -> CapacityCheck:
        """Probe every instance in `should_serve` and decide (capacity.py)
        whether `batch` may be drained; journalled, not acted on."""
        samples = await asyncio.gather(*(self.probe(i, quiet=True) for i in should_serve))
        healthy = {i.key for i, s in zip(should_serve, samples) if s.ok}
        check = check_capacity([i.key for i in should_serve], healthy, [i.key for i in batch], floor)
        self.emit(CapacityChecked, serving=check.serving, after=check.after, floor=check.floor,
                  unhealthy=list(check.unhealthy), in_batch=list(check.in_batch), ok=check.ok)
        return check

    def undisturbed(self) -> bool:
        """No operator command, critical alarm or fatal error waits for a
        safe point: the run may go on without stopping at one."""
        return self._requested is None and self._alarm is None and self._running.is_set()

    def capacity_reason(self, title: str, check: CapacityCheck) -> str:
        parts = []
        for key in check.unhealthy:
            untouched = self.versions.get(key) == self.old_versions.get(key) != self.version
            parts.append(f"{key} unhealthy" + (" (not touched by this release)" if untouched else ""))
        return (f"{title}: " + ", ".join(parts) + f"; draining would leave {check.after} of "
                f"{check.serving + len(check.unhealthy)} serving, the plan allows no fewer than {check.floor}"
                + ("; it is in this batch" if check.in_batch else ""))

    # -- the run -------------------------------------------------------------
    async def run(self, strategy: "StrategyRunner") -> RunResult:
        self.driver.set_command_listener(self._on_command)
        message = ""
        try:
            await self.driver.open([i.host for i in self.instances], self.lbs)
            self.set_phase(Phase.PREFLIGHT)
            await self.locked_preflight(strategy.serving_at_start(self.plan, self.instances))
            self.emit(RunStarted, plan=self.plan.source, strategy=self.plan.strategy,
                      service=self.plan.service, version=self.version, old_versions=dict(self.old_versions),
                      instances=[{"key": i.key, "host": i.host.name, "address": i.host.address,
                                  "slot": i.slot, "unit": i.unit, "port": i.port} for i in self.instances],
                      steps=[s.to_dict() for s in strategy.steps(self.plan, self.instances)], simulated=bool(self.driver.simulated),
                      thresholds=self.plan.thresholds.model_dump(), lb_snapshot=dict(self.lb_snapshot),
                      resumed=self.resume.journal if self.resume else None)
            self.set_phase(Phase.RUNNING)
            try:
                outcome, message = await self._guarded(strategy)
            except DriverError as exc:  # a failure while failing (e.g. nginx refuses the way back)
                outcome, message = Outcome.FAILED, f"failed: {exc}"
            if outcome == Outcome.ROLLED_BACK and self.out_of_nginx():
                # a rollback that could not put every instance back is not done: a human must look
                outcome, message = Outcome.FAILED, f"rollback incomplete: {message}"
            if outcome in (Outcome.FAILED, Outcome.ABORTED):
                message += self.stranded()
        except PreflightError as exc:
            outcome, message = Outcome.REFUSED, f"preflight refused: {exc}"
        except LockHeld as exc:
            outcome, message = Outcome.REFUSED, f"lock refused: {exc}"
        except DriverError as exc:  # open() or preflight(): nothing changed yet
            outcome, message = Outcome.REFUSED, f"preflight refused: {exc}"
        finally:
            self._finished = True
            await self.stop_accounting()
            await self.release_lock()
            try:
                await self.driver.close()
            except Exception:  # noqa: BLE001 - closing must not mask the outcome
                pass
        final = {Outcome.SUCCEEDED: Phase.SUCCEEDED, Outcome.ROLLED_BACK: Phase.ROLLED_BACK,
                 Outcome.ABORTED: Phase.ABORTED}.get(outcome, Phase.FAILED)
        if outcome == Outcome.AWAITING_PROMOTION:
            final = Phase.PAUSED
        self.set_phase(final, message)
        self.emit(RunFinished, outcome=outcome.value, message=message, duration=round(self.elapsed(), 3),
                  versions=dict(self.versions), clients=self.clients.as_dict())
        return RunResult(outcome, message, dict(self.versions))

    async def _guarded(self, strategy: "StrategyRunner") -> tuple[Outcome, str]:
        """Run the strategy, turning gate failures and operator commands into
        the plan's on_failure policy, rollback or abort."""
        try:
            if self.resume is not None and not self._made_safe:
                self._made_safe = True
                await self.make_safe()
            message = await strategy.run(self)
            if self._requested is not None:
                return await self._stop_at_end(strategy, message)
            return Outcome.SUCCEEDED, message
        except AwaitingPromotion as exc:
            await strategy.hold(self)
            return Outcome.AWAITING_PROMOTION, f"{exc}: paused, awaiting promotion (use --auto-promote)"
        except Stop as stop:
            if stop.command == Command.ROLLBACK:
                return await self._rollback(strategy, stop.reason)
            await strategy.abort(self)
            if self._fatal:
                return Outcome.FAILED, f"failed: {self._fatal}; stopped at a safe point for a human"
            return Outcome.ABORTED, f"aborted: {stop.reason}"
        except (GateFailed, DriverError) as exc:
            reason = exc.reason if isinstance(exc, GateFailed) else str(exc)
            return await self._on_failure(strategy, reason)

    async def _stop_at_end(self, strategy: "StrategyRunner", message: str) -> tuple[Outcome, str]:
        """A rollback or abort accepted "at the next safe point" while the
        strategy's last step ran (no safe point followed it): the end of the
        run is that point. A rollback rolls the finished run back; an abort
        (or a fail-stop) has nothing left to stop: every instance is on the
        new version and in nginx, as the strategy left it."""
        command, reason = self._requested or (Command.ABORT, "")
        if command == Command.ROLLBACK:
            return await self._rollback(strategy, f"{reason} (after the last step)")
        if self._fatal:
            return Outcome.FAILED, f"failed: {self._fatal}; after the last step: {message}"
        return Outcome.ABORTED, f"aborted after the last step ({reason}): {message}"

    async def _on_failure(self, strategy: "StrategyRunner", reason: str) -> tuple[Outcome, str]:
        policy = self.plan.on_failure
        self.emit(Notice, level="error", message=f"{reason}; on_failure={policy}")
        if policy == "rollback":
            return await self._rollback(strategy, reason)
        if policy == "pause" and self.interactive:
            self._running.clear()
            try:
                await self.safe_point()
            except Stop as stop:
                if stop.command == Command.ROLLBACK:
                    return await self._rollback(strategy, f"{reason}; then {stop.reason}")
                await strategy.abort(self)
                return Outcome.ABORTED, f"aborted after failure: {reason}"
            return await self._guarded(strategy)
        await strategy.abort(self)
        return Outcome.FAILED, f"failed: {reason}; stopped for a human (on_failure={policy})"

    async def _rollback(self, strategy: "StrategyRunner", reason: str) -> tuple[Outcome, str]:
        self._requested = None
        self.set_phase(Phase.ROLLING_BACK, reason)
        started = self.driver.clock.now()
        try:
            problems = await strategy.rollback(self)
        except DriverError as exc:
            return Outcome.FAILED, f"rollback failed: {exc} (after: {reason})"
        took = self.driver.clock.now() - started
        if problems:
            return Outcome.FAILED, f"rollback incomplete: {'; '.join(problems)} (after: {reason})"
        return Outcome.ROLLED_BACK, f"rolled back in {took:.1f}s: {reason}"

    def out_of_nginx(self) -> list[str]:
        """Instances nginx no longer routes to, of those it routed to before
        the run (what a human must look at)."""
        if self.lb is None or not self.lb_snapshot:
            return []
        before = {str(b) for bs in parse_pools(next(iter(self.lb_snapshot.values())), self.plan.nginx.upstream).values()
                  for b in bs}
        now = {str(b) for bs in self.lb.pools.values() for b in bs}
        return [i.key for i in self.instances if str(backend(i)) in before - now]

    def stranded(self) -> str:
        out = self.out_of_nginx()
        return f"; out of nginx: {', '.join(out)}" if out else "; every instance that served before is in nginx"

    # -- shared rollback pieces ---------------------------------------------
    async def revert(self, insts: Iterable[Instance]) -> dict[str, str]:
        """Put these instances back on their old version. Returns the problems
        by instance key; an instance whose old version is unknown is left."""
        todo = [i for i in insts
                if self.old_versions.get(i.key) and self.versions.get(i.key) != self.old_versions[i.key]]
        results = await asyncio.gather(*(self.update_instance(i, self.old_versions[i.key]) for i in todo))
        problems = {}
        for inst, (ok, detail) in zip(todo, results):
            self.instance_phase(inst, InstancePhase.ROLLED_BACK if ok else InstancePhase.FAILED, detail)
            if not ok:
                problems[inst.key] = f"{inst.key}: old version {self.old_versions[inst.key]} unhealthy: {detail}"
        return problems


    async def make_safe(self) -> None:
        """After a crash: send traffic only to healthy instances on the old
        version (the original pools, minus the rest), then put unhealthy
        instances back on the old version. The strategy then runs as usual;
        instances already healthy on the target version are not redeployed."""
        upstream = self.plan.nginx.upstream
        original = parse_pools(next(iter(self.lb_snapshot.values())), upstream)
        keep = {f"{i.host.address}:{i.port}" for i in self.instances
                if self.versions.get(i.key) is not None and self.versions[i.key] == self.old_versions.get(i.key)}
        pools = {p: tuple(b for b in bs if str(b) in keep) for p, bs in original.items()}
        default = next((p for p in original if pools[p]), None)
        if default is None:
            raise PreflightError("no healthy instance on the old version is left to take traffic")
        state = lb_state(self.plan, {}, default, generation=self.next_generation())
        await self.apply_lb(replace(state, pools=pools, default_pool=default))
        sick = [i for i in self.instances if self.versions.get(i.key) is None]
        if sick:
            self.emit(Notice, level="warning", message="resume: unhealthy after the crash, reinstalling the old "
                      "version: " + ", ".join(i.key for i in sick))
            problems = await self.revert(sick)
            if problems:
                raise GateFailed("; ".join(problems.values()))

    async def verify_old(self, insts: Sequence[Instance]) -> dict[str, str]:
        """The seed's rollback steps 3-4: check the old version is healthy
        where traffic now goes; where it is not, restore the previous release
        (reinstall it) and say so. Returns what could not be restored."""
        samples = await asyncio.gather(*(self.probe(i) for i in insts))
        broken = [i for i, s in zip(insts, samples) if not s.ok]
        if not broken:
            return {}
        self.emit(Notice, level="warning", message="old version unhealthy on " + ", ".join(i.key for i in broken)
                  + ": restoring the previous release")
        for inst in broken:
            self.versions[inst.key] = None
        return await self.revert(broken)


def pool_summary(stats: PoolStats) -> dict[str, float]:
    p95 = analysis.percentile(stats.latencies)
    return {"requests": stats.requests, "errors": stats.errors, "retried": stats.retried, "hidden": stats.hidden,
            "error_rate": round(stats.errors / stats.requests, 6) if stats.requests else 0.0,
            "p95": round(p95, 4) if p95 is not None else 0.0}


def side_evidence(traffic: dict[str, PoolStats], insts: Sequence[Instance]) -> analysis.Evidence:
    """Every try these instances answered, over all pools: a try a backend
    failed counts against it even when nginx retried it elsewhere and the
    client never saw it (a release that drops connections or answers
    502/503 would otherwise look clean behind the retries)."""
    keys = {str(backend(i)) for i in insts}
    tries = failed = 0
    latencies: list[float] = []
    for stats in traffic.values():
        for addr, st in stats.backends.items():
            if addr in keys:
                tries += st.tries
                failed += st.failed
                latencies.extend(st.latencies)
    return analysis.Evidence(tries, failed, tuple(latencies))


def spread(insts: Sequence[Instance], most: int) -> list[Instance]:
    """Up to `most` instances spread evenly over the list."""
    return list(insts)[:: max(1, len(insts) // most)][:most] if insts else []


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


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


class StrategyRunner:
    """What a strategy provides to the engine."""

    def steps(self, plan: Any, instances: Sequence[Instance]) -> list[PlannedStep]:
        """The planned steps, each with the instance keys it changes."""
        raise NotImplementedError

    def serving_at_start(self, plan: Any, instances: Sequence[Instance]) -> list[Instance]:
        """The instances the plan expects nginx to route to before the run."""
        return list(instances)

    async def run(self, engine: Engine) -> str:
        raise NotImplementedError

    async def rollback(self, engine: Engine) -> list[str]:
        """Return the fleet to the old version; the problems left, if any."""
        raise NotImplementedError

    async def abort(self, engine: Engine) -> None:
        """Stop safely: nothing drained, traffic on the safest pool."""
        raise NotImplementedError

    async def hold(self, engine: Engine) -> None:
        """Leave the fleet serving as it is while waiting for promotion."""
        return None
