"""The judge (strategies/analysis.py): pooled windows, enough evidence or no
verdict, sequential statistics, alert tiers, persistence. Pure, no I/O."""
import math
import random

import pytest

from strategies import analysis
from strategies.analysis import Evidence, Policy, Readings, Verdict, Window, alerts_for, close, fold
from strategies.capacity import check_capacity
from strategies.plan import Alerts, Thresholds

SEED = Policy.of(Thresholds(), Alerts())  # the article's thresholds and alert tiers


def run(samples, policy=SEED, baseline=None, readings=None):
    """Fold samples of (requests, errors[, latencies]) into one window; the
    last judgement and the window."""
    window, j = Window(), None
    for n, sample in enumerate(samples):
        requests, errors, *lat = sample
        ev = Evidence(requests, errors, tuple(lat[0]) if lat else ())
        base = baseline[n] if baseline else None
        window, j = fold(window, ev, base, readings or Readings(), policy)
        if j.verdict == Verdict.FAIL:
            break
    return window, j


def test_the_issue_case_twenty_percent_errors_at_a_one_percent_step_fails():
    """One in five requests answered 500, five per 5 s sample, stable
    clean: no single sample is evidence enough (the first version judged
    samples alone and passed this window); pooled, the window fails."""
    per_sample = [(5, 1)] * 6
    stable = [Evidence(480, 0)] * 6
    _, j = run(per_sample, baseline=stable)
    assert j.verdict == Verdict.FAIL
    assert j.findings[0].metric == "error_rate"


def test_a_bad_release_is_stopped_after_a_handful_of_requests():
    """The comparison's null is taken from the baseline's earlier samples
    (the first sample's from ERROR_FLOOR): against a clean baseline, taken
    as failing 0.1 %, the null allows a release six times worse (half a
    threshold more), and four failures of eight requests are far beyond
    that; two of four are not yet enough."""
    _, j = run([(4, 2)] * 3, baseline=[Evidence(400, 0)] * 3)
    assert j.verdict == Verdict.FAIL and j.seen == 8


def test_few_clean_requests_are_not_a_pass():
    window, _ = run([(5, 0)] * 6, baseline=[Evidence(500, 0)] * 6)
    j = close(window, SEED, final=False)
    assert j.verdict == Verdict.PENDING
    assert j.needed > 30 and j.seen == 30
    assert any("needs about" in r and "saw 30" in r for r in j.reasons)
    assert close(window, SEED, final=True).verdict == Verdict.INCONCLUSIVE


def test_enough_clean_requests_pass():
    window, _ = run([(100, 0)] * 6, baseline=[Evidence(5000, 5)] * 6)
    assert close(window, SEED, final=False).verdict == Verdict.PASS


def test_min_requests_zero_is_an_explicit_opt_out_of_traffic_evidence():
    policy = Policy.of(Thresholds(min_requests=0), Alerts())
    window, _ = run([(0, 0)] * 3, policy)
    assert close(window, policy, final=False).verdict == Verdict.PASS
    window, _ = run([(0, 0)] * 3)
    assert close(window, SEED, final=True).verdict == Verdict.INCONCLUSIVE


