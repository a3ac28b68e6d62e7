"""Replaying a recorded session: the timeline, and what-if re-scoring.

Replay feeds the journal's events back through the same formatting (and,
in the TUI, the same event-to-state reducer) that the live session used.
What-if re-scoring runs the recorded gate samples through `gates.judge`
with other thresholds, to show where that rollout would have stopped.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from strategies import gates
from strategies.events import Event, GateEvaluated

from .headless import describe
from .journal import Journal


@dataclass(frozen=True)
class WhatIf:
    gate: str
    at: float
    reasons: list[str]


def sample_from(values: dict[str, Any]) -> gates.Sample:
    """Rebuild a gate sample from a recorded GateEvaluated's values."""
    requests = int(values.get("requests") or 0)
    rate = values.get("error_rate")
    return gates.Sample(requests=requests, errors=round((rate or 0.0) * requests),
                        p95_latency=values.get("p95_latency"), quality_score=values.get("quality_score"),
                        health_pass_rate=values.get("health_pass_rate"), cpu=values.get("cpu"))


def rescore(events: Iterable[Event], thresholds: Any) -> WhatIf | None:
    """The first gate these thresholds would have failed, or None. (The
    comparison against stable is not re-run: it needs both pools' raw
    samples; fixed thresholds are.)"""
    state, current = gates.GateState(), None
    for event in events:
        if not isinstance(event, GateEvaluated) or event.final:
            continue
        if event.name != current:
            state, current = gates.GateState(), event.name
        state, verdict, found = gates.judge(state, sample_from(event.values), thresholds)
        if verdict == gates.Verdict.FAIL:
            return WhatIf(event.name, event.at, [str(b) for b in found])
    return None


def print_timeline(journal: Journal, fmt: str, out=sys.stdout) -> None:
    header = journal.header or {}
    if fmt == "json":
        for event in journal.events:
            out.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
    else:
        label = " SIMULATED" if header.get("simulated") else ""
        operator = header.get("operator", {})
        out.write(f"REPLAY{label} of {header.get('plan', {}).get('path')} by {operator.get('user')}@"
                  f"{operator.get('host')} at {header.get('started')}\n")
        for event in journal.events:
            text = describe(event)
            if text is not None:
                out.write(f"[{event.at:8.2f}s] {text}\n")
    if journal.torn_tail:
        out.write("warning: the journal's last record is torn (the session did not finish writing it)\n")


