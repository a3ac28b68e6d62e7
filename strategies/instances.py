"""Instance operations: probe, drain, update, revert, verify.

What every strategy does to one instance, over the narrow
`inventory.driver.InstanceDriver`. What the run knows of each instance's
version (now, and before the run) is the run's status (strategies/status.py),
read through `KnownVersions`: this service changes it only by the events it
emits (VersionLost, InstanceChanged), so the journal holds every change.
It keeps when each instance last passed the health gate's probe (routing
trusts only recent passes). Strategies see this through the `Instances`
protocol (strategies/context.py).
"""
from __future__ import annotations

import asyncio
from typing import Iterable, Mapping, Protocol, Sequence

from inventory.driver import DriverError, HealthSample, InstanceDriver
from inventory.model import Instance

from .events import Emit, HealthChecked, InstanceChanged, InstancePhase, Notice, VersionLost
from .plan import Plan, UnsafeValue, check_template_values, render_commands
from .topology import backend

# how often a drain asks an instance for its in-flight count: requests still
# running on a just-drained backend mostly end within tens of milliseconds,
# so a coarser poll would add its own interval to most batches
DRAIN_POLL = 0.05


class KnownVersions(Protocol):
    """Each instance's version as the run's status folds it (strategies/status.py RunStatus)."""

    @property
    def versions(self) -> Mapping[str, str | None]: ...

    @property
    def old_versions(self) -> Mapping[str, str | None]: ...


