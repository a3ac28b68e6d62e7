"""Missing data is never a pass (strategies/coverage.py): pure, no I/O.

A window whose release latency was never compared, whose baseline answered
nothing, or whose custom metric had no series extends, and at its maximum
is inconclusive; the event says why in typed reasons."""
from __future__ import annotations

import dataclasses
import math
import random

from strategies import analysis, coverage, custom_metrics
from strategies.analysis import Evidence, Policy, Readings, Verdict
from strategies.coverage import Why
from strategies.plan import Alerts, Thresholds
from strategies.plan.metrics import CustomMetric

SEED = Policy.of(Thresholds(), Alerts(), sample_interval=5.0, warm_up=30.0)
NO_CUSTOM = custom_metrics.CustomWindow()


def side(name: str, requests: int, seed: int) -> Evidence:
    """One instance's clean sample: `requests` requests, latencies about 50 ms."""
    rng = random.Random(seed)
    lat = tuple(rng.uniform(0.04, 0.06) for _ in range(requests))
    return Evidence(requests, 0, lat, ((name, Evidence(requests, 0, lat)),))


def window_of(samples: int, age_at_start: float, *, release: int = 60, baseline: int = 200,
              policy: Policy = SEED) -> analysis.Window:
    """A clean window of 5 s samples: the release's instance `age_at_start`
    seconds past its restart at the first sample."""
    window = analysis.Window()
    for n in range(samples):
        ages = {"new-1": age_at_start + 5.0 * n}
        window, _ = analysis.fold(window, side("new-1", release, n), side("old-1", baseline, 1000 + n),
                                  Readings(), policy, ages)
    return window


def closed(window: analysis.Window, policy: Policy = SEED, *, final: bool = False,
           metrics=(), custom=NO_CUSTOM):
    verdict = custom_metrics.settle(analysis.close(window, policy, final=final), custom, metrics, policy.beta,
                                    final=final)
    return coverage.hold(verdict, window, policy, custom, metrics, final=final)


def test_a_window_whose_release_latency_was_never_compared_extends_then_is_inconclusive():
    """Six clean samples of a canary restarted 5 s before: 360 requests, no
    error, the pass test is satisfied, but the median comparison judges it
    only from 60 s after its restart, so it never ran."""
    window = window_of(6, age_at_start=5.0)
    assert analysis.close(window, SEED, final=False).verdict == Verdict.PASS  # the blind spot
    assert window.settled == ()
    verdict, why = closed(window)
    assert verdict.verdict == Verdict.PENDING and why == (Why.LATENCY_NOT_JUDGED, Why.TAIL_NOT_JUDGED)
    assert any("latency not judged" in r for r in verdict.reasons)
    verdict, why = closed(window, final=True)
    assert verdict.verdict == Verdict.INCONCLUSIVE and why == (Why.LATENCY_NOT_JUDGED, Why.TAIL_NOT_JUDGED)


def test_once_the_release_is_settled_and_compared_the_window_passes():
    window = window_of(16, age_at_start=5.0)  # the last samples are past 60 s: 3 x 60 settled latencies
    assert len(window.settled) >= analysis.MIN_LATENCY_SAMPLES
    verdict, why = closed(window)
    assert verdict.verdict == Verdict.PASS and why == ()


def test_a_baseline_that_answered_nothing_compared_nothing():
    window = analysis.Window()
    for n in range(6):
        window, _ = analysis.fold(window, side("new-1", 60, n), Evidence(), Readings(), SEED, {"new-1": 1e9})
    assert analysis.close(window, SEED, final=False).verdict == Verdict.PASS
    verdict, why = closed(window, final=True)
    assert verdict.verdict == Verdict.INCONCLUSIVE and why == (Why.NO_BASELINE_REQUESTS,)


def test_no_release_request_is_said_apart_from_too_few():
    window = window_of(6, age_at_start=1e9, release=0)
    verdict, why = closed(window)
    assert verdict.verdict == Verdict.PENDING and why == (Why.NO_RELEASE_REQUESTS, Why.EVIDENCE)


def test_without_a_baseline_or_with_min_requests_zero_nothing_is_asked_for():
    """Blue-green after its switch has no baseline: no comparison is missing.
    `min_requests: 0` opts out of the traffic tests."""
    window = analysis.Window()
    for n in range(6):
        window, _ = analysis.fold(window, side("new-1", 60, n), None, Readings(), SEED, {"new-1": 1.0})
    assert closed(window) == (analysis.close(window, SEED, final=False), ())
    opt_out = Policy.of(Thresholds(min_requests=0), Alerts(), warm_up=30.0)
    window = window_of(2, age_at_start=1.0, release=0, policy=opt_out)
    assert closed(window, opt_out)[0].verdict == Verdict.PASS


