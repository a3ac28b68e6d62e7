"""The judge of a plan's custom metrics (metrics.custom): each sample's
per-instance values of the release and its baseline in, findings out.

Pure (no I/O, no clock), like analysis.py, whose Finding and budget it
shares. Why it is built this way:

- A custom metric arrives as one number per instance per sample (a PromQL
  query's result for that instance, or a sample of its /metrics), not as
  requests, so the traffic judge's binomial tests do not apply. Each sample
  is reduced to one yes/no: is the release's mean worse than the limit (the
  plan's `threshold`, and/or its baseline's mean by more than `tolerance`)?
- Those yes/no answers feed a sequential probability ratio test: H0, the
  release is as likely to land on either side of the limit as a release no
  worse than it (p <= 1/2), against H1, it lands on the bad side nine times
  in ten. Under H0 the likelihood ratio is a supermartingale, so by Ville's
  inequality the chance it *ever* reaches 1/alpha is at most alpha, however
  often the judge looks: looking every sample is safe, as for the traffic
  SPRT (analysis.py). The plan's confidence sets alpha and beta as there;
  the custom metrics share one alpha between them (each fails at
  log(m / alpha), m of them), as the two error-rate SPRTs share theirs.
  Caveat: successive samples of one series are not independent (a gauge
  holds its value); {window} defaults to the sample interval so rates do
  not overlap, and a gauge that holds a bad value is what should fail.
- A pass needs the ratio down to beta (three clean samples in a row at 99 %
  confidence) *and* data in the latest sample: a query that times out, a
  server that answers an error, an empty result or a sample that is not a
  number is "no data", stated as such, and a window whose latest sample has
  no data never passes (it extends, then is inconclusive).
- Tiers: `critical` fails the window on one sample past its threshold (the
  article's critical tier acts at once); `important` fails on the SPRT;
  `warning` is reported and alerted, never fails.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

from .analysis import Alert, Finding, Judgement, Verdict
from .plan.metrics import CustomMetric

GOOD_SHARE = 0.5  # H0: worse than the limit at most half the time
BAD_SHARE = 0.9  # H1: worse nine samples in ten


@dataclass(frozen=True)
class Reading:
    """One sample of one custom metric: a value per instance of each side,
    and why the release side has none (empty when it has)."""

    release: tuple[float, ...] = ()
    baseline: tuple[float, ...] = ()
    missing: str = ""


def no_data(metric: str, why: str) -> str:
    """How a sample without data for a metric is stated (it never passes a
    window); the gate's values hold None for it."""
    return f"{metric}: no data ({why})"


@dataclass(frozen=True)
class Folded:
    """What one sample found: findings that fail the window now, breaches
    that do not (a warning tier, or not yet sure), and metrics without data."""

    failing: tuple[Finding, ...] = ()
    noted: tuple[Finding, ...] = ()
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class Track:
    """One metric's running state in a window."""

    llr: float = 0.0
    judged: int = 0  # samples with data
    worse: int = 0  # of which past the limit
    missing: str = ""  # why the latest sample had no data ("" when it had)
    release: float | None = None  # the latest sample's means
    baseline: float | None = None


@dataclass(frozen=True)
class CustomWindow:
    tracks: Mapping[str, Track] = field(default_factory=dict)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def limit_of(metric: CustomMetric, baseline: float | None) -> float | None:
    """The value past which a sample counts against the release: the
    stricter of the plan's threshold and the baseline's mean moved by the
    tolerance (None: neither is known)."""
    limits = [] if metric.threshold is None else [metric.threshold]
    if metric.tolerance is not None and baseline is not None:
        margin = metric.tolerance * abs(baseline)
        limits.append(baseline + margin if metric.worse == "higher" else baseline - margin)
    if not limits:
        return None
    return min(limits) if metric.worse == "higher" else max(limits)


def is_worse(metric: CustomMetric, value: float, limit: float) -> bool:
    return value > limit if metric.worse == "higher" else value < limit


def sample_llr(worse: bool) -> float:
    return math.log(BAD_SHARE / GOOD_SHARE) if worse else math.log((1 - BAD_SHARE) / (1 - GOOD_SHARE))


def fail_boundary(metrics: Sequence[CustomMetric], alpha: float) -> float:
    judged = sum(1 for m in metrics if m.tier != "warning")
    return math.log(max(1, judged) / alpha)


