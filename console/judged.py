"""Which numbers of a gate event show the metric the judge decided on.

A GateEvaluated event carries the pooled window's values (release and
baseline side by side) and its findings, typed. The TUI's judge panel and
the report's plots both draw "release against baseline on the watched
metric, with the plan's threshold": this module says, from those typed
facts alone, which metric that is and which value keys and threshold key
belong to it. Pure: no Textual, no plotting.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class Series:
    """How to draw one metric: the release's value key in a gate event's
    `values`, the baseline's (None: the judge has no baseline for it), and
    the key of its limit in the plan's thresholds (None: judged relative to
    the baseline only)."""

    metric: str
    release: str
    baseline: str | None
    threshold: str | None


SERIES: dict[str, Series] = {s.metric: s for s in (
    Series("error_rate", "error_rate", "baseline_error_rate", "error_rate"),
    Series("p95_latency", "p95_latency", "baseline_p95_latency", "p95_latency"),
    Series("quality_score", "quality_score", None, "quality_score"),
    Series("health_pass_rate", "health_pass_rate", None, "health_pass_rate"),
    Series("cpu", "cpu", "baseline_cpu", None),
)}
# Findings named after a derived rule are drawn on the series they derive from.
DRAWN_AS = {"median_latency_vs_stable": "p95_latency", "cpu_vs_stable": "cpu",
            "health_check_failed": "health_pass_rate"}
DEFAULT = "error_rate"  # what every window is judged on first (the sequential test)


def watched(findings: Iterable[Mapping[str, object]]) -> Series:
    """The series of the first finding the judge reported (the one that
    decided, or is about to), else the error rate."""
    for finding in findings:
        name = DRAWN_AS.get(str(finding.get("metric")), str(finding.get("metric")))
        if name in SERIES:
            return SERIES[name]
    return SERIES[DEFAULT]


def threshold(series: Series, thresholds: Mapping[str, object]) -> float | None:
    """The plan's limit for the series, if it has one."""
    if series.threshold is None:
        return None
    value = thresholds.get(series.threshold)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
