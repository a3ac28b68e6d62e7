"""Capacity decisions (pure): how many instances a canary weight needs, and
whether a rolling batch may be drained without leaving too few serving."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Sequence


def hosts_for_weight(weight: float, total: int) -> int:
    """How many instances must run the new version to carry `weight` percent
    of traffic without overloading them: proportional, rounded up, at least
    one, all of them at 100 %."""
    if total <= 0:
        return 0
    if weight >= 100:
        return total
    return min(total, max(1, math.ceil(total * weight / 100 - 1e-9)))


@dataclass(frozen=True)
class CapacityCheck:
    serving: int  # healthy instances that serve now
    after: int  # healthy instances left serving once the batch is drained
    floor: int  # the fewest the plan allows
    unhealthy: tuple[str, ...]  # instances that should serve and do not answer healthy
    in_batch: tuple[str, ...]  # of those, the ones in the batch about to be drained

    @property
    def ok(self) -> bool:
        return not self.unhealthy or (not self.in_batch and self.after >= self.floor)


def check_capacity(should_serve: Sequence[str], healthy: Collection[str], batch: Sequence[str],
                   floor: int) -> CapacityCheck:
    """May `batch` be drained? Every instance that should serve counts,
    touched by this run or not. With all of them healthy the plan's own
    batch size is the limit; with one down, draining must still leave
    `floor` healthy instances serving, and a down instance is never drained
    for a deploy (it could only fail it, slowly)."""
    unhealthy = tuple(k for k in should_serve if k not in healthy)
    in_batch = tuple(k for k in unhealthy if k in set(batch))
    serving = len(should_serve) - len(unhealthy)
    after = serving - sum(1 for k in batch if k in healthy)
    return CapacityCheck(serving, after, floor, unhealthy, in_batch)


def canary_moves(weights: Sequence[float], total: int) -> list[int]:
    """How many instances each of a canary's `set_weight` steps moves to the
    new version (in order), the final promotion to 100 % included: each
    step moves what its weight needs beyond what earlier steps moved."""
    out, moved = [], 0
    for weight in [*weights, 100.0]:
        need = hosts_for_weight(weight, total)
        out.append(max(0, need - moved))
        moved = max(moved, need)
    return out


def canary_floor(weights: Sequence[float], total: int) -> int:
    """The fewest instances a canary plan leaves serving on its own: all of
    them but its largest move (an instance moving is drained, then restarts
    on the new version). As for a rolling plan's largest batch, a dead host
    must not take the fleet below it."""
    return total - max(canary_moves(weights, total), default=0)


def canary_next_move(weights: Sequence[float], weight: float, canary: int, stable: Sequence[str],
                     total: int) -> tuple[float, tuple[str, ...]]:
    """The canary's next drain at `weight` (percent, with `canary` instances
    on the new version): the first later weight of `weights` above it, else
    the promotion to 100 %, and the stable instances (in `stable`'s order,
    the order the strategy moves them) that step drains."""
    following = next((w for w in weights if w > weight), 100.0)
    need = hosts_for_weight(following, total)
    return following, tuple(stable[: max(0, need - canary)])
