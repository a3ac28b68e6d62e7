"""Which instances go in which batch: a pure function of the plan.

Follows Ansible's `serial` semantics so operators can reuse their habits: a
count, a percentage of the fleet (rounded down, at least one), or a list of
those that is walked in order with its last entry repeating.
"""
from __future__ import annotations

import math
from typing import Sequence, TypeVar

T = TypeVar("T")

BatchSpec = int | str | Sequence[int | str]


def batch_size(entry: int | str, total: int) -> int:
    """Size of one batch for one spec entry."""
    if isinstance(entry, str) and entry.strip().endswith("%"):
        pct = float(entry.strip()[:-1])
        return max(1, math.floor(total * pct / 100))
    return max(1, int(entry))


def plan_batches(items: Sequence[T], spec: BatchSpec) -> list[list[T]]:
    """Split `items` into consecutive batches according to `spec`."""
    entries: list[int | str] = [spec] if isinstance(spec, (int, str)) else list(spec)
    if not entries:
        entries = [1]
    total = len(items)
    out: list[list[T]] = []
    i = 0
    k = 0
    while i < total:
        size = batch_size(entries[min(k, len(entries) - 1)], total)
        out.append(list(items[i : i + size]))
        i += size
        k += 1
    return out


def failure_budget(total: int, max_fail_percentage: float) -> int:
    """How many instances may fail before the run fails (Ansible's
    max_fail_percentage: the run fails when failures *exceed* it)."""
    return math.floor(total * max_fail_percentage / 100)


def readmit_later(interval: float, last: bool, failed: int) -> bool:
    """May a batch that updated cleanly stay out of nginx until the next
    verified change, which then re-admits it and drains the next batch in
    one reload (or, after the last batch, restores the original file)?
    Each verified nginx change costs about 0.1-0.2 s, most of the console's
    own time on a small fleet, so this halves the changes of a rolling run.
    Only when nothing must watch the batch serve first: with an analysis
    window between batches (`interval`) the gate judges the batch while it
    serves, so it is re-admitted on its own (the last batch has no window
    after it). A batch in which an instance failed is re-admitted at once,
    so failures are acted on with the fleet exactly as before."""
    return failed == 0 and (last or interval <= 0)
