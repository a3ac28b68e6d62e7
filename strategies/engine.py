"""The async engine: runs a plan against a fleet driver, emitting events and
obeying operator commands.

The engine owns the operations every strategy shares (drain, update one
instance, gate a window of metrics, put nginx back) and the control loop
(pause, resume, promote, rollback, abort). Strategies (rolling.py, canary.py,
bluegreen.py) sequence those operations; pure decisions live in batches.py,
gates.py and topology.py; all I/O goes through the driver.

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

from inventory.driver import CommandRecord, DriverError, FleetDriver, PoolStats
from inventory.model import Instance, Inventory
from inventory.nginx_config import LbState, parse_generation, parse_pools

from inventory.lock import HEARTBEAT_INTERVAL, LockHeld

from . import checklist, gates
from .events import (AlertRaised, CommandRan, Event, EventBus, GateEvaluated, HealthChecked,
                     InstanceChanged, InstancePhase, MetricsSampled, Notice, OperatorCommand,
                     Phase, PhaseChanged, RunFinished, RunStarted, TrafficChanged)
from .plan import render_commands
from .topology import lb_state, load_balancers, resolve_instances


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
        """Honour rollback/abort/pause. Call only where the fleet is safe."""
        if self._requested:
            raise Stop(*self._requested)
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

    async def wait(self, seconds: float) -> None:
        """Sleep on the engine clock, waking at once for commands; time spent
        paused does not count."""
        end = self.driver.clock.now() + seconds
        while True:
            await self.safe_point()
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
        self._promoted.clear()
        self.set_phase(Phase.RUNNING, "promoted")
        return True

    # -- load balancer ------------------------------------------------------
    def next_generation(self) -> str:
        return f"{self._run_id}-{next(self._generation)}"

    async def apply_lb(self, state: LbState) -> None:
        started = self.driver.clock.now()
        await self.driver.lb_apply(state)
        self.lb = state
        self.emit(TrafficChanged, generation=state.generation,
                  pools={p: [str(b) for b in bs] for p, bs in state.pools.items()},
                  weights=dict(state.weights), duration=round(self.driver.clock.now() - started, 4))

    async def restore_lb(self) -> None:
        """Put every LB's managed file back exactly as it was before the run."""
        started = self.driver.clock.now()
        await self.driver.lb_restore(self.lb_snapshot)
        first = next(iter(self.lb_snapshot.values()))
        pools = parse_pools(first, self.plan.nginx.upstream)
        self.emit(TrafficChanged, generation=parse_generation(first) or "restored",
                  pools={p: [str(b) for b in bs] for p, bs in pools.items()}, weights={},
                  duration=round(self.driver.clock.now() - started, 4))

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
    async def preflight(self) -> None:
        """Record where the fleet starts: the LB files and every instance's
        version. Refuses (nothing changed) if the LBs are not managed by the
        console, disagree, or an instance that takes traffic is unhealthy.
        A resumed session starts from the recorded originals instead."""
        if self.run_checklist and self.resume is None:
            bad = checklist.failed(await self.checklist())
            if bad:
                raise PreflightError("checklist: " + "; ".join(f"{i.name}: {i.reason}" for i in bad[:5])
                                     + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
        texts = await self.driver.lb_read()
        missing = [name for name, text in texts.items() if parse_generation(text) is None]
        if missing:
            raise PreflightError(f"{', '.join(missing)}: no rollout-console managed nginx file at "
                                 f"{self.plan.nginx.config}")
        if len(set(texts.values())) > 1 and self.resume is None:
            raise PreflightError("load balancers disagree: their managed nginx files differ")
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
                if not s.ok and f"{i.host.address}:{i.port}" in serving]
        if sick:
            raise PreflightError(f"{', '.join(sick)}: unhealthy while taking traffic, before any change")
        self.old_versions = current
        self.versions = dict(current)

    async def probe(self, inst: Instance):
        health = self.plan.health
        sample = await self.driver.health(inst, health.path, health.port or inst.port, health.timeout)
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
                await self.driver.clock.sleep(0.2)
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
    async def sample(self, watched: Sequence[Instance]) -> tuple[dict[str, PoolStats], gates.Sample]:
        """Traffic per pool since the last sample, and health, quality and
        CPU of (a spread of up to 50 of) the watched instances."""
        traffic = await self.driver.traffic()
        step = max(1, len(watched) // 50)
        probe = list(watched)[::step][:50]
        hosts = {i.host.name: i.host for i in probe}
        # all at once: a dead host costs one probe timeout, not three in a row
        healths, metrics, cpus = await asyncio.gather(
            asyncio.gather(*(self.probe(i) for i in probe)),
            asyncio.gather(*(self._quality(i) for i in probe)),
            asyncio.gather(*(self._cpu(h) for h in hosts.values())))
        cpu = {h: c for h, c in zip(hosts, cpus) if c is not None}  # unreachable: unknown
        quality = {i.key: q for i, q in zip(probe, metrics) if q is not None}
        pass_rate = sum(1 for h in healths if h.ok) / len(healths) if healths else None
        self.emit(MetricsSampled, pools={p: pool_summary(s) for p, s in traffic.items()},
                  cpu={h: round(c, 4) for h, c in cpu.items()}, quality=quality, health_pass_rate=pass_rate)
        values = list(cpu.values())
        summary = gates.Sample(
            quality_score=sum(quality.values()) / len(quality) if quality else None,
            health_pass_rate=pass_rate, cpu=max(values) if values else None)
        return traffic, summary

    async def _quality(self, inst: Instance) -> float | None:
        try:
            return (await self.driver.instance_metrics(inst, inst.port)).quality_score
        except DriverError:
            return None

    async def _cpu(self, host) -> float | None:
        try:
            return await self.driver.cpu(host)
        except DriverError:
            return None

    async def observe(self, name: str, seconds: float, watched: Sequence[Instance], pool: str,
                      baseline: str | None = None, needs_traffic: bool = True) -> gates.Verdict:
        """Gate a window: sample every `sample_interval`, judge `pool`
        (against `baseline` when given), raise alerts, and return the window's
        verdict. FAIL returns early; time paused does not count."""
        thresholds = self.plan.thresholds
        state = gates.GateState()
        await self.driver.traffic()  # the window judges only traffic inside it
        end = self.driver.clock.now() + seconds
        traffic_total: dict[str, PoolStats] = {}
        while True:
            remaining = end - self.driver.clock.now()
            if remaining <= 1e-6:
                break
            before = self.driver.clock.now()
            await self.wait(min(self.sample_interval, remaining))
            end += max(0.0, (self.driver.clock.now() - before) - min(self.sample_interval, remaining))
            traffic, health = await self.sample(watched)
            judged = pool_sample(traffic.get(pool), health)
            extra = []
            if baseline and thresholds.compare_to_stable:
                extra = gates.compare_to_stable(judged, pool_sample(traffic.get(baseline), gates.Sample()))
            state, verdict, found = gates.judge(state, judged, thresholds, extra)
            self.raise_alerts(judged, pool)
            for p, s in traffic.items():
                traffic_total.setdefault(p, PoolStats()).merge(s)
            self.emit(GateEvaluated, name=name, verdict=verdict.value, reasons=[str(b) for b in found],
                      values=judged.values(), remaining=round(max(0.0, end - self.driver.clock.now()), 3))
            if verdict == gates.Verdict.FAIL:
                raise GateFailed(f"{name}: " + "; ".join(str(b) for b in found))
        verdict = gates.close_window(state, thresholds, needs_traffic)
        self.emit(GateEvaluated, name=name, verdict=verdict.value,
                  reasons=[] if verdict == gates.Verdict.PASS else
                  [f"{state.requests} requests to {pool}, fewer than {thresholds.min_requests}"],
                  values={"requests": float(state.requests)}, remaining=0.0, final=True)
        return verdict

    def raise_alerts(self, sample: gates.Sample, where: str) -> None:
        """Emit an alert when a metric enters a tier (or changes tier)."""
        current = {a.metric: a for a in gates.alerts_for(sample, self.plan.alerts)}
        for metric, alert in current.items():
            if self._alerts.get((where, metric)) != alert.tier:
                self.emit(AlertRaised, tier=alert.tier, metric=metric, value=alert.value,
                          threshold=alert.threshold, where=where)
        self._alerts = {k: v for k, v in self._alerts.items() if k[0] != where}
        self._alerts.update({(where, m): a.tier for m, a in current.items()})

    # -- the run -------------------------------------------------------------
    async def run(self, strategy: "StrategyRunner") -> RunResult:
        self.driver.set_command_listener(self._on_command)
        message = ""
        try:
            await self.driver.open([i.host for i in self.instances], self.lbs)
            self.set_phase(Phase.PREFLIGHT)
            await self.acquire_lock()
            await self.preflight()
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
            if outcome == Outcome.FAILED:
                message += self.stranded()
        except PreflightError as exc:
            outcome, message = Outcome.REFUSED, f"preflight refused: {exc}"
        except LockHeld as exc:
            outcome, message = Outcome.REFUSED, f"lock refused: {exc}"
        except DriverError as exc:  # open() or preflight(): nothing changed yet
            outcome, message = Outcome.REFUSED, f"preflight refused: {exc}"
        finally:
            self._finished = True
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
                  versions=dict(self.versions))
        return RunResult(outcome, message, dict(self.versions))

    async def _guarded(self, strategy: "StrategyRunner") -> tuple[Outcome, str]:
        """Run the strategy, turning gate failures and operator commands into
        the plan's on_failure policy, rollback or abort."""
        try:
            if self.resume is not None and not self._made_safe:
                self._made_safe = True
                await self.make_safe()
            message = await strategy.run(self)
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

    def stranded(self) -> str:
        """For a failed run: which instances nginx no longer routes to, of
        those it routed to before the run (what a human must look at)."""
        if self.lb is None or not self.lb_snapshot:
            return ""
        before = {str(b) for bs in parse_pools(next(iter(self.lb_snapshot.values())), self.plan.nginx.upstream).values()
                  for b in bs}
        now = {str(b) for bs in self.lb.pools.values() for b in bs}
        out = [i.key for i in self.instances if f"{i.host.address}:{i.port}" in before - now]
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
    p95 = gates.percentile(stats.latencies)
    return {"requests": stats.requests, "errors": stats.errors, "retried": stats.retried, "hidden": stats.hidden,
            "error_rate": round(stats.errors / stats.requests, 6) if stats.requests else 0.0,
            "p95": round(p95, 4) if p95 is not None else 0.0}


def pool_sample(stats: PoolStats | None, health: gates.Sample) -> gates.Sample:
    """What the gates judge for one pool. A request nginx had to retry
    counts as an error even when the retry hid it from the client: the
    canary pool's backups (stable) and its other servers would otherwise
    hide a release that drops connections or answers 502/503."""
    stats = stats or PoolStats()
    return gates.Sample(requests=stats.requests, errors=stats.errors + stats.hidden,
                        p95_latency=gates.percentile(stats.latencies),
                        quality_score=health.quality_score, health_pass_rate=health.health_pass_rate,
                        cpu=health.cpu)


class StrategyRunner:
    """What a strategy provides to the engine."""

    def steps(self, plan: Any, instances: Sequence[Instance]) -> list[PlannedStep]:
        """The planned steps, each with the instance keys it changes."""
        raise NotImplementedError

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
