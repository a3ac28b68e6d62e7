"""Replaying recorded samples through the judge (pure, no I/O).

`console judge backtest` (console/judge_cli.py) reads the samples; this
turns each into evidence, runs one window per trial the way the engine's
gate does (strategies/gating.py: fold after every sample, close at the
planned end, extend up to `max_window`), and says what the judge would have
decided and when. Google's "Canarying Well" advice: run a new analysis
against past data before it may gate a release.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypedDict

from . import analysis
from .gating import judged_windows
from .plan import Plan


class SampleError(ValueError):
    """A sample that is not in the backtest form; the message names the field."""


@dataclass(frozen=True)
class Sample:
    trial: str | int
    t: float
    canary: analysis.Evidence
    baseline: analysis.Evidence | None


def _count(side: dict[str, object], key: str, where: str) -> int:
    value = side.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SampleError(f"{where}.{key}: expected a count (an integer >= 0), got {value!r}")
    return value


def evidence(side: object, where: str) -> analysis.Evidence:
    """{"requests": N, "failed": K, "latencies": [seconds, ...]} as evidence."""
    if not isinstance(side, dict):
        raise SampleError(f"{where}: expected an object with requests, failed and latencies, got {side!r}")
    unknown = sorted(set(side) - {"requests", "failed", "latencies"})
    if unknown:
        raise SampleError(f"{where}.{unknown[0]}: unknown field (expected requests, failed, latencies)")
    requests, failed = _count(side, "requests", where), _count(side, "failed", where)
    if failed > requests:
        raise SampleError(f"{where}.failed: {failed} failed of {requests} requests")
    latencies = side.get("latencies", [])
    if not isinstance(latencies, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x >= 0 for x in latencies):
        raise SampleError(f"{where}.latencies: expected a list of seconds (numbers >= 0)")
    return analysis.Evidence(requests, failed, tuple(float(x) for x in latencies))


def sample(record: object) -> Sample:
    """One input line's object as a sample."""
    if not isinstance(record, dict):
        raise SampleError(f"expected an object with trial, t, canary and baseline, got {record!r}")
    unknown = sorted(set(record) - {"trial", "t", "canary", "baseline"})
    if unknown:
        raise SampleError(f"{unknown[0]}: unknown field (expected trial, t, canary, baseline)")
    trial = record.get("trial")
    if isinstance(trial, bool) or not isinstance(trial, (str, int)):
        raise SampleError(f"trial: expected a string or an integer, got {trial!r}")
    t = record.get("t")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise SampleError(f"t: expected seconds since the window opened (a number >= 0), got {t!r}")
    base = record.get("baseline")
    return Sample(trial, float(t), evidence(record.get("canary"), "canary"),
                  None if base is None else evidence(base, "baseline"))


@dataclass(frozen=True)
class Setup:
    """What a backtest takes from the plan: the judge's policy, the planned
    window, its maximum."""

    policy: analysis.Policy
    planned: float
    most: float

    @classmethod
    def of(cls, plan: Plan) -> Setup:
        """The plan's policy and first judged window (a rolling plan's
        windows depend on the inventory: one is assumed)."""
        windows = judged_windows(plan, []) if plan.strategy != "rolling" else 1
        a = plan.analysis
        policy = analysis.Policy.of(plan.thresholds, plan.alerts, budget=a.false_alarm_budget, windows=max(1, windows),
                                    sample_interval=float(plan.canary.sample_interval), warm_up=a.latency_warm_up)
        if plan.strategy == "canary":
            planned = next((s.analysis for s in plan.canary.steps if s.kind == "analysis" and s.analysis), 0.0)
        elif plan.strategy == "rolling":
            planned = plan.rolling.interval
        else:
            planned = plan.blue_green.rollback_window
        return cls(policy, float(planned or 0.0), max(float(planned or 0.0), plan.thresholds.max_window))


VERDICTS = {analysis.Verdict.PASS: "pass", analysis.Verdict.FAIL: "fail",
            analysis.Verdict.INCONCLUSIVE: "inconclusive",
            analysis.Verdict.ENVIRONMENT: "inconclusive"}  # a human decides either way


class TrialResult(TypedDict):
    """One trial's line of `console judge backtest`'s output."""

    trial: str | int
    verdict: str  # a VERDICTS value
    at: float  # seconds since the window opened, of the sample that decided
    findings: list[str]  # the judge's reasons


def run_trial(trial: str | int, samples: list[Sample], setup: Setup) -> TrialResult:
    """One window over the trial's samples: {"trial", "verdict", "at", "findings"}.
    Samples past the verdict are not looked at; a trial whose samples end
    before a verdict is closed as at the window's maximum (pass on enough
    evidence, else inconclusive)."""
    window, j, at = analysis.Window(), None, 0.0
    for s in samples:
        at = s.t
        window, j = analysis.fold(window, s.canary, s.baseline, analysis.Readings(), setup.policy)
        if j.verdict in (analysis.Verdict.FAIL, analysis.Verdict.ENVIRONMENT):
            break
        if s.t + 1e-9 >= setup.planned:
            j = analysis.close(window, setup.policy, final=s.t + 1e-9 >= setup.most)
            if j.verdict != analysis.Verdict.PENDING:
                break
    if j is None or j.verdict == analysis.Verdict.PENDING:
        j = analysis.close(window, setup.policy, final=True)
    return {"trial": trial, "verdict": VERDICTS[j.verdict], "at": at, "findings": j.reasons}
