"""Pure decisions: batches, capacity, canary topology, attribution of tries. No I/O.
(The judge has its own tests: tests/test_analysis.py.)"""
from types import SimpleNamespace

import pytest

from inventory import access_log
from inventory.model import Host, Instance
from strategies.analysis import Finding, percentile
from strategies.batches import failure_budget, plan_batches
from strategies.capacity import hosts_for_weight
from strategies.gating import side_evidence
from strategies.topology import backend, canary_state, limit_refusal, rolling_state, with_untouched


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


@pytest.mark.parametrize("weight,total,hosts", [(1, 10, 1), (5, 10, 1), (10, 10, 1), (50, 10, 5),
                                               (51, 10, 6), (100, 10, 10), (1, 1000, 10), (0.5, 3, 1)])
def test_capacity_follows_traffic(weight, total, hosts):
    assert hosts_for_weight(weight, total) == hosts


def test_percentile_nearest_rank():
    assert percentile(list(range(1, 101))) == 95
    assert percentile([]) is None
    assert str(Finding("p95_latency", 2.5, 2.0)) == "p95_latency 2500ms > 2000ms"


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


def _servers(state, pool):
    return [str(b) for b in state.pools.get(pool, ())]


def test_a_limit_leaves_the_other_servers_of_the_upstream_serving_in_every_change():
    """--limit on part of an upstream: the left-out instances (10.0.0.4-5)
    stay in every routing change, never drained; with one pool taking
    everything they serve in it, and while traffic is split they keep their
    share by count and the plan's weights split the limited hosts' share."""
    managed, left = _insts("a", "b", "c"), [backend(i) for i in _insts("a", "b", "c", "d", "e")[3:]]
    drained = with_untouched(rolling_state(_plan(), managed, {"a"}, "g"), left, 3)
    assert _servers(drained, "stable") == ["10.0.0.2:8080", "10.0.0.3:8080", "10.0.0.4:8080", "10.0.0.5:8080"]
    assert drained.weights == {}
    split = with_untouched(canary_state(_plan(), managed[1:], managed[:1], 10.0, "g"), left, 3)
    assert _servers(split, "untouched") == ["10.0.0.4:8080", "10.0.0.5:8080"]
    assert split.weights == pytest.approx({"canary": 6.0, "stable": 54.0, "untouched": 40.0})
    promoted = with_untouched(canary_state(_plan(), [], managed, 100.0, "g"), left, 3)  # all 3 on the release
    assert promoted.weights == pytest.approx({"canary": 60.0, "untouched": 40.0}) and promoted.default_pool == "canary"
    assert with_untouched(promoted, left, 3) == promoted  # already there: nothing added twice
    assert with_untouched(split, [], 3) == split


def test_a_limit_on_part_of_a_blue_green_upstream_is_refused_and_the_rest_allowed():
    left = _insts("d", "e")
    assert limit_refusal(SimpleNamespace(strategy="rolling"), left) is None
    assert limit_refusal(SimpleNamespace(strategy="blue_green"), []) is None
    refusal = limit_refusal(SimpleNamespace(strategy="blue_green"), left)
    assert refusal is not None and refusal.startswith("--limit leaves out 2 host(s) of the upstream (d, e)")


def counts(ev):
    return ev.requests, ev.errors, ev.latencies


def test_a_request_counts_once_per_backend_however_often_nginx_retried_it():
    """Failed requests, not failed tries: a request whose tries on the
    canary's backend failed twice (nginx went back to it) and then
    succeeded on stable is one failed request of the canary's backend, one
    good request of stable's; each side is also kept per instance."""
    log = ('{"pool":"agent_canary","status":"200","ustatus":"502, 502, 200",'
           '"uaddr":"10.0.0.3:8080, 10.0.0.3:8080, 10.0.0.1:8080","rt":"0.02","urt":"0.001, 0.001, 0.010"}\n'
           '{"pool":"agent_canary","status":"200","ustatus":"200","uaddr":"10.0.0.3:8080","rt":"0.01","urt":"0.005"}\n')
    traffic = access_log.parse_pools(log, "agent")
    assert (traffic["canary"].backends["10.0.0.3:8080"].tries, traffic["canary"].backends["10.0.0.3:8080"].failed) \
        == (3, 2)
    canary, stable = _insts("a", "b", "c")[2:], _insts("a")
    ev = side_evidence(traffic, canary)
    assert (ev.requests, ev.errors) == (2, 1)
    assert [(name, h.requests, h.errors) for name, h in ev.hosts] == [(canary[0].key, 2, 1)]
    assert (side_evidence(traffic, stable).requests, side_evidence(traffic, stable).errors) == (1, 0)


def test_a_failure_a_retry_hid_from_the_client_still_counts_against_its_backend():
    """nginx retried a 503 of the canary on stable: the client saw 200, the
    canary's backend is still charged with a failed try (and stable with
    the good one)."""
    log = ('{"pool":"agent_canary","status":"200","ustatus":"503, 200","uaddr":"10.0.0.3:8080, 10.0.0.1:8080",'
           '"rt":"0.012","urt":"0.002, 0.010"}\n')
    traffic = access_log.parse_pools(log, "agent")
    canary, stable = _insts("a", "b", "c")[2:], _insts("a")
    assert counts(side_evidence(traffic, canary)) == (1, 1, (0.002,))
    assert counts(side_evidence(traffic, stable)) == (1, 0, (0.010,))
    assert (traffic["canary"].requests, traffic["canary"].errors, traffic["canary"].hidden) == (1, 0, 1)
