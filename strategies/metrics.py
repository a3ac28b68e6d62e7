"""The one table of metrics: what each is, how plans write it, which way is
worse, and how every view prints it.

Gates and alerts (analysis.py) print findings with it, plan parsing
(plan/values.py) reads thresholds and alert rules with it, and the TUI and
the headless reporter format values with it, so a metric added here is
known everywhere at once and printed the same way everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Metric:
    name: str
    # how a plan writes a limit: "5%" / 0.05 (fraction), "2s" (seconds),
    # 0.95 (score), a count of failures (count)
    plan_unit: Literal["fraction", "seconds", "score", "count"]
    # how a value prints: percent with `digits` decimals, milliseconds, or a score
    shown: Literal["percent", "ms", "score", "count"]
    worse: Literal["higher", "lower"]
    in_plans: bool = True  # plans may name it (the rest are the judge's derived findings)
    digits: int = 2

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.shown == "percent":
            return f"{value * 100:.{self.digits}f}%"
        if self.shown == "ms":
            return f"{value * 1000:.0f}ms"
        if self.shown == "count":
            return f"{value:g}"
        return f"{value:.3f}"


TABLE: tuple[Metric, ...] = (
    Metric("error_rate", "fraction", "percent", "higher"),
    Metric("p95_latency", "seconds", "ms", "higher"),
    Metric("quality_score", "score", "score", "lower"),
    Metric("health_pass_rate", "fraction", "percent", "lower"),
    Metric("cpu", "fraction", "percent", "higher", digits=0),
    # judged instances whose health probe failed in one sample, compared as a count
    Metric("health_check_failed", "count", "count", "higher"),
    Metric("cpu_vs_stable", "fraction", "percent", "higher", in_plans=False, digits=0),
    Metric("median_latency_vs_stable", "seconds", "ms", "higher", in_plans=False),
    # one instance that should serve and does not (strategies/down.py): the
    # share of its tries that failed in the sample (1.0), or 1.0 for a failed probe
    Metric("instance_down", "fraction", "percent", "higher", in_plans=False, digits=0),
    # the release's share of requests slower than its baseline's p95 (5 % when alike)
    Metric("slow_share_vs_stable", "fraction", "percent", "higher", in_plans=False, digits=1),
)
METRICS: dict[str, Metric] = {m.name: m for m in TABLE}
PLAN_METRICS: tuple[str, ...] = tuple(m.name for m in TABLE if m.in_plans)
ALIASES = {"cpu_usage": "cpu", "latency": "p95_latency", "p95": "p95_latency"}


def format_value(metric: str, value: float | None) -> str:
    """`value` of `metric` as every view prints it (a name the table does
    not know prints plainly)."""
    known = METRICS.get(metric)
    if known is not None:
        return known.format(value)
    return "-" if value is None else f"{value:g}"
