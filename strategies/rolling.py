"""Rolling: replace instances batch by batch, each drained from nginx first
and put back only once healthy on the new version.

Before each batch the capacity guard checks every instance that should be
serving (ctx.analysis.guard_capacity); between batches the new instances
are judged against the old ones over the same window (ctx.analysis.gate)."""
from __future__ import annotations

from typing import Sequence

from inventory.model import Instance

from .batches import failure_budget, plan_batches, readmit_later
from .context import NextDrain, PlannedStep, StrategyContext, StrategyRunner
from .control import GateFailed
from .events import InstancePhase, StepStarted
from .plan import Plan
from .topology import rolling_state


class Rolling(StrategyRunner):
    def __init__(self) -> None:
        self.excluded: set[str] = set()
        # a batch updated and verified on the new version, still out of nginx:
        # the next verified change re-admits it (batches.readmit_later)
        self.held: set[str] = set()

    def steps(self, plan: Plan, instances: Sequence[Instance]) -> list[PlannedStep]:
        batches = plan_batches(instances, plan.rolling.batch)
        return [PlannedStep(f"batch {n}/{len(batches)}", tuple(i.key for i in b)) for n, b in enumerate(batches, 1)]

    async def run(self, ctx: StrategyContext) -> str:
        plan = ctx.plan
        batches = plan_batches(ctx.instances.all, plan.rolling.batch)
        budget = failure_budget(len(ctx.instances.all), plan.rolling.max_fail_percentage)
        floor = len(ctx.instances.all) - max((len(b) for b in batches), default=0)
        failures: list[str] = []
        changed: list[Instance] = []
        for n, batch in enumerate(batches, 1):
            title = f"batch {n}/{len(batches)}"
            todo = [i for i in batch if ctx.instances.versions.get(i.key) != ctx.instances.version]
            if self.held and not (todo and ctx.control.undisturbed() and await self.may_swap(ctx, todo, floor)):
                await self.readmit(ctx)
            if not self.held:
                await ctx.control.safe_point()
                serving = [i for i in ctx.instances.all if i.key not in self.excluded]
                await ctx.analysis.guard_capacity(f"before {title}", serving, todo, floor)
            ctx.emit(StepStarted(index=n, total=len(batches), title=title, instances=[i.key for i in batch]))
            pending = {i.key for i in todo}
            already = [i for i in batch if i.key not in pending]
            for inst in already:
                ctx.instances.mark(inst, InstancePhase.LIVE, "already on the target version")
            if already and not all(ctx.traffic.routes(i) for i in already):
                # a resumed run: what a crash left updated but out of nginx serves again (verified first)
                await self.route(ctx, self.excluded)
            changed.extend(already)
            batch_failures = await self.replace(ctx, todo, ctx.instances.version, last=n == len(batches)) if todo else {}
            failures.extend(batch_failures.values())
            changed.extend(i for i in todo if i.key not in batch_failures)
            if len(failures) > budget:
                raise GateFailed(f"{len(failures)} of {len(ctx.instances.all)} instances failed "
                                 f"(max_fail_percentage {plan.rolling.max_fail_percentage:g}): {failures[0]}")
            if n < len(batches) and plan.rolling.interval > 0 and changed:
                new = {i.key for i in changed}
                old = [i for i in ctx.instances.all if i.key not in new and i.key not in self.excluded]
                after = [i for i in batches[n] if ctx.instances.versions.get(i.key) != ctx.instances.version]
                drain = NextDrain(f"batch {n + 1}/{len(batches)}", [*changed, *old], after, floor)
                await ctx.analysis.gate(f"after batch {n}", plan.rolling.interval, changed, old, drain_next=drain)
        await self.settle(ctx)
        return f"{len(changed)} instance(s) now on {ctx.instances.version}" + (
            f"; {len(failures)} failed and were reverted" if failures else "")

    async def may_swap(self, ctx: StrategyContext, batch: Sequence[Instance], floor: int) -> bool:
        """May the held batch be re-admitted and `batch` drained in one
        verified change? Only if the capacity guard would let `batch` be
        drained with the held batch serving; otherwise the held batch is
        re-admitted on its own and the guard acts as before a separate
        drain (pause, or on_failure)."""
        serving = [i for i in ctx.instances.all if i.key not in self.excluded - self.held]
        return (await ctx.analysis.capacity(serving, batch, floor)).ok

    async def replace(self, ctx: StrategyContext, batch: Sequence[Instance], version: str,
                      last: bool = True) -> dict[str, str]:
        """Drain, update and re-admit one batch (re-admitting a held batch in
        the same change as the drain). Instances that fail are put back on
        their old version; returns the failures by instance key. A batch
        that updated cleanly is held out of nginx when readmit_later() says
        the next change may re-admit it (every instance in it was verified
        healthy on the new version just now, and is verified again by that
        change, as every change is)."""
        keys = {i.key for i in batch}
        readmitted = self.held
        await self.route(ctx, (self.excluded - readmitted) | keys)
        self.released(ctx, readmitted)
        await ctx.instances.drain(batch)
        results = await ctx.instances.update_all(batch, version)
        failed = [i for i in batch if not results[i.key][0]]
        for inst in failed:
            ctx.instances.mark(inst, InstancePhase.FAILED, results[inst.key][1])
        stuck = await ctx.instances.revert(failed) if failed else {}
        if readmit_later(ctx.plan.rolling.interval, last, len(failed)):
            self.held = keys
            return {}
        await self.route(ctx, self.excluded - (keys - set(stuck)))
        for inst in batch:
            if results[inst.key][0]:
                ctx.instances.mark(inst, InstancePhase.LIVE)
        return {i.key: f"{i.key}: {results[i.key][1]}" for i in failed}

    def released(self, ctx: StrategyContext, keys: set[str]) -> None:
        """The held batch `keys` is in nginx again (the change that did it
        was verified): it is live, and no longer held."""
        for key in sorted(keys):
            ctx.instances.mark(ctx.instances.by_key[key], InstancePhase.LIVE)
        self.held = self.held - keys

    async def readmit(self, ctx: StrategyContext) -> None:
        """Re-admit the held batch in a change of its own."""
        held = self.held
        await self.route(ctx, self.excluded - held)
        self.released(ctx, held)

    async def route(self, ctx: StrategyContext, excluded: set[str]) -> None:
        """Serve every instance but `excluded`; the record of who is out
        changes only once nginx has verifiably taken the change."""
        await ctx.traffic.apply(rolling_state(ctx.plan, ctx.instances.all, excluded, ctx.traffic.next_generation()))
        self.excluded = excluded

    async def settle(self, ctx: StrategyContext) -> None:
        """With every instance back in nginx, restore the managed file byte
        for byte, so the LB ends exactly as it started. A held batch (the
        last one) is re-admitted by that same change: the restore verifies
        every instance it routes to, as every change does."""
        if self.held and self.excluded - self.held:
            await self.readmit(ctx)
        if not self.excluded - self.held:
            await ctx.traffic.restore()
            self.excluded = set()
            self.released(ctx, self.held)

    async def rollback(self, ctx: StrategyContext) -> list[str]:
        changed = [i for i in ctx.instances.all
                   if ctx.instances.versions.get(i.key) != ctx.instances.old_versions.get(i.key)]
        problems: dict[str, str] = {}
        self.held = set()  # a held batch is out of nginx and changed: rolled back like the rest
        for batch in reversed(plan_batches(changed, ctx.plan.rolling.batch)):
            keys = {i.key for i in batch}
            await self.route(ctx, self.excluded | keys)
            await ctx.instances.drain(batch)
            stuck = await ctx.instances.revert(batch)
            problems.update(stuck)
            await self.route(ctx, self.excluded - (keys - set(stuck)))
        await self.settle(ctx)
        return list(problems.values())

    async def abort(self, ctx: StrategyContext) -> None:
        await self.settle(ctx)
