"""Rolling: replace instances batch by batch, each drained from nginx first
and put back only once healthy on the new version.

Before each batch the capacity guard checks every instance that should be
serving (engine.guard_capacity); between batches the new instances are
judged against the old ones over the same window (engine.gate)."""
from __future__ import annotations

from typing import Any, Sequence

from inventory.model import Instance

from .batches import failure_budget, plan_batches
from .engine import Engine, GateFailed, PlannedStep, StrategyRunner
from .events import InstancePhase, StepStarted
from .topology import rolling_state


class Rolling(StrategyRunner):
    def __init__(self) -> None:
        self.excluded: set[str] = set()

    def steps(self, plan: Any, instances: Sequence[Instance]) -> list[PlannedStep]:
        batches = plan_batches(instances, plan.rolling.batch)
        return [PlannedStep(f"batch {n}/{len(batches)}", tuple(i.key for i in b)) for n, b in enumerate(batches, 1)]

    async def run(self, engine: Engine) -> str:
        plan = engine.plan
        batches = plan_batches(engine.instances, plan.rolling.batch)
        budget = failure_budget(len(engine.instances), plan.rolling.max_fail_percentage)
        floor = len(engine.instances) - max((len(b) for b in batches), default=0)
        failures: list[str] = []
        changed: list[Instance] = []
        for n, batch in enumerate(batches, 1):
            await engine.safe_point()
            todo = [i for i in batch if engine.versions.get(i.key) != engine.version]
            serving = [i for i in engine.instances if i.key not in self.excluded]
            await engine.guard_capacity(f"before batch {n}/{len(batches)}", serving, todo, floor)
            engine.emit(StepStarted, index=n, total=len(batches), title=f"batch {n}/{len(batches)}",
                        instances=[i.key for i in batch])
            already = [i for i in batch if i not in todo]
            for inst in already:
                engine.instance_phase(inst, InstancePhase.LIVE, "already on the target version")
            if already and not all(engine.routes(i) for i in already):
                # a resumed run: what a crash left updated but out of nginx serves again (verified first)
                await self.route(engine, self.excluded)
            changed.extend(already)
            batch_failures = await self.replace(engine, todo, engine.version) if todo else {}
            failures.extend(batch_failures.values())
            changed.extend(i for i in todo if i.key not in batch_failures)
            if len(failures) > budget:
                raise GateFailed(f"{len(failures)} of {len(engine.instances)} instances failed "
                                 f"(max_fail_percentage {plan.rolling.max_fail_percentage:g}): {failures[0]}")
            if n < len(batches) and plan.rolling.interval > 0 and changed:
                new = {i.key for i in changed}
                old = [i for i in engine.instances if i.key not in new and i.key not in self.excluded]
                await engine.gate(f"after batch {n}", plan.rolling.interval, changed, old)
        await self.settle(engine)
        return f"{len(changed)} instance(s) now on {engine.version}" + (
            f"; {len(failures)} failed and were reverted" if failures else "")

    async def replace(self, engine: Engine, batch: Sequence[Instance], version: str) -> dict[str, str]:
        """Drain, update and re-admit one batch. Instances that fail are put
        back on their old version; returns the failures by instance key."""
        keys = {i.key for i in batch}
        await self.route(engine, self.excluded | keys)
        await engine.drain(batch)
        results = await engine.update_all(batch, version)
        failed = [i for i in batch if not results[i.key][0]]
        for inst in failed:
            engine.instance_phase(inst, InstancePhase.FAILED, results[inst.key][1])
        stuck = await engine.revert(failed) if failed else {}
        await self.route(engine, self.excluded - (keys - set(stuck)))
        for inst in batch:
            if results[inst.key][0]:
                engine.instance_phase(inst, InstancePhase.LIVE)
        return {i.key: f"{i.key}: {results[i.key][1]}" for i in failed}

    async def route(self, engine: Engine, excluded: set[str]) -> None:
        """Serve every instance but `excluded`; the record of who is out
        changes only once nginx has verifiably taken the change."""
        await engine.apply_lb(rolling_state(engine.plan, engine.instances, excluded, engine.next_generation()))
        self.excluded = excluded

    async def settle(self, engine: Engine) -> None:
        """With every instance back in nginx, restore the managed file byte
        for byte, so the LB ends exactly as it started."""
        if not self.excluded:
            await engine.restore_lb()

    async def rollback(self, engine: Engine) -> list[str]:
        changed = [i for i in engine.instances
                   if engine.versions.get(i.key) != engine.old_versions.get(i.key)]
        problems: dict[str, str] = {}
        for batch in reversed(plan_batches(changed, engine.plan.rolling.batch)):
            keys = {i.key for i in batch}
            await self.route(engine, self.excluded | keys)
            await engine.drain(batch)
            stuck = await engine.revert(batch)
            problems.update(stuck)
            await self.route(engine, self.excluded - (keys - set(stuck)))
        await self.settle(engine)
        return list(problems.values())

    async def abort(self, engine: Engine) -> None:
        await self.settle(engine)
