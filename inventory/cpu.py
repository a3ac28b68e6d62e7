"""Host CPU busy fraction from /proc/stat deltas (pure, no I/O).

busy = total - idle - iowait, the same as psutil.cpu_percent. The first
sample has no previous one to compare to: callers report 0.0 for it.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuTimes:
    total: int
    idle: int  # idle + iowait

    @property
    def busy(self) -> int:
        return self.total - self.idle


READ_CMD = "head -n 1 /proc/stat"


def parse_proc_stat(text: str) -> CpuTimes:
    """Parse the aggregate `cpu` line (the first line) of /proc/stat.

    Fields: user nice system idle iowait irq softirq steal guest guest_nice.
    guest/guest_nice are already counted in user/nice, so they are left out
    of the total (as the kernel and psutil do)."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            break
    else:
        raise ValueError("no aggregate 'cpu' line in /proc/stat output")
    try:
        values = [int(v) for v in parts[1:]]
    except ValueError as exc:
        raise ValueError(f"bad /proc/stat cpu line: {line!r}") from exc
    if len(values) < 4:
        raise ValueError(f"short /proc/stat cpu line: {line!r}")
    values += [0] * (10 - len(values))
    total = sum(values[:8])
    idle = values[3] + values[4]
    return CpuTimes(total=total, idle=idle)


def busy_fraction(prev: CpuTimes, cur: CpuTimes) -> float:
    """Busy share of CPU time between two samples, clamped to 0..1."""
    dt = cur.total - prev.total
    if dt <= 0:
        return 0.0
    frac = (cur.busy - prev.busy) / dt
    return min(1.0, max(0.0, frac))
