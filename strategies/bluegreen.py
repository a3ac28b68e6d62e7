"""Blue-green: bring the idle colour up on the new version beside the live
one, switch every request over in one verified nginx reload, watch a
rollback window with the old colour still warm, then retire the old colour.

Two forms (plan.blue_green.mode): two host groups, or one group running two
template units (agent@blue, agent@green) on two ports, which avoids the
article's 200 % resource cost. Rollback inside the window is one reload back.
"""
from __future__ import annotations

from typing import Sequence

from inventory.model import Colour, Instance

from .context import PlannedStep, StrategyContext, StrategyRunner
from .control import GateFailed
from .events import InstancePhase, Notice, StepStarted
from .plan import Plan
from .topology import COLOURS, bluegreen_state


def live(plan: Plan) -> Colour:
    """The serving colour: the plan's, or (active: auto, before preflight has
    read nginx, e.g. a --dry-run) blue, as a fresh fleet starts."""
    active = plan.blue_green.active
    return Colour.BLUE if active == "auto" else Colour(active)


class BlueGreen(StrategyRunner):
    def __init__(self) -> None:
        self.live = Colour.BLUE
        self.switched = False
        self.retired = False  # the old colour's units were stopped (units form, after a finished run)
        self.members: dict[Colour, list[Instance]] = {}

    def steps(self, plan: Plan, instances: Sequence[Instance]) -> list[PlannedStep]:
        old = live(plan)
        idle = old.other
        keys = tuple(i.key for i in instances if i.colour == idle)
        retired = next((i.slot for i in instances if i.colour == old), old)  # "main" when adopted
        return [PlannedStep(f"deploy {idle}", keys), PlannedStep(f"switch to {idle}"),
                PlannedStep(f"rollback window {plan.blue_green.rollback_window:g}s"),
                PlannedStep(f"retire {old}" + (f" ({retired})" if retired not in COLOURS + (old,) else ""))]

    def serving_at_start(self, plan: Plan, instances: Sequence[Instance]) -> list[Instance]:
        """The active colour (read from live routing at preflight when the
        plan says auto): preflight refuses the plan when nginx routes to
        anything else (a switch to a colour nobody checked is what this
        prevents)."""
        return [i for i in instances if i.colour == live(plan)]

    def colour(self, ctx: StrategyContext, colour: Colour) -> list[Instance]:
        return [i for i in ctx.instances.all if i.colour == colour]

    async def route(self, ctx: StrategyContext, members: dict[Colour, list[Instance]], active: Colour) -> None:
        self.members = members
        await ctx.traffic.apply(bluegreen_state(ctx.plan, members, active, ctx.traffic.next_generation()))

    async def run(self, ctx: StrategyContext) -> str:
        bg = ctx.plan.blue_green
        self.live = live(ctx.plan)
        idle = self.live.other
        old, new = self.colour(ctx, self.live), self.colour(ctx, idle)
        self.members = {self.live: old}
        planned = self.steps(ctx.plan, ctx.instances.all)

        def begin(n: int) -> None:
            ctx.emit(StepStarted(index=n, total=len(planned), title=planned[n - 1].title,
                        instances=list(planned[n - 1].instances)))

        await ctx.control.safe_point()
        begin(1)
        todo = [i for i in new if ctx.instances.versions.get(i.key) != ctx.instances.version]
        results = await ctx.instances.update_all(todo, ctx.instances.version)
        failed = [i for i in todo if not results[i.key][0]]
        if failed:
            for inst in failed:
                ctx.instances.mark(inst, InstancePhase.FAILED, results[inst.key][1])
            raise GateFailed(f"{idle} instance {failed[0].key} failed: {results[failed[0].key][1]}")
        for inst in new:
            ctx.instances.mark(inst, InstancePhase.STANDBY, f"{idle}, healthy, no traffic yet")
        # Define the idle pool (no traffic) so testers can force it by header.
        await self.route(ctx, {self.live: old, idle: new}, self.live)
        if bg.pre_switch_delay:
            await ctx.control.wait(bg.pre_switch_delay)
        await ctx.control.safe_point()
        begin(2)
        await self.route(ctx, {self.live: old, idle: new}, idle)  # its TrafficChanged says how long it took
        self.switched = True
        for inst in new:
            ctx.instances.mark(inst, InstancePhase.LIVE, idle)
        begin(3)
        await ctx.analysis.gate(f"{idle} after switch", bg.rollback_window, new, where=idle)
        begin(4)
        await self.route(ctx, {idle: new}, idle)
        await self.retire(ctx, old)
        self.retired = ctx.plan.blue_green.mode == "units"
        gone = next((i.slot for i in old if i.slot not in COLOURS), None)  # adopted: `main`, not a colour
        return f"{idle} live on {ctx.instances.version}; " + (f"{gone} (adopted) retired" if gone else
                                                              f"{self.live} retired")

    async def retire(self, ctx: StrategyContext, insts: Sequence[Instance]) -> None:
        """Stop units that no longer take traffic (single-group form only:
        in the two-group form the old hosts keep running, warm, for the next
        release)."""
        if ctx.plan.blue_green.mode == "units":
            await ctx.instances.retire(insts)

    async def rollback(self, ctx: StrategyContext) -> list[str]:
        idle = self.live.other
        old, new = self.colour(ctx, self.live), self.colour(ctx, idle)
        if self.retired:  # rolled back after the run finished: the old colour's units were stopped
            problems = await ctx.instances.verify_old(old)  # started again on the old version, verified
            if problems:
                return list(problems.values())  # the new colour keeps serving
        # Traffic on the old colour alone, routed (as every change is) only
        # to its instances verified just now: the new colour leaves nginx
        # altogether before its units are stopped, and an old instance that
        # died during the run (soak seed 2 run 170: two hosts powered off
        # before the switch) is left out and named instead of being routed
        # to. If every old instance is fine, the byte-for-byte restore below
        # is what stays.
        await self.route(ctx, {self.live: old}, self.live)
        if self.switched:
            ctx.emit(Notice(level="info", message=f"rollback: all traffic back on {self.live}"))
        problems = await ctx.instances.verify_old(old)
        if problems:  # re-admit what verify_old restored; what it could not stays out, named
            await self.route(ctx, {self.live: old}, self.live)
        if ctx.plan.blue_green.mode == "units":
            # The new colour may have served until the route above (in this
            # run, or in the one a resume took over: seed 9 run 26 at
            # b0fb389): the requests still on its units finish before they
            # stop (seed 9 run 216 at 539650a: stopped at once, 100 of
            # nginx's own 502s).
            await ctx.instances.drain(new)
        await self.retire(ctx, new)
        for inst in new:
            ctx.instances.mark(inst, InstancePhase.ROLLED_BACK, "out of traffic")
        if not problems:
            await ctx.traffic.restore()
        return list(problems.values())

    async def abort(self, ctx: StrategyContext) -> None:
        """Traffic back on the old colour; the new colour stays up, out of
        traffic, for inspection."""
        idle = self.live.other
        if self.switched or idle in self.members:
            await ctx.traffic.restore()
            ctx.emit(Notice(level="warning", message=f"aborted: {idle} kept running for inspection, no traffic"))



