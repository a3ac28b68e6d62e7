"""Which instances a plan touches and how nginx should route to them.

Pure functions of (plan, inventory, versions): the strategies call these to
get the next load-balancer state instead of editing pools by hand, so every
traffic decision is testable without a fleet.
"""
from __future__ import annotations

import enum
from dataclasses import replace
from typing import Iterable, Mapping, Sequence

from inventory.model import Colour, Host, Instance, Inventory
from inventory.nginx_config import Backend, LbState

from .plan import Plan

COLOURS = tuple(Colour)


class Pool(enum.StrEnum):
    """The nginx pools rolling and canary route through (blue-green's are
    named by their `Colour`; a --limit's left-out instances by UNTOUCHED)."""

    STABLE = "stable"  # the old version (rolling: every instance not drained)
    CANARY = "canary"  # the release, at the canary's weight
    BASELINE = "baseline"  # the matched baseline: old version, restarted with the canary, at the canary's weight
    UNTOUCHED = "untouched"  # the instances a --limit left out, in their own pool while traffic is split


class TopologyError(ValueError):
    """The plan names groups or slots the inventory cannot provide. `field`
    is the plan's key that names them (dotted), so the error can point at
    its line."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def unit_for(plan: Plan, slot: str) -> str:
    return plan.unit.replace("{slot}", slot)


def _group(inventory: Inventory, name: str, field: str) -> list[Host]:
    try:
        hosts = inventory.group(name)
    except KeyError:
        known = ", ".join(sorted(inventory.groups)) or "none"
        raise TopologyError(field, f"inventory {inventory.source} has no group {name!r} (groups: {known})") from None
    if not hosts:
        raise TopologyError(field, f"group {name!r} in {inventory.source} has no hosts")
    return hosts


def resolve_instances(plan: Plan, inventory: Inventory) -> list[Instance]:
    """Every instance the plan manages, in rollout order."""
    if plan.strategy == "blue_green":
        bg = plan.blue_green
        if bg.mode == "groups":
            return [Instance(host, plan.slot, unit_for(plan, plan.slot), plan.port, colour)
                    for colour in COLOURS
                    for host in _group(inventory, getattr(bg, colour), f"blue_green.{colour}")]
        ports = {Colour.BLUE: bg.ports.blue, Colour.GREEN: bg.ports.green}
        return [Instance(host, getattr(bg, colour), unit_for(plan, getattr(bg, colour)), ports[colour], colour)
                for colour in COLOURS for host in _group(inventory, plan.hosts, "hosts")]
    return [Instance(host, plan.slot, unit_for(plan, plan.slot), plan.port)
            for host in _group(inventory, plan.hosts, "hosts")]


def adoptable(plan: Plan, instances: Sequence[Instance]) -> list[Instance]:
    """Blue-green, units form: the plan's own `slot` on its `port` on every
    host (agent@main on 8080, what a fresh sandbox or a fleet that ran
    rolling updates serves from), as the old side of a first switch. None
    in the groups form, or when `slot` is one of the colours."""
    bg = plan.blue_green
    if plan.strategy != "blue_green" or bg.mode != "units" or plan.slot in (bg.blue, bg.green):
        return []
    hosts = list({i.host.name: i.host for i in instances}.values())
    return [Instance(h, plan.slot, unit_for(plan, plan.slot), plan.port, Colour.BLUE) for h in hosts]


def live_colour(plan: Plan, instances: Sequence[Instance],
                routed: set[str]) -> tuple[Colour, list[Instance]] | None:
    """Which colour nginx serves now, read from its routing (`routed`: the
    backends of every pool). (colour, []) when it routes to exactly one
    colour's instances; ("blue", adopted) when it routes to exactly the
    adoptable instances: they serve as the old side of this run, the new
    release goes to green, and they are retired after the switch, so the
    next run finds green serving. None when it is neither."""
    for colour in COLOURS:
        if routed == {str(backend(i)) for i in instances if i.colour == colour}:
            return colour, []
    adopted = adoptable(plan, instances)
    if adopted and routed == {str(backend(i)) for i in adopted}:
        return Colour.BLUE, adopted
    return None


def load_balancers(plan: Plan, inventory: Inventory) -> list[Host]:
    return _group(inventory, plan.load_balancers, "load_balancers")


def backend(inst: Instance) -> Backend:
    return Backend(inst.host.address, inst.port)


def lb_state(plan: Plan, pools: Mapping[str, Iterable[Instance]], default_pool: str,
             weights: Mapping[str, float] | None = None, generation: str = "0",
             fallback: Mapping[str, str] | None = None) -> LbState:
    """The LbState for these pool memberships under this plan's nginx settings."""
    return LbState(
        upstream=plan.nginx.upstream,
        pools={name: tuple(backend(i) for i in members) for name, members in pools.items()},
        default_pool=default_pool,
        weights=dict(weights or {}),
        generation=generation,
        access_log=plan.nginx.access_log,
        marker_port=plan.nginx.marker_port,
        force_header=plan.nginx.force_header,
        sticky=plan.nginx.sticky,
        fallback=dict(fallback or {}),
    )


