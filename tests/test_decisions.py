"""Pure decisions: batches, gates, alert tiers, capacity. No I/O."""
from types import SimpleNamespace

import pytest

from inventory.driver import PoolStats
from inventory.model import Host, Instance
from strategies import gates
from strategies.batches import failure_budget, plan_batches
from strategies.engine import pool_sample
from strategies.gates import Breach, GateState, Sample, Verdict
from strategies.topology import canary_state

TH = SimpleNamespace(error_rate=0.01, p95_latency=2.0, quality_score=0.90, health_pass_rate=0.95,
                     cpu=0.80, persistence=2, min_requests=50, compare_to_stable=True)


@pytest.mark.parametrize("spec,sizes", [
    (1, [1] * 10), (3, [3, 3, 3, 1]), ("20%", [2] * 5), ("25%", [2] * 5),
    ([1, 5, "20%"], [1, 5, 2, 2]), (["50%"], [5, 5]), ("1%", [1] * 10), (100, [10]),
])
def test_batches_follow_ansible_serial(spec, sizes):
    batches = plan_batches(list(range(10)), spec)
    assert [len(b) for b in batches] == sizes
    assert [x for b in batches for x in b] == list(range(10))


def test_failure_budget_is_floor_of_percentage():
    assert failure_budget(10, 0) == 0
    assert failure_budget(10, 25) == 2
    assert failure_budget(3, 50) == 1


def test_breach_must_persist_before_failing():
    bad = Sample(requests=100, errors=5)
    state, verdict, found = gates.judge(GateState(), bad, TH)
    assert verdict == Verdict.PENDING and str(found[0]) == "error_rate 5.00% > 1.00%"
    state, verdict, _ = gates.judge(state, bad, TH)
    assert verdict == Verdict.FAIL


def test_a_good_sample_resets_persistence():
    bad, good = Sample(requests=100, errors=5), Sample(requests=100, errors=0)
    state, _, _ = gates.judge(GateState(), bad, TH)
    state, verdict, _ = gates.judge(state, good, TH)
    assert verdict == Verdict.PASS and state.consecutive == 0
    state, verdict, _ = gates.judge(state, bad, TH)
    assert verdict == Verdict.PENDING


def test_small_samples_do_not_judge_traffic_metrics():
    state, verdict, found = gates.judge(GateState(), Sample(requests=5, errors=5), TH)
    assert verdict == Verdict.PASS and found == []


def test_window_with_too_little_traffic_is_inconclusive():
    state = GateState(consecutive=0, samples=3, requests=20)
    assert gates.close_window(state, TH) == Verdict.INCONCLUSIVE
    assert gates.close_window(state, TH, needs_traffic=False) == Verdict.PASS
    assert gates.close_window(GateState(0, 3, 500), TH) == Verdict.PASS


@pytest.mark.parametrize("sample,metric", [
    (Sample(requests=100, p95_latency=2.5), "p95_latency"),
    (Sample(quality_score=0.85), "quality_score"),
    (Sample(health_pass_rate=0.9), "health_pass_rate"),
    (Sample(cpu=0.95), "cpu"),
])
def test_each_threshold_is_checked(sample, metric):
    assert [b.metric for b in gates.breaches(sample, TH)] == [metric]


def test_comparison_flags_canary_significantly_worse_than_stable():
    canary, stable = Sample(requests=400, errors=24), Sample(requests=4000, errors=40)
    found = gates.compare_to_stable(canary, stable)
    assert [b.metric for b in found] == ["error_rate_vs_stable"]


def test_comparison_ignores_differences_chance_explains():
    canary, stable = Sample(requests=40, errors=1), Sample(requests=400, errors=4)
    assert gates.compare_to_stable(canary, stable) == []


def test_comparison_flags_slower_canary():
    canary = Sample(requests=100, p95_latency=0.9)
    stable = Sample(requests=100, p95_latency=0.3)
    assert [b.metric for b in gates.compare_to_stable(canary, stable)] == ["p95_latency_vs_stable"]


def rules(**tiers):
    return SimpleNamespace(**{t: [SimpleNamespace(metric=m, op=o, value=v) for m, o, v in r]
                              for t, r in tiers.items()})