def test_a_custom_metric_with_no_series_is_a_typed_reason():
    metric = CustomMetric(name="cost", query="cost{instance=\"{instance}\"}", worse="higher", threshold=1.0)
    custom, _ = custom_metrics.fold(custom_metrics.CustomWindow(), [metric],
                                    {"cost": custom_metrics.Reading(baseline=(0.5,))}, 0.01)
    window = window_of(16, age_at_start=5.0)
    verdict, why = closed(window, metrics=[metric], custom=custom, final=True)
    assert verdict.verdict == Verdict.INCONCLUSIVE and why == (Why.CUSTOM_NO_DATA,)


def test_a_failure_is_decided_on_what_was_seen():
    window = window_of(6, age_at_start=5.0)
    failing = analysis.Judgement(Verdict.FAIL)
    assert coverage.hold(failing, window, SEED, custom_metrics.CustomWindow(), [], final=False) == (failing, ())


def tail_window(samples: int, tail_factor: float, seed: int) -> analysis.Window:
    """Clean samples of a settled release and its baseline (40 ms lognormal,
    sigma 0.35, 60 and 200 requests a sample); the release's requests
    beyond the body's p90 are `tail_factor` times slower (p95 x1.5, the
    median unchanged, at 1.5)."""
    rng = random.Random(seed)
    p90 = 0.040 * math.exp(1.2816 * 0.35)
    window = analysis.Window()
    for _ in range(samples):
        new = [0.040 * rng.lognormvariate(0, 0.35) for _ in range(60)]
        new = tuple(x * tail_factor if x > p90 else x for x in new)
        old = tuple(0.040 * rng.lognormvariate(0, 0.35) for _ in range(200))
        window, _ = analysis.fold(window, Evidence(60, 0, new, (("new-1", Evidence(60, 0, new)),)),
                                  Evidence(200, 0, old, (("old-1", Evidence(200, 0, old)),)), Readings(), SEED,
                                  {"new-1": 1e9})
    return window


def test_a_window_passes_only_once_the_tail_test_has_told_the_release_s_tail_from_a_heavier_one():
    """The tail comparison starts once the release has 200 latencies, and a
    window used to close at its planned end on the error evidence alone,
    with the tail test at a few hundred latencies or none: a tail-only
    regression (p95 x1.5, median unchanged) passed 19 % of its releases on
    bench/judge_power.py. Now the window extends until the tail test tells
    the release's share over the baseline's p95 from 1.5 times its null: a
    good release is told in a few hundred latencies, a tail-only regression
    is not (its window extends while the tail test gathers the evidence to
    fail it)."""
    early = tail_window(4, 1.0, 1)  # 240 latencies: the scale is known only from the fifth sample
    verdict, why = closed(early)
    assert verdict.verdict == Verdict.PENDING and Why.TAIL_NOT_JUDGED in why
    good = [closed(tail_window(16, 1.0, seed))[0].verdict for seed in range(10)]
    assert good.count(Verdict.PASS) >= 9
    heavier = [closed(tail_window(16, 1.5, seed)) for seed in range(10)]
    assert sum(why == (Why.TAIL_NOT_JUDGED,) for _, why in heavier) >= 9
    assert all(v.verdict != Verdict.PASS for v, _ in heavier)
    assert any("tail not judged" in r for r in heavier[0][0].reasons)


def test_a_rolling_batch_s_window_is_not_held_for_its_tail():
    """A rolling batch (Policy.hold_for_tail False) is judged again on a larger
    share by the next batch; holding its window for the tail would leave a
    one-host batch of a large fleet waiting out max_window for latencies that
    never come. The median comparison still holds it (test above)."""
    rolling = dataclasses.replace(SEED, hold_for_tail=False)
    held = [seed for seed in range(10) if closed(tail_window(16, 1.5, seed))[1] == (Why.TAIL_NOT_JUDGED,)]
    assert held  # a canary's window is held for its tail (test above)
    for seed in held:
        verdict, why = closed(tail_window(16, 1.5, seed), rolling)
        assert verdict.verdict == Verdict.PASS and why == ()
