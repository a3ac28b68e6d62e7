"""The custom-metric judge (strategies/custom_metrics.py), pure: a bad
release fails on its custom metric alone, a good one passes only on
evidence, a window without data never passes, a critical breach fails at
once, and a looked-at-every-sample good release is stopped at most alpha
of the time."""
from __future__ import annotations

import random

import pytest

from strategies import analysis
from strategies.custom_metrics import CustomWindow, Folded, Reading, fold, merge, settle, unsettled
from strategies.plan.metrics import CustomMetric

ALPHA = BETA = 0.01
COST = CustomMetric(name="cost_per_request", instance={"metric": "c", "per": "r"}, worse="higher", tolerance=0.25)
QUALITY = CustomMetric(name="quality", query='q{instance="{instance}"}', worse="lower", threshold=0.9,
                       tier="critical")


def run(metric, samples):
    """Fold readings until a failure; (samples folded, failing findings, window)."""
    window = CustomWindow()
    for n, reading in enumerate(samples, 1):
        window, found = fold(window, [metric], {metric.name: reading}, ALPHA)
        if found.failing:
            return n, list(found.failing), window
    return len(samples), [], window


def test_a_release_costing_twice_its_baseline_fails_on_that_alone():
    n, failing, _ = run(COST, [Reading((0.004, 0.0041), (0.002, 0.0021, 0.0019))] * 20)
    assert failing and failing[0].metric == "cost_per_request" and failing[0].op == "~"
    assert n == 8  # log(1/alpha) / log(0.9/0.5): eight samples in a row, not one noisy one


def test_a_release_like_its_baseline_passes_after_three_clean_samples_and_not_before():
    window = CustomWindow()
    for n in range(1, 4):
        window, found = fold(window, [COST], {COST.name: Reading((0.0021,), (0.002,))}, ALPHA)
        assert not found.failing
        assert (unsettled(window, [COST], BETA) != ([], [])) == (n < 3)


@pytest.mark.parametrize("reading, why", [
    (Reading(missing="timeout: after 5s"), "timeout"),
    (Reading((), (0.002,)), "no release series"),
    (Reading((0.002,), ()), "no baseline series"),  # a tolerance needs the baseline
])
def test_a_sample_without_data_is_stated_and_never_passes(reading, why):
    window = CustomWindow()
    for _ in range(3):
        window, _ = fold(window, [COST], {COST.name: Reading((0.0021,), (0.002,))}, ALPHA)
    assert unsettled(window, [COST], BETA) == ([], [])
    window, found = fold(window, [COST], {COST.name: reading}, ALPHA)
    assert not found.failing and not found.noted and why in found.missing[0]
    assert found.missing[0].startswith("cost_per_request: no data (")
    held = settle(analysis.Judgement(analysis.Verdict.PASS), window, [COST], BETA, final=True)
    assert held.verdict == analysis.Verdict.INCONCLUSIVE and any("no data" in r for r in held.reasons)
    assert settle(analysis.Judgement(analysis.Verdict.PASS), window, [COST], BETA,
                  final=False).verdict == analysis.Verdict.PENDING


def test_a_window_that_never_had_data_never_passes():
    held = settle(analysis.Judgement(analysis.Verdict.PASS), CustomWindow(), [COST], BETA, final=True)
    assert held.verdict == analysis.Verdict.INCONCLUSIVE and "not read yet" in held.reasons[0]


def test_a_critical_metric_fails_on_one_sample_past_its_threshold():
    n, failing, _ = run(QUALITY, [Reading((0.95,), (0.96,)), Reading((0.5, 0.6), (0.96,))])
    assert n == 2 and failing[0].tier == "critical" and failing[0].value == pytest.approx(0.55)


def test_a_warning_metric_reports_but_never_fails():
    warn = CustomMetric(name="tokens", instance="t", worse="higher", threshold=10, tier="warning")
    n, failing, window = run(warn, [Reading((50.0,), ())] * 30)
    assert not failing and window.tracks["tokens"].worse == 30
    assert unsettled(window, [warn], BETA) == ([], [])


def test_merge_fails_the_sample_on_a_custom_failure_and_keeps_traffic_findings():
    _, failing, window = run(COST, [Reading((0.01,), (0.002,))] * 10)
    merged = merge(analysis.Judgement(analysis.Verdict.PENDING), Folded(tuple(failing)), window)
    assert merged.verdict == analysis.Verdict.FAIL and merged.values["cost_per_request"] == 0.01
    assert merged.values["baseline_cost_per_request"] == 0.002


def test_false_alarms_on_a_release_equal_to_its_baseline_stay_within_alpha():
    """A release drawn from the baseline's own distribution sits on the
    worse side half the time (tolerance 0, the H0 boundary): looked at after
    every one of 60 samples, it is stopped at most alpha of the time."""
    same = CustomMetric(name="m", instance="m", worse="higher", tolerance=0.0)
    rng = random.Random(25)
    runs, stopped = 2000, 0
    for _ in range(runs):
        window = CustomWindow()
        for _ in range(60):
            window, found = fold(window, [same], {"m": Reading((rng.gauss(1, 0.1),), (rng.gauss(1, 0.1),))},
                                 ALPHA)
            if found.failing:
                stopped += 1
                break
    # Ville's bound is alpha; allow the simulation's own noise (3 sd of a
    # binomial count at alpha), not a looser bound
    assert stopped <= ALPHA * runs + 3 * (ALPHA * runs) ** 0.5