SEED_ALERTS = rules(
    critical=[("health_check_failed", ">", 0), ("error_rate", ">", 0.05), ("p95_latency", ">", 5.0)],
    important=[("error_rate", ">", 0.01), ("p95_latency", ">", 2.0), ("quality_score", "<", 0.90)],
    warning=[("error_rate", ">", 0.005), ("cpu", ">", 0.70)])


@pytest.mark.parametrize("errors,tier", [(9, "critical"), (2, "important"), (1, None)])
def test_alert_tiers_pick_the_most_severe(errors, tier):
    alerts = gates.alerts_for(Sample(requests=150, errors=errors), SEED_ALERTS)
    got = [a.tier for a in alerts if a.metric == "error_rate"]
    assert got == ([tier] if tier else ["warning"])


def test_failed_health_check_is_critical():
    alerts = gates.alerts_for(Sample(health_pass_rate=0.9, cpu=0.75), SEED_ALERTS)
    assert {(a.tier, a.metric) for a in alerts} == {("critical", "health_check_failed"), ("warning", "cpu")}


@pytest.mark.parametrize("weight,total,hosts", [(1, 10, 1), (5, 10, 1), (10, 10, 1), (50, 10, 5),
                                               (51, 10, 6), (100, 10, 10), (1, 1000, 10), (0.5, 3, 1)])
def test_capacity_follows_traffic(weight, total, hosts):
    assert gates.hosts_for_weight(weight, total) == hosts


def test_percentile_nearest_rank():
    assert gates.percentile(list(range(1, 101))) == 95
    assert gates.percentile([]) is None
    assert str(Breach("p95_latency", 2.5, 2.0)) == "p95_latency 2500ms > 2000ms"


@pytest.mark.parametrize("answers,strategy", [
    (dict(criticality="critical"), "blue_green"),
    (dict(criticality="non-critical", scale="large"), "rolling"),
    (dict(criticality="non-critical", scale="medium", budget="sufficient"), "canary"),
    (dict(criticality="non-critical", scale="medium", budget="limited", test_env="sufficient"), "canary"),
    (dict(criticality="non-critical", scale="small", budget="limited", test_env="limited"), "rolling"),
])
def test_recommendation_follows_the_seed_decision_tree(answers, strategy):
    from strategies.recommend import recommend

    rec = recommend(**answers)
    assert rec.strategy == strategy and rec.why and len(rec.path) == len(answers)


def test_recommendation_asks_only_what_the_path_needs():
    from strategies.recommend import MissingAnswer, recommend

    with pytest.raises(MissingAnswer) as missing:
        recommend("non-critical", "medium")
    assert missing.value.key == "budget"


def _plan():
    nginx = SimpleNamespace(upstream="agent", access_log="/var/log/nginx/a.log", marker_port=8099,
                            force_header="X-Canary", sticky=None)
    return SimpleNamespace(nginx=nginx)


def _insts(*names):
    return [Instance(Host(n, address=f"10.0.0.{i}"), "main", "agent@main", 8080) for i, n in enumerate(names, 1)]


@pytest.mark.parametrize("weight", [10.0, 100.0])
def test_stable_backs_up_the_canary_pool_while_it_runs(weight):
    stable, canary = _insts("a", "b"), _insts("c")
    assert canary_state(_plan(), stable, canary, weight, "g").fallback == {"canary": "stable"}
    # nothing to fall back on once every instance is a canary, nor when no one is
    assert canary_state(_plan(), [], canary, 100.0, "g").fallback == {}
    assert canary_state(_plan(), stable, [], 0.0, "g").fallback == {}


def test_a_failure_a_retry_hid_from_the_client_still_counts_against_the_pool():
    stats = PoolStats(requests=100, errors=1, retried=4, hidden=3, latencies=[0.01] * 100)
    judged = pool_sample(stats, Sample())
    assert (judged.requests, judged.errors) == (100, 4)
    state, verdict, found = gates.judge(GateState(), judged, TH)
    assert [b.metric for b in found] == ["error_rate"]
