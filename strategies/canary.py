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

import asyncio
from typing import Sequence

from inventory.model import Instance

from .capacity import canary_floor, canary_next_move, hosts_for_weight
from .context import NextDrain, PlannedStep, StrategyContext, StrategyRunner
from .control import GateFailed
from .events import InstancePhase, Notice, StepStarted
from .plan import Plan, Step
from .topology import canary_state


def step_title(step: Step) -> str:
    if step.kind == "set_weight":
        return f"set weight {step.set_weight:g}%"
    if step.kind == "pause":
        return "pause until promoted" if step.pause is None else f"pause {step.pause:g}s"
    return f"analysis {step.analysis:g}s"


class Canary(StrategyRunner):
    def __init__(self) -> None:
        self.stable: list[Instance] = []
        self.canary: list[Instance] = []
        # canary.baseline: matched: stable instances restarted on the old version with the
        # canary, serving the canary's share in a pool of their own while 2 x weight < 100
        self.baseline: list[Instance] = []
        self.weight = 0.0
        self.floor = 0  # the fewest serving the plan allows (capacity.canary_floor)

    def steps(self, plan: Plan, instances: Sequence[Instance]) -> list[PlannedStep]:
        out, moved = [], 0
        for step in plan.canary.steps:
            keys: tuple[str, ...] = ()
            if step.set_weight is not None:
                need = hosts_for_weight(step.set_weight, len(instances))
                keys = tuple(i.key for i in instances[moved:need])
                moved = max(moved, need)
            out.append(PlannedStep(step_title(step), keys))
        if moved < len(instances):
            out.append(PlannedStep("promote: set weight 100%", tuple(i.key for i in instances[moved:])))
        return out

    async def apply(self, ctx: StrategyContext) -> None:
        await ctx.traffic.apply(canary_state(ctx.plan, self.stable, self.canary, self.weight,
                                           ctx.traffic.next_generation(), self.baseline))

    async def run(self, ctx: StrategyContext) -> str:
        plan = ctx.plan
        # Instances already on the new version (a resumed session) start as canaries.
        self.canary = [i for i in ctx.instances.all if ctx.instances.versions.get(i.key) == ctx.instances.version]
        on_new = {i.key for i in self.canary}
        self.stable = [i for i in ctx.instances.all if i.key not in on_new]
        steps = plan.canary.steps
        self.floor = canary_floor([s.set_weight for s in steps if s.set_weight is not None], len(ctx.instances.all))
        for n, step in enumerate(steps, 1):
            await ctx.control.safe_point()
            if ctx.control.promote_full:
                ctx.emit(Notice(level="info", message="promote --full: skipping the remaining steps"))
                break
            ctx.emit(StepStarted(index=n, total=len(steps), title=step_title(step)))
            if step.set_weight is not None:
                await self.set_weight(ctx, step.set_weight)
            elif step.analysis is not None:
                await ctx.analysis.gate(f"step {n} {step_title(step)} at {self.weight:g}%", step.analysis,
                                        self.canary, self.baseline or self.stable, where="canary",
                                        drain_next=self.next_drain(ctx, steps[n:]))
            elif step.pause is None:
                await ctx.control.wait_for_promotion(f"step {n}")
            else:
                await ctx.control.wait(step.pause, promotable=True)
        if self.weight < 100 or self.stable:
            await self.set_weight(ctx, 100.0)
        # Every instance now runs the new version: the original file (one
        # pool of all instances) is exactly the final state, byte for byte.
        await ctx.traffic.restore()
        return f"canary promoted: {len(self.canary)} instance(s) on {ctx.instances.version}"

    def serving(self) -> list[Instance]:
        return [*self.canary, *self.baseline, *self.stable]

    def next_drain(self, ctx: StrategyContext, later: Sequence[Step]) -> NextDrain:
        """What the next set_weight step will drain, for the capacity guard
        a window asks as soon as a serving instance is found down (a dead
        stable host, or one the next step would move, which could only fail
        its deploy)."""
        weights = [s.set_weight for s in later if s.set_weight is not None]
        stable = {i.key: i for i in self.stable}
        weight, keys = canary_next_move(weights, self.weight, len(self.canary), list(stable), len(ctx.instances.all))
        return NextDrain(f"set weight {weight:g}%", self.serving(), [stable[k] for k in keys], self.floor)

    async def set_weight(self, ctx: StrategyContext, weight: float) -> None:
        """Move enough instances to carry `weight`, then shift the traffic.
        With a matched baseline, as many stable instances restart on the
        old version at the same moment (see `matched_for`); where the match
        no longer fits (50 % and up) they rejoin stable."""
        need = hosts_for_weight(weight, len(ctx.instances.all))
        if not self.matches(ctx, weight, need):
            self.stable, self.baseline = [*self.stable, *self.baseline], []  # rejoins stable, on the old version
        move = self.stable[: max(0, need - len(self.canary))]
        match = self.matched_for(ctx, weight, need, move)
        if move:
            # as before a rolling batch: every instance that should serve is probed, and a
            # dead one pauses (or fails) the step when the drain would leave too few or move it
            await ctx.analysis.guard_capacity(f"before set weight {weight:g}%", self.serving(), [*move, *match],
                                              self.floor)
            # by key, not by list membership: Instance equality compares whole hosts, and
            # `i not in move` for every stable instance was O(hosts^2) (a 10,000-host canary
            # stalled the event loop for about a minute here, past its health deadline)
            self.stable = self.stable[len(move):]
            if match:
                self.stable = self.stable[: len(self.stable) - len(match)]
            await self.apply(ctx)
            await ctx.instances.drain([*move, *match])
            results, restarted = await asyncio.gather(
                ctx.instances.update_all(move, ctx.instances.version), self.restart_old(ctx, match))
            self.baseline += restarted
            self.stable += [i for i in match if i not in restarted]
            failed = [i for i in move if not results[i.key][0]]
            self.canary += [i for i in move if results[i.key][0]]
            if failed:
                for inst in failed:
                    ctx.instances.mark(inst, InstancePhase.FAILED, results[inst.key][1])
                stuck = await ctx.instances.revert(failed)
                self.stable += [i for i in failed if i.key not in stuck]
                await self.apply(ctx)
                raise GateFailed(f"canary instance {failed[0].key} failed: {results[failed[0].key][1]}")
        self.weight = weight
        await self.apply(ctx)
        for inst in move:
            ctx.instances.mark(inst, InstancePhase.LIVE, f"canary at {weight:g}%")
        for inst in match:
            if inst in self.baseline:
                ctx.instances.mark(inst, InstancePhase.LIVE, f"matched baseline at {weight:g}%")

    def matches(self, ctx: StrategyContext, weight: float, need: int) -> bool:
        """Is there a matched baseline at `weight`: the plan asks for one,
        both shares fit beside stable's, and stable keeps an instance?"""
        total = len(ctx.instances.all)
        return ctx.plan.canary.baseline == "matched" and 0 < 2 * weight < 100 and 2 * need < total

    def matched_for(self, ctx: StrategyContext, weight: float, need: int, move: list[Instance]) -> list[Instance]:
        """The stable instances to restart as the matched baseline with
        `move` (as many as the canary will have), taken from the end of the
        stable list: the last ones a later step moves to the canary."""
        if not self.matches(ctx, weight, need):
            return []
        want = need - len(self.baseline)
        rest = self.stable[len(move):]
        return rest[len(rest) - want:] if 0 < want <= len(rest) - 1 else []

    async def restart_old(self, ctx: StrategyContext, insts: list[Instance]) -> list[Instance]:
        """Restart `insts` on the version they run (the old one), as the
        canary restarts on the new: the ones healthy again. One that is not
        rejoins stable (nginx's verified change leaves it out if still
        unhealthy) and the canary is judged against stable as before."""
        if not insts:
            return []
        olds = {i.key: ctx.instances.old_versions.get(i.key) or "" for i in insts}
        results = await asyncio.gather(*(ctx.instances.update_all([i], olds[i.key]) for i in insts))
        ok = [i for i, r in zip(insts, results) if r[i.key][0]]
        for inst, r in zip(insts, results):
            if not r[inst.key][0]:
                ctx.emit(Notice(level="warning", message=f"matched baseline {inst.key} did not restart "
                                f"healthy on {olds[inst.key]}: {r[inst.key][1]}; it serves in stable"))
        return ok

    async def rollback(self, ctx: StrategyContext) -> list[str]:
        plan = ctx.plan
        self.stable, self.baseline = [*self.stable, *self.baseline], []
        if self.stable:
            self.weight = 0.0
            await ctx.traffic.apply(canary_state(plan, self.stable, [], 0.0, ctx.traffic.next_generation()))
            ctx.emit(Notice(level="info", message="rollback: all traffic back on the stable version"))
        problems = dict(await ctx.instances.verify_old(self.stable)) if self.stable else {}
        # The canary instances take no traffic now (unless nothing else is
        # left): reinstall the old version on them, then re-admit them.
        if not self.stable:
            await self._rolling_revert(ctx, problems)
        else:
            # Requests nginx sent them before the change may still be on
            # them: a restart would cut them, and nginx's retries, made
            # under the old split, land on the other canaries restarting
            # too (soak seed 9 run 7 at f47952b: 15 of nginx's own 502s).
            await ctx.instances.drain(self.canary)
            stuck = await ctx.instances.revert(self.canary)
            problems.update(stuck)
            self.stable += [i for i in self.canary if i.key not in stuck]
            self.canary = [i for i in self.canary if i.key in stuck]
            await ctx.traffic.apply(canary_state(plan, self.stable, [], 0.0, ctx.traffic.next_generation()))
        if not self.canary and len(self.stable) == len(ctx.instances.all):
            await ctx.traffic.restore()
        return list(problems.values())

    async def _rolling_revert(self, ctx: StrategyContext, problems: dict[str, str]) -> None:
        """Every instance is on the new version: revert one at a time, each
        out of nginx while it changes."""
        for inst in list(self.canary):
            self.canary.remove(inst)
            await self.apply(ctx)
            await ctx.instances.drain([inst])
            stuck = await ctx.instances.revert([inst])
            problems.update(stuck)
            (self.canary if stuck else self.stable).append(inst)
            self.weight = 100.0 if not self.stable else 0.0
            await self.apply(ctx)

    async def abort(self, ctx: StrategyContext) -> None:
        """All traffic back to stable; canary instances stay up, out of
        nginx, on the new version for inspection; a matched baseline
        rejoins stable."""
        self.stable, self.baseline = [*self.stable, *self.baseline], []
        if self.stable and self.canary:
            self.weight = 0.0
            await ctx.traffic.apply(canary_state(ctx.plan, self.stable, [], 0.0, ctx.traffic.next_generation()))
            ctx.emit(Notice(level="warning", message="aborted: canary instances kept out of nginx for inspection: "
                        + ", ".join(i.key for i in self.canary)))
        elif not self.canary:
            await ctx.traffic.restore()

    async def hold(self, ctx: StrategyContext) -> None:
        ctx.emit(Notice(level="info", message=f"holding at {self.weight:g}% canary until promoted"))
