"""Blue-green: bring the idle colour up on the new version beside the live
one, switch every request over in one verified nginx reload, watch a
rollback window with the old colour still warm, then retire the old colour.

Two forms (plan.blue_green.mode): two host groups, or one group running two
template units (agent@blue, agent@green) on two ports, which avoids the
article's 200 % resource cost. Rollback inside the window is one reload back.
"""
from __future__ import annotations

from typing import Any, Sequence

from inventory.model import Instance

from .engine import Engine, GateFailed, PlannedStep, StrategyRunner
from .events import InstancePhase, Notice, StepStarted
from .topology import COLOURS, bluegreen_state


def other(colour: str) -> str:
    return COLOURS[1 - COLOURS.index(colour)]


class BlueGreen(StrategyRunner):
    def __init__(self) -> None:
        self.live = "blue"
        self.switched = False
        self.retired = False  # the old colour's units were stopped (units form, after a finished run)
        self.members: dict[str, list[Instance]] = {}

    def steps(self, plan: Any, instances: Sequence[Instance]) -> list[PlannedStep]:
        idle = other(plan.blue_green.active)
        keys = tuple(i.key for i in instances if i.role == idle)
        return [PlannedStep(f"deploy {idle}", keys), PlannedStep(f"switch to {idle}"),
                PlannedStep(f"rollback window {plan.blue_green.rollback_window:g}s"),
                PlannedStep(f"retire {plan.blue_green.active}")]

    def serving_at_start(self, plan: Any, instances: Sequence[Instance]) -> list[Instance]:
        """The plan's active colour: preflight refuses the plan when nginx
        routes to anything else (a switch to a colour nobody checked is
        what this prevents)."""
        return [i for i in instances if i.role == plan.blue_green.active]

    def colour(self, engine: Engine, colour: str) -> list[Instance]:
        return [i for i in engine.instances if i.role == colour]

    async def route(self, engine: Engine, members: dict[str, list[Instance]], active: str) -> None:
        self.members = members
        await engine.apply_lb(bluegreen_state(engine.plan, members, active, engine.next_generation()))

    async def run(self, engine: Engine) -> str:
        bg = engine.plan.blue_green
        self.live = bg.active
        idle = other(self.live)
        old, new = self.colour(engine, self.live), self.colour(engine, idle)
        self.members = {self.live: old}
        planned = self.steps(engine.plan, engine.instances)

        def begin(n: int) -> None:
            engine.emit(StepStarted, index=n, total=len(planned), title=planned[n - 1].title,
                        instances=list(planned[n - 1].instances))

        await engine.safe_point()
        begin(1)
        todo = [i for i in new if engine.versions.get(i.key) != engine.version]
        results = await engine.update_all(todo, engine.version)
        failed = [i for i in todo if not results[i.key][0]]
        if failed:
            for inst in failed:
                engine.instance_phase(inst, InstancePhase.FAILED, results[inst.key][1])
            raise GateFailed(f"{idle} instance {failed[0].key} failed: {results[failed[0].key][1]}")
        for inst in new:
            engine.instance_phase(inst, InstancePhase.STANDBY, f"{idle}, healthy, no traffic yet")
        # Define the idle pool (no traffic) so testers can force it by header.
        await self.route(engine, {self.live: old, idle: new}, self.live)
        if bg.pre_switch_delay:
            await engine.wait(bg.pre_switch_delay)
        await engine.safe_point()
        begin(2)
        started = engine.driver.clock.now()
        await self.route(engine, {self.live: old, idle: new}, idle)
        self.switched = True
        engine.emit(Notice, level="info",
                    message=f"switched to {idle} in {engine.driver.clock.now() - started:.3f}s")
        for inst in new:
            engine.instance_phase(inst, InstancePhase.LIVE, idle)
        begin(3)
        await engine.gate(f"{idle} after switch", bg.rollback_window, new, where=idle)
        begin(4)
        await self.route(engine, {idle: new}, idle)
        await self.retire(engine, old)
        self.retired = engine.plan.blue_green.mode == "units"
        return f"{idle} live on {engine.version}; {self.live} retired"

    async def retire(self, engine: Engine, insts: Sequence[Instance]) -> None:
        """Stop units that no longer take traffic (single-group form only:
        in the two-group form the old hosts keep running, warm, for the next
        release)."""
        if engine.plan.blue_green.mode != "units":
            return
        for inst in insts:
            await engine.driver.stop(inst)
            engine.instance_phase(inst, InstancePhase.STANDBY, "retired")

    async def rollback(self, engine: Engine) -> list[str]:
        idle = other(self.live)
        old, new = self.colour(engine, self.live), self.colour(engine, idle)
        if self.retired:  # rolled back after the run finished: the old colour's units were stopped
            problems = await engine.verify_old(old)  # started again on the old version, verified
            if problems:
                return list(problems.values())  # the new colour keeps serving
        if self.switched:
            await self.route(engine, {self.live: old, idle: new}, self.live)
            engine.emit(Notice, level="info", message=f"rollback: all traffic back on {self.live}")
        problems = await engine.verify_old(old)
        await self.retire(engine, new)
        for inst in new:
            engine.instance_phase(inst, InstancePhase.ROLLED_BACK, "out of traffic")
        if not problems:
            await engine.restore_lb()
        return list(problems.values())

    async def abort(self, engine: Engine) -> None:
        """Traffic back on the old colour; the new colour stays up, out of
        traffic, for inspection."""
        idle = other(self.live)
        if self.switched or idle in self.members:
            await engine.restore_lb()
            engine.emit(Notice, level="warning", message=f"aborted: {idle} kept running for inspection, no traffic")