def serving(instances: Sequence[Instance], excluded: Iterable[str]) -> list[Instance]:
    out = set(excluded)
    return [i for i in instances if i.key not in out]


def rolling_state(plan: Plan, instances: Sequence[Instance], excluded: Iterable[str],
                  generation: str) -> LbState:
    """Rolling: one pool of every instance not drained."""
    return lb_state(plan, {Pool.STABLE: serving(instances, excluded)}, Pool.STABLE, generation=generation)


def canary_state(plan: Plan, stable: Sequence[Instance], canary: Sequence[Instance],
                 weight: float, generation: str, baseline: Sequence[Instance] = ()) -> LbState:
    """Canary: `weight` percent to the canary pool, the rest to stable. At
    0 % (or no canary instance) the canary pool is not routed at all; at
    100 % stable keeps no weight but stays defined for a fast rollback.
    While stable runs, it backs the canary pool up: a canary pool of one
    host that dies (or restarts) costs its requests a retry on stable, not
    an error; the canary's own health probes still fail its gate.

    A matched `baseline` (old version, restarted with the canary) gets the
    canary's share in a pool of its own, backed up by stable like the
    canary's; it exists only while both shares fit beside stable's, and
    otherwise serves in stable."""
    if baseline and canary and 0 < weight and 2 * weight < 100 and stable:
        return lb_state(plan, {Pool.STABLE: stable, Pool.CANARY: canary, Pool.BASELINE: baseline}, Pool.STABLE,
                        {Pool.CANARY: weight, Pool.BASELINE: weight, Pool.STABLE: 100 - 2 * weight}, generation,
                        {Pool.CANARY: Pool.STABLE, Pool.BASELINE: Pool.STABLE})
    stable = [*stable, *baseline]  # no room for a matched share: the baseline serves as stable
    if not canary or weight <= 0:
        return lb_state(plan, {Pool.STABLE: stable}, Pool.STABLE, generation=generation)
    backup: dict[str, str] = {Pool.CANARY: Pool.STABLE} if stable else {}
    if not stable or weight >= 100:
        pools: dict[str, Sequence[Instance]] = {Pool.CANARY: canary, **({Pool.STABLE: stable} if stable else {})}
        return lb_state(plan, pools, Pool.CANARY, generation=generation, fallback=backup)
    return lb_state(plan, {Pool.STABLE: stable, Pool.CANARY: canary}, Pool.STABLE,
                    {Pool.CANARY: weight, Pool.STABLE: 100 - weight}, generation, backup)


def bluegreen_state(plan: Plan, members: Mapping[Colour, Sequence[Instance]], active: Colour,
                    generation: str) -> LbState:
    """Blue-green: every request to the active colour; the idle colour stays
    defined while it runs, so testers can reach it with the forcing header."""
    pools = {str(c): m for c, m in members.items() if m}  # pools are named by their colour
    return lb_state(plan, pools, active, generation=generation)


def with_untouched(state: LbState, untouched: Sequence[Backend], managed: int) -> LbState:
    """`state` with the instances a --limit left out added, serving as they
    do now: the run changes only the `managed` instances it manages and the
    upstream's other servers stay in it, untouched. While one pool takes
    every request (rolling, a canary at 0 %) they serve in it beside the
    managed ones. While traffic is split, they keep their share, by count,
    in a pool of their own, and the plan's weights split the rest: a canary
    at 10 % of the limited hosts' traffic, and at 100 % exactly their share,
    so the instances that carry it are never more loaded than without the
    limit."""
    present = {str(b) for bs in state.pools.values() for b in bs}
    extra = tuple(b for b in untouched if str(b) not in present)
    if not extra:
        return state
    if not state.weights and state.default_pool == Pool.STABLE:
        return state.with_pools(**{Pool.STABLE: (*state.pools.get(Pool.STABLE, ()), *extra)})
    share = 100.0 * len(untouched) / (len(untouched) + managed)
    rest = dict(state.weights) or {state.default_pool: 100.0}
    weights = {**{p: w * (100.0 - share) / 100.0 for p, w in rest.items()}, Pool.UNTOUCHED: share}
    return replace(state.with_pools(**{Pool.UNTOUCHED: extra}), weights=weights)


def limit_refusal(plan: Plan, untouched: Sequence[Instance]) -> str | None:
    """Why a --limit that leaves instances of the upstream out cannot run
    with this plan, or None. Rolling and canary change only the limited
    instances; blue-green switches the upstream from one colour to the
    other, so part of it cannot switch while the rest stays."""
    if not untouched or plan.strategy != "blue_green":
        return None
    hosts = list(dict.fromkeys(i.host.name for i in untouched))
    return (f"--limit leaves out {len(hosts)} host(s) of the upstream ({', '.join(hosts[:5])}"
            f"{' ...' if len(hosts) > 5 else ''}): a blue-green switch moves the whole upstream to the other "
            f"colour at once, so it cannot run on part of it; drop --limit, or use a rolling or canary plan")
