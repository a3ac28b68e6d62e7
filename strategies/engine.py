"""The engine: wiring and the run loop.

It builds the four narrow services a strategy may use (strategies/context.py:
control, traffic, instances, analysis) from one fleet driver, and runs the
loop around the strategy: take the rollout lock, preflight (where the fleet
starts, refused if it is not safe to start), run, and turn gate failures and
operator commands into the plan's on_failure policy, a rollback or an abort,
then one truthful result, decided by status.py from the run's status. Pure
decisions live in batches.py, analysis.py, capacity.py, topology.py and
status.py; all I/O goes through the driver.

Safety rule: commands and failures are acted on only at safe points, where
every instance is either serving on one version or deliberately out of
nginx, so no interrupt leaves a host half-drained.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from inventory.driver import CommandRecord, DriverError, FleetDriver, LockHolder
from inventory.lock import HEARTBEAT_INTERVAL, LockHeld
from inventory.model import Instance, Inventory
from inventory.nginx_config import Backend, parse_generation, parse_pools

from . import checklist
from .checklist import CheckItem
from .context import StrategyContext, StrategyRunner
from .control import AwaitingPromotion, Command, GateFailed, RunControl, Stop
from .events import CommandRan, Event, EventBus, Notice, Phase, RunFinished, RunStarted, Sender, StartedInstance
from .gating import Gatekeeper, judged_windows
from .instances import InstanceOps
from .origin import Origin, Resume, live_pools, start_point
from .plan import Plan, field_line
from .safe_state import safe_state
from .status import Outcome, Reason, RunStatus, StrategyResult, decide_outcome, final_phase, needs_answers
from .topology import backend, lb_state, live_colour, load_balancers, resolve_instances
from .traffic import ClientTally, TrafficControl


class PreflightError(Exception):
    """The fleet is not in a state to start from; nothing was changed."""


@dataclass(frozen=True)
class RunResult:
    outcome: Outcome
    message: str
    versions: dict[str, str | None]


class Engine:
    """One rollout. Create, subscribe to `bus`, then `await run(strategy)`."""

    def __init__(self, plan: Plan, inventory: Inventory, driver: FleetDriver, *, version: str,
                 bus: EventBus | None = None, interactive: bool = False, auto_promote: bool = False,
                 resume: Resume | None = None, lock_holder: LockHolder | None = None,
                 lock_wait: float = 0.0, break_stale_lock: bool = False, lock_max_age: float = 120.0,
                 run_checklist: bool = True, untouched: Sequence[Instance] = ()):
        self.plan = plan
        # instances of the upstream a --limit left out: they keep serving, count towards capacity, and
        # are never probed, drained or restarted (as Ansible's --limit leaves other hosts alone)
        self.untouched = list(untouched)
        self.lock_holder: dict[str, str | int] = dict(lock_holder or {"plan": getattr(plan, "source", "")})
        self.lock_wait = lock_wait
        self.break_stale_lock = break_stale_lock
        self.lock_max_age = lock_max_age
        self.run_checklist = run_checklist
        self._locked = False
        self._heartbeat: asyncio.Task[None] | None = None
        self.inventory = inventory
        self.driver = driver
        self.version = version
        self.bus = bus or EventBus()
        self.resume = resume
        self._reconciled = False
        self.origin = Origin(lb_files={}, live_pools={}, old_versions={})  # where the run starts (preflight)
        self.instances: list[Instance] = resolve_instances(plan, inventory)
        self.lbs = load_balancers(plan, inventory)
        self.by_key = {i.key: i for i in self.instances}
        self._t0 = driver.clock.now()
        self.status = RunStatus()  # what the services reported, folded (strategies/status.py)
        self.control = RunControl(driver.clock, self.emit, interactive=interactive, auto_promote=auto_promote)
        self.ops = InstanceOps(plan, driver, self.instances, version, self.emit, self.status)
        self.traffic = TrafficControl(plan, driver, self.ops, self.status, self.control, self.emit, self.untouched)
        self.gates = Gatekeeper(plan, driver, self.ops, self.traffic, self.control, self.emit)
        self.context = StrategyContext(plan=plan, emit=self.emit, control=self.control, traffic=self.traffic,
                                       instances=self.ops, analysis=self.gates)

    # -- what the console uses ---------------------------------------------------
    def elapsed(self) -> float:
        return self.driver.clock.now() - self._t0

    def emit(self, event: Event) -> None:
        """Publish `event` on the run's stream, stamped with the run's clock,
        folded first into the run's status (strategies/status.py)."""
        event = replace(event, at=round(self.elapsed(), 3))
        self.status.apply(event)
        self.bus.publish(event)

    @property
    def phase(self) -> Phase:
        return self.control.phase

    @property
    def clients(self) -> ClientTally:
        return self.traffic.clients

    def command(self, cmd: Command, source: str = "operator", sender: Sender | None = None) -> bool:
        """Ask the run to do something; acted on at the next safe point
        (see RunControl.command)."""
        return self.control.command(cmd, source, sender)

    def fail_stop(self, reason: str) -> None:
        self.control.fail_stop(reason)

    async def journal_tail(self, key: str) -> str:
        """The last lines of an instance's systemd journal (the TUI's detail view)."""
        return await self.driver.journal_tail(self.by_key[key])

    def _on_command(self, record: CommandRecord) -> None:
        self.emit(CommandRan(host=record.host, command=record.command, exit_status=record.exit_status,
                             duration=round(record.duration, 4), stdout=record.stdout, stderr=record.stderr))

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
                    self.emit(Notice(level="warning", message=f"lock heartbeat failed: {exc}"))
                    warned = True
                continue
            warned = False
            if not ours:
                self.control.fail_stop("the rollout lock was broken by someone else")
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
            if exc.op == "connect":  # the run's last word with the LB: the result must name it
                self.status.lb_unreachable = str(exc)
            self.emit(Notice(level="warning", message=f"rollout lock not released ({exc}); "
                             f"it goes stale after {self.lock_max_age:g} s without heartbeat"))

    # -- preflight ---------------------------------------------------------
    async def checklist(self) -> list[CheckItem]:
        """The pre-deployment checklist (strategies/checklist.py), each item
        also reported as a Notice."""
        items = await checklist.run_checklist(self.plan, self.instances, self.lbs, self.driver,
                                              self.version, probe=lambda i: self.ops.probe(i, idle=True))
        bad = checklist.failed(items)
        for item in bad:
            self.emit(Notice(level="error", message="check: " + item.line()))
        release = "" if self.plan.deploy.check else f" (release {self.version} itself not checked: no deploy.check)"
        self.emit(Notice(level="info" if not bad else "error",
                         message=f"checklist: {len(items) - len(bad)} of {len(items)} items passed{release}"))
        return items

    async def locked_preflight(self, strategy: StrategyRunner) -> None:
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
        self.start_from(await self.preflight(strategy, items))

    async def preflight(self, strategy: StrategyRunner, items: Sequence[CheckItem] | None = None) -> Origin:
        """Read where the fleet starts: the LB files and every instance's
        version (strategies/origin.py). Refuses (nothing changed) if the LBs
        are not managed by the console, disagree, route to other instances
        than the strategy says serve now, or an instance that takes traffic
        is unhealthy, or the checklist's `items` (run beside the lock)
        failed. A resumed session starts from the recorded originals instead."""
        texts = await self.driver.lb_read()
        missing = [name for name, text in texts.items() if parse_generation(text) is None]
        if missing:
            raise PreflightError(f"{', '.join(missing)}: no rollout-console managed nginx file at "
                                 f"{self.plan.nginx.config}")
        if len(set(texts.values())) > 1 and self.resume is None:
            raise PreflightError("load balancers disagree: their managed nginx files differ")
        # where the run started: nginx now, or for a resumed run its first session's files
        origin = next(iter((self.resume.status.lb_snapshot if self.resume is not None else texts).values()), "")
        routed = {str(b) for bs in parse_pools(origin, self.plan.nginx.upstream).values() for b in bs}
        if self.plan.strategy == "blue_green":
            self.settle_colour(routed)
        if self.resume is None:
            self.check_live_routing(routed, [*strategy.serving_at_start(self.plan, self.instances), *self.untouched])
        if items is not None:
            bad = checklist.failed(items)
            if bad:
                raise PreflightError("checklist: " + "; ".join(f"{i.name}: {i.reason}" for i in bad[:5])
                                     + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""))
        routed_now = {str(b) for bs in live_pools(self.plan.nginx.upstream, texts).values() for b in bs}
        probes = await asyncio.gather(*(self.ops.probe(i, idle=str(backend(i)) not in routed_now)
                                        for i in self.instances))
        if self.resume is None:
            sick = [i.key for i, s in zip(self.instances, probes) if not s.ok and str(backend(i)) in routed_now]
            if sick:
                raise PreflightError(f"{', '.join(sick)}: unhealthy while taking traffic, before any change")
        current = {inst.key: (s.version if s.ok else None) for inst, s in zip(self.instances, probes)}
        return start_point(self.plan.nginx.upstream, texts, current, self.resume.status if self.resume else None)

    def start_from(self, origin: Origin) -> None:
        """Keep where the run starts, and hand the traffic service the LB files it
        restores; each instance's version goes to the run's status with RunStarted."""
        self.origin = origin
        self.traffic.start_from(origin)

    def settle_colour(self, routed: set[str]) -> None:
        """Blue-green with `active: auto`: the serving colour is what nginx
        routes to. A fleet serving from the plan's own slot (units form: a
        fresh sandbox's agent@main, a fleet that ran rolling updates) is
        adopted: its instances are the old side of this run and are retired
        after the switch. A written `active` is checked as it stands
        (check_live_routing names the fix when it is wrong)."""
        bg = self.plan.blue_green
        if bg.active != "auto":
            return
        found = live_colour(self.plan, self.instances, routed)
        if found is None:
            return  # check_live_routing refuses, naming what nginx serves
        colour, adopted = found
        self.plan = self.plan.model_copy(update={"blue_green": bg.model_copy(update={"active": colour})})
        self.context = replace(self.context, plan=self.plan)
        if adopted:
            self.instances[:] = adopted + [i for i in self.instances if i.colour != colour]
            self.by_key.clear()
            self.by_key.update({i.key: i for i in self.instances})
            self.ops.adopt(self.instances)
            self.emit(Notice(level="info", message=(
                f"adopted: nginx serves {adopted[0].unit} on port {adopted[0].port} on every host, outside both "
                f"colours; it is the old side of this run and is retired after the switch")))
        else:
            self.emit(Notice(level="info", message=f"active colour read from live routing: {colour}"))

    def check_live_routing(self, routed: set[str], expected: Sequence[Instance]) -> None:
        """What nginx routes to now is the truth: a plan that expects other
        instances to be serving is refused before anything changes."""
        want = {str(backend(i)) for i in expected}
        if routed == want:
            return
        upstream = self.plan.nginx.upstream
        what = ", ".join(sorted(routed)) or "nothing"
        plan_says = ", ".join(sorted(want)) or "nothing"
        detail = fix = ""
        if self.plan.strategy == "blue_green":
            bg = self.plan.blue_green
            detail = f" (active: {bg.active}, {bg.mode} form)"
            fix = self.colour_fix(routed)
        raise PreflightError(f"live routing disagrees with the plan: nginx upstream {upstream!r} routes to {what} "
                             f"({self.plan.nginx.config}); the plan{detail} expects {plan_says}{fix}")

    def colour_fix(self, routed: set[str]) -> str:
        """What makes a refused blue-green plan run, when something will: the
        plan's `active` line changed (auto adopts the plan's own slot)."""
        if self.plan.blue_green.active == "auto":
            return ""
        found = live_colour(self.plan, self.instances, routed)
        if found is None:
            return ""
        colour, adopted = found
        line = field_line(self.plan.source, ("blue_green", "active")) if self.plan.source else None
        where = f"{self.plan.source}:{line}" if line else self.plan.source
        if adopted:
            return (f"; nginx serves {adopted[0].unit} on port {adopted[0].port} on every host, outside both "
                    f"colours: to adopt it (the new release goes to green, {adopted[0].unit} is retired after "
                    f"the switch), set `active: auto` in {where} (or remove that line) and run the same command")
        return f"; nginx serves {colour}: set `active: {colour}` (or `auto`) in {where} and run the same command"

    # -- the run -------------------------------------------------------------
    async def run(self, strategy: StrategyRunner) -> RunResult:
        self.driver.set_command_listener(self._on_command)
        try:
            await self.driver.open([i.host for i in self.instances], self.lbs)
            self.control.set_phase(Phase.PREFLIGHT)
            await self.locked_preflight(strategy)
            self.emit(RunStarted(plan=self.plan.source, strategy=self.plan.strategy,
                                 service=self.plan.service, version=self.version, old_versions=dict(self.origin.old_versions),
                                 versions=dict(self.origin.versions),
                                 instances=[StartedInstance(key=i.key, host=i.host.name, address=i.host.address, slot=i.slot,
                                                            unit=i.unit, port=i.port) for i in self.instances],
                                 steps=[s.to_dict() for s in strategy.steps(self.plan, self.instances)],
                                 simulated=bool(self.driver.simulated),
                                 thresholds=self.plan.thresholds.model_dump(), lb_snapshot=dict(self.origin.lb_files),
                                 resumed=self.resume.journal if self.resume else None,
                                 untouched=[i.key for i in self.untouched],
                                 served_before=self.routed_by(self.origin.original_pools(self.plan.nginx.upstream)),
                                 routed=self.routed_by(self.origin.live_pools)))
            self.gates.announce(judged_windows(self.plan, self.instances))
            self.control.set_phase(Phase.RUNNING)
            try:
                result = await self._guarded(strategy)
            except DriverError as exc:  # a failure while failing (e.g. nginx refuses the way back)
                result = StrategyResult(Reason.DRIVER_ERROR, detail=str(exc))
            if needs_answers(result):
                self.status.not_answering = await self.unanswered()
        except PreflightError as exc:
            result = StrategyResult(Reason.PREFLIGHT_REFUSED, detail=str(exc))
        except LockHeld as exc:
            result = StrategyResult(Reason.LOCK_REFUSED, detail=str(exc))
        except DriverError as exc:  # open() or preflight(): nothing changed yet
            result = StrategyResult(Reason.PREFLIGHT_REFUSED, detail=str(exc))
        finally:
            self.control.finished = True
            await self.traffic.stop_accounting()
            await self.release_lock()
            try:
                await self.driver.close()
            except Exception:  # noqa: BLE001 - closing must not mask the outcome
                pass
        decision = decide_outcome(self.status, result)
        self.control.set_phase(final_phase(decision.outcome), decision.message)
        self.emit(RunFinished(outcome=decision.outcome, message=decision.message,
                              duration=round(self.elapsed(), 3), versions=dict(self.status.versions),
                              clients=self.clients.as_dict(), reason=decision.reason))
        return RunResult(decision.outcome, decision.message, dict(self.status.versions))

    async def _guarded(self, strategy: StrategyRunner) -> StrategyResult:
        """Run the strategy, turning gate failures and operator commands into
        the plan's on_failure policy, rollback or abort."""
        try:
            if not self._reconciled:
                self._reconciled = True
                await self.reconcile()
            message = await strategy.run(self.context)
            if self.control.requested is not None:
                return await self._stop_at_end(strategy, message)
            return StrategyResult(Reason.COMPLETED, detail=message)
        except AwaitingPromotion as exc:
            await strategy.hold(self.context)
            return StrategyResult(Reason.AWAITING_PROMOTION, cause=str(exc))
        except Stop as stop:
            if stop.command == Command.ROLLBACK:
                return await self._rollback(strategy, stop.reason)
            await strategy.abort(self.context)
            if self.control.fatal:
                return StrategyResult(Reason.FAIL_STOPPED, cause=self.control.fatal)
            return StrategyResult(Reason.ABORTED, cause=stop.reason)
        except (GateFailed, DriverError) as exc:
            reason = exc.reason if isinstance(exc, GateFailed) else str(exc)
            return await self._on_failure(strategy, reason)

    async def _stop_at_end(self, strategy: StrategyRunner, message: str) -> StrategyResult:
        """A rollback or abort accepted "at the next safe point" while the
        strategy's last step ran (no safe point followed it): the end of the
        run is that point. A rollback rolls the finished run back; an abort
        (or a fail-stop) has nothing left to stop: every instance is on the
        new version and in nginx, as the strategy left it."""
        command, reason = self.control.requested or (Command.ABORT, "")
        if command == Command.ROLLBACK:
            return await self._rollback(strategy, f"{reason} (after the last step)")
        if self.control.fatal:
            return StrategyResult(Reason.FAIL_STOPPED_AFTER_LAST_STEP, cause=self.control.fatal, detail=message)
        return StrategyResult(Reason.ABORTED_AFTER_LAST_STEP, cause=reason, detail=message)

    async def _on_failure(self, strategy: StrategyRunner, reason: str) -> StrategyResult:
        policy = self.plan.on_failure
        self.emit(Notice(level="error", message=f"{reason}; on_failure={policy}"))
        if policy == "rollback":
            return await self._rollback(strategy, reason)
        if policy == "pause" and self.control.interactive:
            self.control.pause_here()
            try:
                await self.control.safe_point()
            except Stop as stop:
                if stop.command == Command.ROLLBACK:
                    return await self._rollback(strategy, f"{reason}; then {stop.reason}")
                await strategy.abort(self.context)
                return StrategyResult(Reason.ABORTED_AFTER_FAILURE, cause=reason)
            return await self._guarded(strategy)
        await strategy.abort(self.context)
        return StrategyResult(Reason.STOPPED_FOR_HUMAN, cause=reason, policy=policy)

    async def _rollback(self, strategy: StrategyRunner, reason: str) -> StrategyResult:
        self.control.forget_request()
        self.control.set_phase(Phase.ROLLING_BACK, reason)
        started = self.driver.clock.now()
        try:
            problems = await strategy.rollback(self.context)
        except DriverError as exc:
            return StrategyResult(Reason.ROLLBACK_FAILED, cause=reason, detail=str(exc))
        if problems:
            return StrategyResult(Reason.ROLLBACK_INCOMPLETE, cause=reason, detail="; ".join(problems))
        return StrategyResult(Reason.ROLLED_BACK, cause=reason, took=self.driver.clock.now() - started)

    async def unanswered(self) -> tuple[str, ...]:
        """At the end of every run that changed the LB: the instances nginx
        is left routing to (its last verified file) that do not answer their
        health probe now, named for whoever takes over (soak seed 3 run 14:
        a reload that did not take kept green serving with a dead host in
        it, and the result said only that every instance was in nginx)."""
        routed = [self.ops.by_key[k] for k in self.status.routed() if k in self.ops.by_key]
        samples = await asyncio.gather(*(self.ops.probe(i, quiet=True) for i in routed), return_exceptions=True)
        return tuple(sorted(i.key for i, s in zip(routed, samples) if isinstance(s, BaseException) or not s.ok))

    def routed_by(self, pools: Mapping[str, Sequence[Backend]]) -> list[str]:
        """The run's instances these pools route to (RunStarted.served_before: the LB files' before
        any change; RunStarted.routed: nginx's as this session starts)."""
        members = {str(b) for bs in pools.values() for b in bs}
        return [i.key for i in self.instances if str(backend(i)) in members]

    # -- the first step of every run ---------------------------------------------
    async def reconcile(self) -> None:
        """Bring the fleet to a safe state before the strategy goes on: traffic
        only to instances healthy on one version, unhealthy ones put back on
        the old version, as strategies/safe_state.py decides. A fresh run
        finds it so already (preflight refused it otherwise) and changes
        nothing; a resume finds what the dead session left. The strategy then
        runs as usual; instances already healthy on the target version are
        not redeployed."""
        ops = self.ops
        safe = safe_state(ops.versions, ops.old_versions, ops.version,
                          self.origin.original_pools(self.plan.nginx.upstream), self.origin.live_pools,
                          {i.key: str(backend(i)) for i in self.instances})
        if safe.default_pool is None:
            raise PreflightError("no healthy instance on the old or the new version is left to take traffic")
        if safe.serving.warns:
            self.emit(Notice(level="warning", message=f"resume: no instance answers on the old version; "
                             f"traffic stays on those healthy on {ops.version}"))
        if safe.reroute:
            state = lb_state(self.plan, {}, safe.default_pool, generation=self.traffic.next_generation())
            await self.traffic.apply(replace(state, pools=safe.pools, default_pool=safe.default_pool))
        if safe.sick:
            self.emit(Notice(level="warning", message="resume: unhealthy after the crash, or caught mid-change by "
                             "it, reinstalling the old version: " + ", ".join(safe.sick)))
            problems = await ops.revert(self.by_key[k] for k in safe.sick)
            if problems:
                raise GateFailed("; ".join(problems.values()))


# Outcome lives with the decision (strategies/status.py); callers of the engine import it here too
__all__ = ["Engine", "Outcome", "PreflightError", "Resume", "RunResult"]