def fold(window: CustomWindow, metrics: Sequence[CustomMetric], readings: Mapping[str, Reading],
         alpha: float) -> tuple[CustomWindow, Folded]:
    """Add one sample to the window and say what it found."""
    failing: list[Finding] = []
    noted: list[Finding] = []
    missing: list[str] = []
    tracks = dict(window.tracks)
    bound = fail_boundary(metrics, alpha)
    op = {"higher": ">", "lower": "<"}
    for m in metrics:
        t = tracks.get(m.name, Track())
        r = readings.get(m.name, Reading(missing="not read"))
        release, baseline = mean(r.release), mean(r.baseline)
        limit = limit_of(m, baseline)
        if r.missing or release is None or limit is None:
            why = r.missing or ("no release series" if release is None else "no baseline series")
            tracks[m.name] = replace(t, missing=why, release=release, baseline=baseline)
            missing.append(no_data(m.name, why))
            continue
        worse = is_worse(m, release, limit)
        t = Track(t.llr + sample_llr(worse), t.judged + 1, t.worse + worse, "", release, baseline)
        tracks[m.name] = t
        if not worse:
            continue
        if m.tier == "critical" and m.threshold is not None and is_worse(m, release, m.threshold):
            failing.append(Finding(m.name, release, m.threshold, op[m.worse], "critical"))
        elif m.tier != "warning" and t.llr >= bound:
            failing.append(Finding(m.name, release, limit, "~", note=(
                f"{t.worse} of {t.judged} samples {op[m.worse]} {limit:g}; sequential sign test, "
                f"{math.exp(min(t.llr, 700)):.0f}x likelier a bad release")))
        else:  # a critical metric past its tolerance only is an important breach
            noted.append(Finding(m.name, release, limit, op[m.worse], "important" if m.tier == "critical" else m.tier))
    return CustomWindow(tracks), Folded(tuple(failing), tuple(noted), tuple(missing))


def unsettled(window: CustomWindow, metrics: Sequence[CustomMetric], beta: float) -> tuple[list[Finding], list[str]]:
    """What keeps the window from passing: metrics whose latest sample had
    no data (stated), and those (below the warning tier) whose evidence has
    not yet reached the pass boundary. Both empty: the custom metrics let
    the window pass."""
    findings: list[Finding] = []
    missing: list[str] = []
    for m in metrics:
        t = window.tracks.get(m.name, Track(missing="not read yet"))
        if t.missing or t.release is None:
            missing.append(no_data(m.name, t.missing or "not read yet"))
        elif m.tier != "warning" and t.llr > math.log(beta):
            findings.append(Finding(m.name, t.release, limit_of(m, t.baseline) or t.release, "~",
                                    note=f"{t.judged} samples, {t.worse} past the limit: not yet sure it is good"))
    return findings, missing


def values(window: CustomWindow) -> dict[str, float | None]:
    """Typed numbers for the gate's event: each metric's latest means."""
    out: dict[str, float | None] = {}
    for name, t in window.tracks.items():
        out[name] = t.release
        out[f"baseline_{name}"] = t.baseline
    return out


def merge(found: Judgement, sample: Folded, window: CustomWindow) -> Judgement:
    """The traffic judge's sample verdict with the custom metrics' added:
    FAIL when either fails (a failure is about what was seen, so it does
    not list the metrics without data)."""
    fails = found.verdict == Verdict.FAIL or bool(sample.failing)
    return replace(found, verdict=Verdict.FAIL if fails else found.verdict,
                   findings=(*found.findings, *sample.failing, *sample.noted),
                   notes=(*found.notes, *(() if fails else sample.missing)), values={**found.values, **values(window)})


def settle(verdict: Judgement, window: CustomWindow, metrics: Sequence[CustomMetric], beta: float,
           *, final: bool) -> Judgement:
    """The window's closing verdict with the custom metrics' say: a PASS
    stands only when none is unsettled (no data, or not yet sure)."""
    held, missing = unsettled(window, metrics, beta)
    merged = {**verdict.values, **values(window)}
    if not held and not missing:
        return replace(verdict, values=merged)
    state = verdict.verdict
    if state == Verdict.PASS:
        state = Verdict.INCONCLUSIVE if final else Verdict.PENDING
    return replace(verdict, verdict=state, findings=(*verdict.findings, *held),
                   notes=(*verdict.notes, *missing), values=merged)


def alerts(sample: Folded) -> list[Alert]:
    """This sample's alerts: a breach at its metric's tier; a failure is
    critical when its tier is, else important; no data raises none."""
    out = {f.metric: Alert(f.tier if f.tier in ("critical", "important", "warning") else "important",
                           f.metric, f.value, f.limit) for f in sample.noted}
    out.update({f.metric: Alert("critical" if f.tier == "critical" else "important", f.metric, f.value, f.limit)
                for f in sample.failing})
    return list(out.values())