def test_requests_to_pass_matches_the_sprt():
    h = analysis.Hypotheses(0.005, 0.02)
    n = h.requests_to_pass(0.01)
    # n requests erring at the good rate take the log-likelihood ratio to log(beta)
    assert h.llr(Evidence(n, round(n * 0.005))) == pytest.approx(math.log(0.01), abs=0.5)
    assert h.llr(Evidence(n // 2, round(n * 0.0025))) > math.log(0.01)


def test_the_good_rate_comes_from_the_baseline_upper_bound():
    h = analysis.hypotheses(SEED, Evidence(10_000, 50))
    assert 0.005 < h.good < 0.007 and h.bad == pytest.approx(max(h.good + 0.01, 0.02))
    lone = analysis.hypotheses(SEED, None)
    assert lone.good == pytest.approx(0.005) and lone.bad == pytest.approx(0.02)


def test_looking_after_every_sample_keeps_false_alarms_rare():
    """A good release (same 0.5 % error rate as stable) watched sample by
    sample for 60 samples, 400 trials: the sequential test stays near its
    1 % promise although it looks 60 times."""
    rng = random.Random(11)
    alarms = 0
    for _ in range(400):
        window = Window()
        for _ in range(60):
            c = sum(rng.random() < 0.005 for _ in range(10))
            s = sum(rng.random() < 0.005 for _ in range(400))
            window, j = fold(window, Evidence(10, c), Evidence(400, s), Readings(), SEED)
            if j.verdict == Verdict.FAIL:
                alarms += 1
                break
    assert alarms <= 8  # 2 %: the promise is 1 %, the slack is sampling noise of 400 trials


def test_a_release_clearly_over_the_absolute_threshold_fails_when_stable_is_clean():
    _, j = run([(500, 40)], baseline=[Evidence(5000, 25)])
    assert j.verdict == Verdict.FAIL and j.findings[0].metric == "error_rate"


def test_a_failing_environment_is_not_the_release_s_fault():
    """Stable fails as much as the release (8 %, over the 5 % critical
    rule): the verdict is ENVIRONMENT (a human decides), not FAIL, and it
    says why; the same release next to a clean stable fails."""
    _, j = run([(500, 40)] * 2, baseline=[Evidence(5000, 400)] * 2)
    assert j.verdict == Verdict.ENVIRONMENT
    assert all(f.environment for f in j.findings) and any("environment" in r for r in j.reasons)
    _, j = run([(500, 40)] * 2, baseline=[Evidence(5000, 10)] * 2)
    assert j.verdict == Verdict.FAIL


def test_latency_is_compared_on_distributions():
    rng = random.Random(3)
    stable = [Evidence(300, 0, tuple(rng.lognormvariate(0, 0.3) * 0.040 for _ in range(300)))]
    slow = [(60, 0, [rng.lognormvariate(0, 0.3) * 0.040 + 0.300 for _ in range(60)])]
    _, j = run(slow, baseline=stable)
    assert j.verdict == Verdict.FAIL
    # a shift of the whole distribution is the median test's: the tail test scales the baseline's p95
    # to the release (and needs earlier samples to know the scale)
    assert {f.metric for f in j.findings} == {"median_latency_vs_stable"}
    same = [(60, 0, [rng.lognormvariate(0, 0.3) * 0.040 for _ in range(60)])]
    _, j = run(same, baseline=stable)
    assert j.verdict == Verdict.PENDING and not j.findings


def test_p95_ceiling_is_a_proportion_test():
    """20 % of requests above 2 s, sample after sample: the p95 is clearly
    above it, from the second sample (the plan's ceiling never rests on one
    sample alone: judge_stats.LeaveOneOut)."""
    slow = [2.5] * 20 + [0.1] * 80
    _, j = run([(100, 0, slow)])
    assert j.verdict == Verdict.PENDING
    _, j = run([(100, 0, slow)] * 2)
    assert any(f.metric == "p95_latency" for f in j.findings)
    one_slow = [2.5] + [0.1] * 9  # p95 of 10 looks like 2.5 s, but 1 in 10 proves nothing
    _, j = run([(10, 0, one_slow)])
    assert not any(f.metric == "p95_latency" for f in j.findings)


def test_a_failed_health_check_is_critical_and_acts_at_once():
    _, j = run([(0, 0)], readings=Readings(health_pass_rate=0.5, health_failed=1))
    assert j.verdict == Verdict.FAIL and j.findings[0].tier == "critical"
    assert SEED.persistence == 2  # did not wait for persistence


def test_critical_honours_the_rule_s_value():
    """`health_check_failed > 3`: one failed probe in 50 is not critical
    (the old judge failed on it), four are."""
    policy = Policy.of(Thresholds(min_requests=0), Alerts(critical=["health_check_failed > 3"]))
    _, j = run([(0, 0)], policy, readings=Readings(health_pass_rate=49 / 50, health_failed=1))
    assert j.verdict == Verdict.PENDING and not analysis.critical(Window(readings=Readings(health_failed=3)), policy)
    _, j = run([(0, 0)], policy, readings=Readings(health_pass_rate=46 / 50, health_failed=4))
    assert j.verdict == Verdict.FAIL and j.findings[0].metric == "health_check_failed"
    assert j.findings[0].value == 4 and j.findings[0].limit == 3


def test_alerts_compare_a_count_of_failed_probes_with_a_count():
    rules = Alerts(critical=[], important=["health_check_failed > 2"], warning=["health_check_failed"])
    one = Window(readings=Readings(health_pass_rate=0.9, health_failed=1))
    assert [(a.tier, a.value) for a in alerts_for(one, rules)] == [("warning", 1.0)]
    three = Window(readings=Readings(health_pass_rate=0.7, health_failed=3))
    assert [(a.tier, a.value, a.threshold) for a in alerts_for(three, rules)] == [("important", 3.0, 2.0)]


def test_a_clear_critical_error_rate_acts_at_once():
    _, j = run([(40, 20)])
    assert j.verdict == Verdict.FAIL and j.findings[0].tier == "critical"


def test_per_sample_breaches_need_persistence_and_an_outstanding_one_does_not_pass():
    policy = Policy.of(Thresholds(min_requests=0), Alerts())
    low = Readings(quality_score=0.80)
    window, j = fold(Window(), Evidence(), None, low, policy)
    assert j.verdict == Verdict.PENDING and j.findings[0].metric == "quality_score"
    assert close(window, policy, final=False).verdict == Verdict.PENDING  # the window is extended
    window, j = fold(window, Evidence(), None, low, policy)
    assert j.verdict == Verdict.FAIL
    window, _ = fold(Window(), Evidence(), None, low, policy)
    window, j = fold(window, Evidence(), None, Readings(quality_score=0.99), policy)
    assert j.verdict == Verdict.PENDING and close(window, policy, final=False).verdict == Verdict.PASS


def test_cpu_is_judged_against_the_baseline_not_the_machine():
    policy = Policy.of(Thresholds(min_requests=0), Alerts())
    busy_both = Readings(cpu=0.95, baseline_cpu=0.90)  # a busy machine: both pools pay
    window, _ = fold(Window(), Evidence(), None, busy_both, policy)
    window, j = fold(window, Evidence(), None, busy_both, policy)
    assert j.verdict == Verdict.PENDING and close(window, policy, final=False).verdict == Verdict.PASS
    hungry = Readings(cpu=0.90, baseline_cpu=0.30)
    window, _ = fold(Window(), Evidence(), None, hungry, policy)
    window, j = fold(window, Evidence(), None, hungry, policy)
    assert j.verdict == Verdict.FAIL and j.findings[0].metric == "cpu_vs_stable"


def test_absolute_cpu_is_an_alert_not_a_gate():
    window, _ = fold(Window(), Evidence(), None, Readings(cpu=0.75), SEED)
    assert [(a.tier, a.metric) for a in alerts_for(window, Alerts())] == [("warning", "cpu")]


@pytest.mark.parametrize("errors,tier", [(20, "critical"), (8, "important"), (0, None)])
def test_alert_tiers_pick_the_most_severe_clear_one(errors, tier):
    window, _ = fold(Window(), Evidence(150, errors), None, Readings(), SEED)
    got = [a.tier for a in alerts_for(window, Alerts()) if a.metric == "error_rate"]
    assert got == ([tier] if tier else [])


def test_a_handful_of_requests_raises_no_error_alert():
    window, _ = fold(Window(), Evidence(3, 1), None, Readings(), SEED)
    assert alerts_for(window, Alerts()) == []


def test_capacity_guard_counts_every_serving_instance():
    serving = ["a", "b", "c", "d", "e", "f"]
    ok = check_capacity(serving, set(serving), ["a", "b"], floor=4)
    assert ok.ok and ok.after == 4
    dead_old = check_capacity(serving, {"a", "b", "c", "e", "f"}, ["e", "f"], floor=4)
    assert not dead_old.ok and dead_old.unhealthy == ("d",) and dead_old.after == 3
    dead_in_batch = check_capacity(serving, {"a", "b", "c", "e", "f"}, ["c", "d"], floor=3)
    assert not dead_in_batch.ok and dead_in_batch.in_batch == ("d",)
    spare = check_capacity(serving, {"a", "b", "c", "e", "f"}, ["e"], floor=4)
    assert spare.ok  # one down, one drained: four still serve


def test_mann_whitney_matches_scipy_stats_with_and_without_ties():
    """The judge's own Mann-Whitney (scipy.stats stays unimported at run
    time) gives scipy.stats.mannwhitneyu's one-sided p-value: rounded
    latencies (many ties), continuous ones, equal and shifted samples."""
    from scipy.stats import mannwhitneyu

    rng = random.Random(5)
    cases = [([1.0] * 12, [1.0] * 30)]
    for _ in range(300):
        n1, n2 = rng.randint(9, 120), rng.randint(9, 400)
        shift = rng.choice([0.0, 0.002, 0.01, 0.05])
        digits = rng.choice([2, 3, 6])
        judged = [round(rng.expovariate(40) + shift, digits) for _ in range(n1)]
        baseline = [round(rng.expovariate(40), digits) for _ in range(n2)]
        cases.append((judged, baseline))
    for judged, baseline in cases:
        ours = analysis.mann_whitney_greater(judged, baseline)
        theirs = float(mannwhitneyu(judged, baseline, alternative="greater").pvalue)
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-15), (judged, baseline, ours, theirs)


def test_exact_binomial_tail_matches_scipy_stats_binomtest():
    from scipy.stats import binomtest

    rng = random.Random(6)
    for _ in range(300):
        n = rng.randint(1, 3000)
        rate = rng.choice([0.001, 0.01, 0.05, 0.2])
        k = rng.randint(0, min(n, int(rate * n * 3) + 5))
        expected = k > rate * n and binomtest(k, n, rate, alternative="greater").pvalue < analysis.LOOK_ALPHA
        assert analysis.clearly_above(k, n, rate) == expected, (k, n, rate)


def test_a_run_never_imports_scipy_stats():
    """Importing scipy.stats costs every run about 0.65 s of start-up: the
    engine, the judge and its warm-up use scipy.special alone."""
    import subprocess
    import sys

    code = ("import sys, console.cli, console.session, strategies.engine, strategies.analysis as a\n"
            "a.warm_up(); a.clearly_above(30, 100, 0.1); a.upper_bound(1, 100, 0.99)\n"
            "assert a.slower([0.5] * 60, a.Evidence(60, 0, (0.1,) * 60), 0.001)\n"
            "assert 'scipy.special' in sys.modules and 'scipy.stats' not in sys.modules, 'scipy.stats imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_window_whose_own_failures_keep_it_from_passing_says_so():
    """A real canary (24762cc's successor, run 3 on a matched baseline)
    ended inconclusive with no reason at all: it had seen more requests
    than the pass test expects, but a burst of its own failures kept the
    test from saying "good". It says what it needs now."""
    window, _ = run([(100, 1)] * 12, baseline=[Evidence(100, 0)] * 12)
    j = close(window, SEED, final=True)
    assert j.verdict == Verdict.INCONCLUSIVE and j.needed > j.seen
    assert any("needs more than 1200 requests" in r for r in j.reasons)
