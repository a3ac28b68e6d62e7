"""Canary: shift an exact share of traffic to the new version step by step,
judging the canary pool (against thresholds and against the stable pool)
before every increase.

Capacity follows traffic: at each weight, just enough instances move to the
new version to carry that share (capacity.hosts_for_weight); at 100 % every
instance runs it and the split is removed. Rollback first sends every request
back to stable (one verified nginx reload), then reinstalls the old version on
the canary instances while they take no traffic.
"""
from __future__ import annotations

from typing import Any, Sequence

from inventory.model import Instance

from .capacity import hosts_for_weight
from .engine import Engine, GateFailed, PlannedStep, StrategyRunner
from .events import InstancePhase, Notice, StepStarted
from .topology import canary_state


def step_title(step: Any) -> str:
    if step.kind == "set_weight":
        return f"set weight {step.set_weight:g}%"
    if step.kind == "pause":
        return "pause until promoted" if step.pause is None else f"pause {step.pause:g}s"
    return f"analysis {step.analysis:g}s"


class Canary(StrategyRunner):
    def __init__(self) -> None:
        self.stable: list[Instance] = []
        self.canary: list[Instance] = []
        self.weight = 0.0

    def steps(self, plan: Any, instances: Sequence[Instance]) -> list[PlannedStep]:
        out, moved = [], 0
        for step in plan.canary.steps:
            keys: tuple[str, ...] = ()
            if step.kind == "set_weight":
                need = hosts_for_weight(step.set_weight, len(instances))
                keys = tuple(i.key for i in instances[moved:need])
                moved = max(moved, need)
            out.append(PlannedStep(step_title(step), keys))
        if moved < len(instances):
            out.append(PlannedStep("promote: set weight 100%", tuple(i.key for i in instances[moved:])))
        return out

    async def apply(self, engine: Engine) -> None:
        await engine.apply_lb(canary_state(engine.plan, self.stable, self.canary, self.weight,
                                           engine.next_generation()))

    async def run(self, engine: Engine) -> str:
        plan = engine.plan
        # Instances already on the new version (a resumed session) start as canaries.
        self.canary = [i for i in engine.instances if engine.versions.get(i.key) == engine.version]
        self.stable = [i for i in engine.instances if i not in self.canary]
        steps = plan.canary.steps
        for n, step in enumerate(steps, 1):
            await engine.safe_point()
            if engine.promote_full:
                engine.emit(Notice, level="info", message="promote --full: skipping the remaining steps")
                break
            engine.emit(StepStarted, index=n, total=len(steps), title=step_title(step))
            if step.kind == "set_weight":
                await self.set_weight(engine, step.set_weight)
            elif step.kind == "pause" and step.pause is None:
                await engine.wait_for_promotion(f"step {n}")
            elif step.kind == "pause":
                await engine.wait(step.pause, promotable=True)
            else:
                await engine.gate(f"step {n} {step_title(step)} at {self.weight:g}%", step.analysis,
                                  self.canary, self.stable, where="canary")
        if self.weight < 100 or self.stable:
            await self.set_weight(engine, 100.0)
        # Every instance now runs the new version: the original file (one
        # pool of all instances) is exactly the final state, byte for byte.
        await engine.restore_lb()
        return f"canary promoted: {len(self.canary)} instance(s) on {engine.version}"

    async def set_weight(self, engine: Engine, weight: float) -> None:
        """Move enough instances to carry `weight`, then shift the traffic."""
        need = hosts_for_weight(weight, len(engine.instances))
        move = self.stable[: max(0, need - len(self.canary))]
        if move:
            self.stable = [i for i in self.stable if i not in move]
            await self.apply(engine)
            await engine.drain(move)
            results = await engine.update_all(move, engine.version)
            failed = [i for i in move if not results[i.key][0]]
            self.canary += [i for i in move if i not in failed]
            if failed:
                for inst in failed:
                    engine.instance_phase(inst, InstancePhase.FAILED, results[inst.key][1])
                stuck = await engine.revert(failed)
                self.stable += [i for i in failed if i.key not in stuck]
                await self.apply(engine)
                raise GateFailed(f"canary instance {failed[0].key} failed: {results[failed[0].key][1]}")
        self.weight = weight
        await self.apply(engine)
        for inst in move:
            engine.instance_phase(inst, InstancePhase.LIVE, f"canary at {weight:g}%")

    async def rollback(self, engine: Engine) -> list[str]:
        plan = engine.plan
        if self.stable:
            self.weight = 0.0
            await engine.apply_lb(canary_state(plan, self.stable, [], 0.0, engine.next_generation()))
            engine.emit(Notice, level="info", message="rollback: all traffic back on the stable version")
        problems = dict(await engine.verify_old(self.stable)) if self.stable else {}
        # The canary instances take no traffic now (unless nothing else is
        # left): reinstall the old version on them, then re-admit them.
        if not self.stable:
            await self._rolling_revert(engine, problems)
        else:
            stuck = await engine.revert(self.canary)
            problems.update(stuck)
            self.stable += [i for i in self.canary if i.key not in stuck]
            self.canary = [i for i in self.canary if i.key in stuck]
            await engine.apply_lb(canary_state(plan, self.stable, [], 0.0, engine.next_generation()))
        if not self.canary and len(self.stable) == len(engine.instances):
            await engine.restore_lb()
        return list(problems.values())

    async def _rolling_revert(self, engine: Engine, problems: dict[str, str]) -> None:
        """Every instance is on the new version: revert one at a time, each
        out of nginx while it changes."""
        for inst in list(self.canary):
            self.canary.remove(inst)
            await self.apply(engine)
            await engine.drain([inst])
            stuck = await engine.revert([inst])
            problems.update(stuck)
            (self.canary if stuck else self.stable).append(inst)
            self.weight = 100.0 if not self.stable else 0.0
            await self.apply(engine)

    async def abort(self, engine: Engine) -> None:
        """All traffic back to stable; canary instances stay up, out of
        nginx, on the new version for inspection."""
        if self.stable and self.canary:
            self.weight = 0.0
            await engine.apply_lb(canary_state(engine.plan, self.stable, [], 0.0, engine.next_generation()))
            engine.emit(Notice, level="warning", message="aborted: canary instances kept out of nginx for inspection: "
                        + ", ".join(i.key for i in self.canary))
        elif not self.canary:
            await engine.restore_lb()

    async def hold(self, engine: Engine) -> None:
        engine.emit(Notice, level="info", message=f"holding at {self.weight:g}% canary until promoted")
