"""Analysis gates: pure verdicts from metric samples.

No I/O here: the engine gathers samples from a driver and asks these
functions what they mean, so every threshold rule, alert tier and the
statistical comparison against the stable pool is unit-tested directly.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # a breach seen, not yet persistent
    INCONCLUSIVE = "inconclusive"  # too little traffic to judge


# Below this many requests in one sample, that sample's error rate and
# latency are noise and neither count for nor against the release.
MIN_SAMPLE_REQUESTS = 10


@dataclass(frozen=True)
class Sample:
    """Everything a gate can judge, for one pool over one sample interval."""

    requests: int = 0
    errors: int = 0
    p95_latency: float | None = None
    quality_score: float | None = None
    health_pass_rate: float | None = None
    cpu: float | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def values(self) -> dict[str, float | None]:
        return {
            "requests": float(self.requests),
            "error_rate": self.error_rate,
            "p95_latency": self.p95_latency,
            "quality_score": self.quality_score,
            "health_pass_rate": self.health_pass_rate,
            "cpu": self.cpu,
        }


@dataclass(frozen=True)
class Breach:
    metric: str
    value: float
    limit: float
    op: str = ">"

    def __str__(self) -> str:
        return f"{self.metric} {format_value(self.metric, self.value)} {self.op} {format_value(self.metric, self.limit)}"


def format_value(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    if metric.startswith(("error_rate", "health_pass_rate", "cpu")):
        return f"{value * 100:.2f}%"
    if metric.startswith("p95_latency"):
        return f"{value * 1000:.0f}ms"
    if metric == "quality_score":
        return f"{value:.3f}"
    return f"{value:g}"


def percentile(values: Sequence[float], pct: float = 95.0) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def breaches(sample: Sample, thresholds: Any) -> list[Breach]:
    """Thresholds this sample crosses. Traffic metrics are judged only when
    the sample carries enough requests to mean something."""
    out: list[Breach] = []
    if sample.requests >= MIN_SAMPLE_REQUESTS:
        if sample.error_rate is not None and sample.error_rate > thresholds.error_rate:
            out.append(Breach("error_rate", sample.error_rate, thresholds.error_rate))
        if sample.p95_latency is not None and sample.p95_latency > thresholds.p95_latency:
            out.append(Breach("p95_latency", sample.p95_latency, thresholds.p95_latency))
    if sample.quality_score is not None and sample.quality_score < thresholds.quality_score:
        out.append(Breach("quality_score", sample.quality_score, thresholds.quality_score, "<"))
    if sample.health_pass_rate is not None and sample.health_pass_rate < thresholds.health_pass_rate:
        out.append(Breach("health_pass_rate", sample.health_pass_rate, thresholds.health_pass_rate, "<"))
    if sample.cpu is not None and sample.cpu > thresholds.cpu:
        out.append(Breach("cpu", sample.cpu, thresholds.cpu))
    return out


@dataclass(frozen=True)
class GateState:
    """Running state of one gate window; advanced only by `judge`."""

    consecutive: int = 0
    samples: int = 0
    requests: int = 0


def judge(state: GateState, sample: Sample, thresholds: Any,
          extra: Iterable[Breach] = ()) -> tuple[GateState, Verdict, list[Breach]]:
    """Fold one sample into the gate. FAIL once a breach has persisted for
    `thresholds.persistence` consecutive samples; PENDING while it has not;
    PASS while nothing is breached. `extra` carries breaches found by the
    comparison against the stable pool."""
    found = breaches(sample, thresholds) + list(extra)
    consecutive = state.consecutive + 1 if found else 0
    new = GateState(consecutive, state.samples + 1, state.requests + sample.requests)
    if not found:
        return new, Verdict.PASS, []
    if consecutive >= max(1, int(thresholds.persistence)):
        return new, Verdict.FAIL, found
    return new, Verdict.PENDING, found


def close_window(state: GateState, thresholds: Any, needs_traffic: bool = True) -> Verdict:
    """The verdict when a window ends without failing: PASS, or INCONCLUSIVE
    when the pool saw fewer than `min_requests` requests in the window (a
    human decides instead of a silent pass)."""
    if state.consecutive >= max(1, int(thresholds.persistence)):
        return Verdict.FAIL
    if needs_traffic and state.requests < thresholds.min_requests:
        return Verdict.INCONCLUSIVE
    return Verdict.PASS


# One-sided z for 99 % confidence: a canary is only called worse than
# stable when chance alone would explain the gap less than 1 % of the time.
Z_CRITICAL = 2.326
MIN_ERROR_GAP = 0.005  # and the gap must matter: half a point of errors
LATENCY_RATIO = 1.5
MIN_LATENCY_GAP = 0.05


def compare_to_stable(canary: Sample, stable: Sample) -> list[Breach]:
    """Is the canary worse than the stable pool over the same window?

    Errors: a two-proportion z-test (pooled), requiring both significance and
    a gap of at least MIN_ERROR_GAP. Latency: canary p95 more than 1.5x the
    stable p95 and at least 50 ms slower. Returns the breaches found."""
    out: list[Breach] = []
    n1, n2 = canary.requests, stable.requests
    if n1 >= MIN_SAMPLE_REQUESTS and n2 >= MIN_SAMPLE_REQUESTS:
        p1, p2 = canary.errors / n1, stable.errors / n2
        pooled = (canary.errors + stable.errors) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) if 0 < pooled < 1 else 0.0
        z = (p1 - p2) / se if se else 0.0
        if z > Z_CRITICAL and p1 - p2 >= MIN_ERROR_GAP:
            out.append(Breach("error_rate_vs_stable", p1 - p2, MIN_ERROR_GAP))
        if canary.p95_latency is not None and stable.p95_latency is not None:
            if (canary.p95_latency > stable.p95_latency * LATENCY_RATIO
                    and canary.p95_latency - stable.p95_latency >= MIN_LATENCY_GAP):
                out.append(Breach("p95_latency_vs_stable", canary.p95_latency, stable.p95_latency * LATENCY_RATIO))
    return out


@dataclass(frozen=True)
class Alert:
    tier: str
    metric: str
    value: float
    threshold: float


TIERS = ("critical", "important", "warning")


def alerts_for(sample: Sample, alert_rules: Any) -> list[Alert]:
    """The most severe alert per metric that this sample raises, using the
    plan's tiered rules (seed: critical / important / warning)."""
    values = sample.values()
    if sample.requests < MIN_SAMPLE_REQUESTS:
        values["error_rate"] = values["p95_latency"] = None
    if sample.health_pass_rate is not None:
        values["health_check_failed"] = 1.0 - sample.health_pass_rate
    out: dict[str, Alert] = {}
    for tier in TIERS:
        for rule in getattr(alert_rules, tier, ()) or ():
            value = values.get(rule.metric)
            if value is None or rule.metric in out:
                continue
            hit = value > rule.value if rule.op == ">" else value < rule.value
            if hit:
                out[rule.metric] = Alert(tier, rule.metric, value, rule.value)
    return list(out.values())


def hosts_for_weight(weight: float, total: int) -> int:
    """How many instances must run the new version to carry `weight` percent
    of traffic without overloading them: proportional, rounded up, at least
    one, all of them at 100 %."""
    if total <= 0:
        return 0
    if weight >= 100:
        return total
    return min(total, max(1, math.ceil(total * weight / 100 - 1e-9)))
