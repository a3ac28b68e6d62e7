"""Replaying a recorded session: the timeline, and what-if re-scoring.

Replay feeds the journal's events back through the same formatting (and,
in the TUI, the same event-to-state reducer) that the live session used.
What-if re-scoring runs the recorded gate samples through the judge
with other thresholds, to show where that rollout would have stopped.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Iterable, Mapping, TextIO

from strategies import analysis
from strategies.events import Event, GateEvaluated
from strategies.plan import Thresholds

from .headless import describe
from .journal import Journal
from .journal_header import Header
from .status_record import ReplayStatus
from .status_text import describe_replay
from .view_state import FleetView

TORN = "warning: the journal's last record is torn (the session did not finish writing it)\n"


@dataclass(frozen=True)
class WhatIf:
    gate: str
    at: float
    reasons: list[str]


def rescore(events: Iterable[Event], thresholds: Thresholds) -> WhatIf | None:
    """The first gate these thresholds would have failed, or None.

    A recorded gate event carries its window's pooled counts, so the
    samples' requests and errors (and the baseline's) are their
    differences; readings (health, quality, CPU) are per sample. Per-request
    latencies are not recorded, so latency rules are not re-run."""
    policy = analysis.Policy.of(thresholds)
    window, current = analysis.Window(), None
    last: dict[str, float | None] = {}
    for event in events:
        if not isinstance(event, GateEvaluated) or event.final:
            continue
        if event.name != current:
            window, current, last = analysis.Window(), event.name, {}
        v = event.values
        judged = _delta(v, last, "requests", "errors")
        base = _delta(v, last, "baseline_requests", None, rate="baseline_error_rate") \
            if v.get("baseline_requests") is not None else None
        last = dict(v)
        readings = analysis.Readings(v.get("health_pass_rate"), v.get("quality_score"), v.get("cpu"),
                                     v.get("baseline_cpu"))
        window, found = analysis.fold(window, judged, base, readings, policy)
        if found.verdict == analysis.Verdict.FAIL:
            return WhatIf(event.name, event.at, found.reasons)
    return None


def _delta(values: Mapping[str, float | None], last: Mapping[str, float | None], requests: str, errors: str | None,
           rate: str | None = None) -> analysis.Evidence:
    """One sample's counts from two cumulative records."""
    def errs(v: Mapping[str, float | None]) -> float:
        if errors is not None:
            return float(v.get(errors) or 0)
        return float(v.get(rate or "") or 0) * float(v.get(requests) or 0)

    n = int(values.get(requests) or 0) - int(last.get(requests) or 0)
    e = round(errs(values) - (errs(last) if last else 0.0))
    return analysis.Evidence(max(0, n), max(0, min(e, n)))


def print_timeline(journal: Journal, fmt: str, out: TextIO = sys.stdout) -> None:
    header = journal.header or Header()
    if fmt == "json":
        for event in journal.events:
            out.write(json.dumps(event.to_dict(), separators=(",", ":")) + "\n")
    else:
        label = " SIMULATED" if header.simulated else ""
        out.write(f"REPLAY{label} of {header.plan.path or '?'} by {header.operator.label()} at "
                  f"{header.started or '?'}\n")
        for event in journal.events:
            text = describe(event)
            if text is not None:
                out.write(f"[{event.at:8.2f}s] {text}\n")
    if journal.torn_tail:
        out.write(TORN)


def replay_status(journal: Journal, path: str, at: float | None = None) -> ReplayStatus:
    """The run's status rebuilt from the journal's events up to `at` run
    seconds (all of them when None): the state `console status` reports of
    a live run, folded by the same FleetView and RunStatus."""
    events = [e for e in journal.events if at is None or e.at <= at]
    view = FleetView().apply_all(events)
    header = journal.header or Header()
    return {**view.state(), "journal": path,
            "simulated": view.simulated or header.simulated,  # a journal's header says it too
            "plan": header.plan.path, "user": header.operator.user, "started": header.started,
            "at": round(at if at is not None else view.elapsed, 1), "events": len(events)}


def print_status(journal: Journal, path: str, at: float | None, fmt: str, out: TextIO = sys.stdout) -> None:
    """`console replay JOURNAL --status [--at SECONDS]`."""
    status = replay_status(journal, path, at)
    if fmt == "json":
        out.write(json.dumps(status, separators=(",", ":")) + "\n")
    else:
        out.write(describe_replay(status) + "\n" + (TORN if journal.torn_tail else ""))