class InstanceOps:
    def __init__(self, plan: Plan, driver: InstanceDriver, instances: list[Instance], version: str,
                 emit: Emit, known: KnownVersions):
        self.plan = plan
        self.driver = driver
        self.all = instances
        self.version = version  # the release this run installs
        self.emit = emit
        self.known = known
        self.adopt(instances)
        self._verified_at: dict[str, float] = {}  # instance key -> engine time of its last good probe
        self.restarted_at: dict[str, float] = {}  # instance key -> engine time this run restarted it

    def adopt(self, instances: list[Instance]) -> None:
        """Manage these instances (blue-green, before anything changed: the
        plan's own slot adopted as the old colour)."""
        self.all = instances
        self.by_key = {i.key: i for i in instances}
        self.by_backend = {str(backend(i)): i for i in instances}

    @property
    def versions(self) -> Mapping[str, str | None]:
        """What each instance runs now, as far as the run knows (None: unknown or unhealthy)."""
        return self.known.versions

    @property
    def old_versions(self) -> Mapping[str, str | None]:
        """What each instance ran before the run."""
        return self.known.old_versions

    def lost(self, inst: Instance) -> None:
        """The run no longer knows what `inst` runs: journalled, folded into the status."""
        self.emit(VersionLost(instance=inst.key))

    def mark(self, inst: Instance, phase: InstancePhase, detail: str = "") -> None:
        """Tell the views what this instance is doing now."""
        self.emit(InstanceChanged(instance=inst.key, phase=phase,
                                  version=self.versions.get(inst.key), detail=detail))

    # -- probes ------------------------------------------------------------------
    async def probe(self, inst: Instance, *, quiet: bool = False, idle: bool = False) -> HealthSample:
        """The health gate's probe. A pass on the expected version marks the
        instance verified (routing may use it); `quiet` emits only failures
        (routing checks of many instances); `idle`: probed before any change
        while it takes no traffic, so a failure is expected (HealthChecked.idle)."""
        health = self.plan.health
        sample = await self.driver.health(inst, health.path, health.port or inst.port, health.timeout)
        if not self.why_unverified(inst, sample):
            self._verified_at[inst.key] = self.driver.clock.now()
        if not quiet or not sample.ok:
            self.emit(HealthChecked(instance=inst.key, ok=sample.ok, version=sample.version,
                                    latency=round(sample.latency, 4), detail=sample.detail, idle=idle))
        return sample

    def why_unverified(self, inst: Instance, sample: HealthSample) -> str:
        """'' when the probe verifies the instance, else why not."""
        if not sample.ok:
            return sample.detail or "unhealthy"
        expected = self.versions.get(inst.key)
        if self.plan.health.expect_version and expected is not None and sample.version != expected:
            return f"reports version {sample.version}, expected {expected}"
        return ""

    def verified_within(self, inst: Instance, seconds: float) -> bool:
        """Did `inst` pass the health gate's probe in the last `seconds`?"""
        return self.driver.clock.now() - self._verified_at.get(inst.key, float("-inf")) <= seconds

    # -- changing instances --------------------------------------------------------
    async def drain(self, insts: Sequence[Instance]) -> None:
        """Wait for in-flight requests on instances already out of nginx:
        those nginx's retired workers still hold for them (forwarded up to
        0.9 s after the change on a loaded LB: soak seed 9 run 274, where
        green stopped under them), then the instances' own."""
        if not insts:
            return
        end = self.driver.clock.now() + self.plan.drain.timeout
        for inst in insts:
            self.mark(inst, InstancePhase.DRAINING)
        if not await self.driver.lb_drained(self.plan.drain.timeout):
            self.emit(Notice(level="warning", message="nginx's workers of the previous configuration still "
                             "busy after the drain timeout"))

        async def one(inst: Instance) -> None:
            while True:  # asked at least once, however long nginx's workers took
                try:
                    if await self.driver.inflight(inst) == 0:
                        return
                except DriverError:
                    return  # not answering: nothing in flight to protect
                if self.driver.clock.now() >= end:
                    break
                await self.driver.clock.sleep(DRAIN_POLL)
            self.emit(Notice(level="warning", message=f"{inst.key}: still busy after drain timeout"))
        await asyncio.gather(*(one(i) for i in insts))

    async def update(self, inst: Instance, version: str) -> tuple[bool, str]:
        """Deploy `version`, restart, and wait until healthy on it. The
        plan's health deadline is a progress deadline: it runs from the
        restart, so a unit slow to start counts against it too."""
        plan = self.plan
        deadline = plan.health.deadline
        try:
            check_template_values(version, inst.slot)
            commands = render_commands(plan, version, inst.slot, inst.host.name, reveal=True)
        except UnsafeValue as exc:  # nothing ran: the instance is as it was
            return False, f"refused to deploy: {exc}"
        try:
            self.mark(inst, InstancePhase.DEPLOYING, version)
            await self.driver.run_commands(inst, commands, plan.deploy.timeout, version=version)
            self.mark(inst, InstancePhase.RESTARTING)
            started = self.driver.clock.now()
            self.restarted_at[inst.key] = started  # the judge leaves its warm-up out (analysis.warm)
            await asyncio.wait_for(self.driver.restart(inst), deadline / self.driver.clock.scale)
        except DriverError as exc:
            self.lost(inst)
            return False, exc.message
        except TimeoutError:
            self.lost(inst)
            return False, f"{inst.unit} still starting after the {deadline:g}s deadline"
        # it runs the release now: said by the event that says its health is being checked
        self.emit(InstanceChanged(instance=inst.key, phase=InstancePhase.CHECKING, version=version))
        return await self.wait_healthy(inst, version, started + deadline)

    async def wait_healthy(self, inst: Instance, version: str, end: float) -> tuple[bool, str]:
        """Probe until `passes` checks in a row pass on `version`, or `end`
        (engine clock) comes."""
        health = self.plan.health
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
        """Update these instances side by side: (ok, detail) by instance key."""
        results = await asyncio.gather(*(self.update(i, version) for i in insts))
        return {i.key: r for i, r in zip(insts, results)}

    async def revert(self, insts: Iterable[Instance]) -> dict[str, str]:
        """Put these instances back on their old version. Returns the problems
        by instance key; an instance whose old version is unknown is left."""
        todo = [i for i in insts
                if self.old_versions.get(i.key) and self.versions.get(i.key) != self.old_versions[i.key]]
        results = await asyncio.gather(*(self.update(i, self.old_versions[i.key] or "") for i in todo))
        problems = {}
        for inst, (ok, detail) in zip(todo, results):
            self.mark(inst, InstancePhase.ROLLED_BACK if ok else InstancePhase.FAILED, detail)
            if not ok:
                problems[inst.key] = f"{inst.key}: old version {self.old_versions[inst.key]} unhealthy: {detail}"
        return problems

    async def verify_old(self, insts: Sequence[Instance]) -> dict[str, str]:
        """The seed's rollback steps 3-4: check the old version is healthy
        where traffic now goes; where it is not, restore the previous release
        (reinstall it) and say so. Returns what could not be restored."""
        samples = await asyncio.gather(*(self.probe(i) for i in insts))
        broken = [i for i, s in zip(insts, samples) if not s.ok]
        if not broken:
            return {}
        self.emit(Notice(level="warning", message="old version unhealthy on " + ", ".join(i.key for i in broken)
                         + ": restoring the previous release"))
        for inst in broken:
            self.lost(inst)
        return await self.revert(broken)

    async def retire(self, insts: Sequence[Instance]) -> None:
        """Stop units that no longer take traffic (blue-green's old colour),
        all at once and every one that can be stopped: an unreachable host
        fails its own stop (raised once the others are done), it does not
        leave the units after it running."""
        async def one(inst: Instance) -> None:
            await self.driver.stop(inst)
            self.mark(inst, InstancePhase.STANDBY, "retired")

        results = await asyncio.gather(*(one(i) for i in insts), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
