"""A unit's own CPU use, from systemd's per-unit accounting (pure, no I/O).

Why not /proc/stat: inside a container (nspawn, LXC, Docker without lxcfs)
/proc/stat is the whole machine, and on a VM it includes the neighbours, so
a busy CI machine made a *good* canary look overloaded. `CPUUsageNSec` is
the unit's cgroup counter (cpu.stat usage_usec), the service's own time.
"""
from __future__ import annotations

from dataclasses import dataclass

from .systemd import unit_arg


def usage_cmd(unit: str) -> str:
    """Prints "nsec N" (systemd's CPUUsageNSec) or, where CPU accounting is
    off (systemd's default in many containers), "usec N" from the unit's
    cgroup v2 cpu.stat, which the kernel keeps for every cgroup (also under
    /sys/fs/cgroup/unified on a hybrid v1 host)."""
    u = unit_arg(unit)
    return (f"n=$(systemctl show -p CPUUsageNSec --value --no-pager {u}); case \"$n\" in [0-9]*) echo \"nsec $n\";; "
            f"*) cg=$(systemctl show -p ControlGroup --value --no-pager {u}); "
            f"for f in \"/sys/fs/cgroup$cg/cpu.stat\" \"/sys/fs/cgroup/unified$cg/cpu.stat\"; do "
            f"[ -n \"$cg\" ] && [ -r \"$f\" ] && {{ sed -n 's/^usage_usec /usec /p' \"$f\"; break; }}; done;; esac")


@dataclass(frozen=True)
class CpuReading:
    nanoseconds: int  # CPU time the unit used since it started
    at: float  # controller's monotonic clock when read


def parse_usage(text: str) -> int | None:
    """Nanoseconds from `usage_cmd`'s output; None when neither source is
    there (the unit is not running, or no cgroup v2 accounting at all)."""
    fields = text.split()
    if len(fields) != 2 or fields[0] not in ("nsec", "usec"):
        if not fields:
            return None
        raise ValueError(f"bad CPU usage output {text.strip()[:40]!r}")
    try:
        number = int(fields[1])
    except ValueError as exc:
        raise ValueError(f"bad CPU usage value {fields[1][:40]!r}") from exc
    if fields[0] == "nsec":
        return None if number == 2**64 - 1 else number  # UINT64_MAX: "unset"
    return number * 1000


def cores_used(prev: CpuReading, cur: CpuReading) -> float:
    """Average cores busy between two readings (1.0 = one core). A counter
    that went backwards (the unit restarted) reads as unknown: 0.0."""
    elapsed = cur.at - prev.at
    used = cur.nanoseconds - prev.nanoseconds
    if elapsed <= 0 or used < 0:
        return 0.0
    return used / 1e9 / elapsed
