"""A run's status as text: the lines `console status`, `--watch` and
`console replay --status` print from a record (console/status_record.py),
so the three say the same thing the same way."""
from __future__ import annotations

from .status_record import ReplayStatus, RunState


def weights_text(s: RunState) -> str:
    return ", ".join(f"{p} {w:g}%" for p, w in sorted(s["weights"].items())) or "-"


def gate_text(s: RunState) -> str:
    gate = s["gate"]
    if gate is None:
        return "-"
    return f"{gate['name']} {gate['verdict']}" + (f" {gate['remaining']:.0f}s left" if gate["remaining"] else "")


def phase_text(s: RunState) -> str:
    """`phase P (why)  step i/n title`."""
    step = s["step"]
    return (f"phase {s['phase']}" + (f" ({s['phase_reason']})" if s["phase_reason"] else "")
            + f"  step {step['index']}/{step['total']} {step['title']}".rstrip())


def instance_lines(s: RunState) -> list[str]:
    """One line per instance: version, nginx, last healthy probe, exclusion."""
    lines = []
    for key, i in sorted(s["instances"].items()):
        healthy = f"healthy at {i['healthy_at']:.1f}s" if i["healthy_at"] is not None else "no healthy probe"
        nginx = "in nginx" if i["in_nginx"] else "out of nginx" + (" (served before)" if i["served_before"] else "")
        lines.append(f"    {key}  {i['version'] or '?'}  {i['phase']}  {nginx}  {healthy}"
                     + (f"  excluded: {i['excluded']}" if i["excluded"] else ""))
    return lines


def describe_replay(s: ReplayStatus) -> str:
    """`console replay JOURNAL --status`: the run as it stood at `at`."""
    label = " SIMULATED" if s["simulated"] else ""
    lines = [f"REPLAY{label} status at {s['at']:.1f}s ({s['events']} events) of {s['journal']}",
             f"  plan {s['plan']} ({s['strategy'] or '?'}) by {s['user'] or '?'} at {s['started'] or '?'}: "
             f"{s['old_version'] or '?'} -> {s['version'] or '?'}",
             f"  {phase_text(s)}",
             f"  gate {gate_text(s)}  window {s['window'] or '-'}  weights {weights_text(s)}",
             f"  out of nginx: {', '.join(s['out_of_nginx']) or '-'}  left out: {', '.join(s['left_out']) or '-'}"]
    if s["outcome"] is not None:
        lines.append(f"  ENDED {s['outcome']} ({s['reason'] or '?'})")
    lines.append(f"  instances ({len(s['instances'])}):")
    return "\n".join(lines + instance_lines(s))
