"""canary.baseline: matched, on the SIMULATED fleet: a stable instance per
canary instance restarts on the old version with the canary, takes the
canary's share in a pool of its own, is the canary's baseline, and rejoins
stable when the match no longer fits, on rollback and on abort: nginx ends
as it started. The same on real hosts: tests/sandbox/test_matched_baseline_real.py."""
from __future__ import annotations

from strategies.engine import Outcome
from strategies.events import GateEvaluated, InstanceChanged, TrafficChanged
from test_engine_sim import make_session

STEPS = {"sample_interval": "2s", "baseline": "matched",
         "steps": [{"set_weight": 10}, {"analysis": "10s"}, {"set_weight": 20}, {"analysis": "10s"},
                   {"set_weight": 50}, {"analysis": "10s"}]}


def restarted(events, until):
    return [e.instance for e in events[:until] if isinstance(e, InstanceChanged) and e.phase == "restarting"]


async def test_a_matched_baseline_restarts_with_the_canary_and_takes_its_share(tmp_path):
    session, events = make_session(tmp_path, "canary", hosts=10, canary=STEPS)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED and set(result.versions.values()) == {"2.0.0"}
    changes = [(i, e) for i, e in enumerate(events) if isinstance(e, TrafficChanged)]
    split = [(i, e) for i, e in changes if "baseline" in e.pools]
    shares = [e.weights for _, e in split]
    assert [w for n, w in enumerate(shares) if not n or w != shares[n - 1]] == [
        {"canary": 10.0, "baseline": 10.0, "stable": 80.0}, {"canary": 20.0, "baseline": 20.0, "stable": 60.0}]
    first, at_10 = split[0]
    # agent-01 (canary, new) and agent-10 (matched baseline, old) restarted side by side before the split
    assert sorted(restarted(events, first)) == ["agent-01", "agent-10"]
    assert [b.split(":")[0] for b in at_10.pools["baseline"]] == [session.engine.by_key["agent-10"].host.address]
    # at 20 % the canary and the baseline each have two instances: agent-02 and agent-09 joined them
    at_20 = next(i for i, e in split if e.weights["canary"] == 20.0)
    assert sorted(restarted(events, at_20)) == ["agent-01", "agent-02", "agent-09", "agent-10"]
    assert session.driver._instances[("agent-10", "main")].version == "2.0.0"  # moved on at the end
    gates = [e for e in events if isinstance(e, GateEvaluated) and e.final]
    assert [g.verdict for g in gates] == ["pass"] * 3
    # the 10 % window's baseline is the matched instance: about as many requests as the canary
    ten = next(g for g in gates if "at 10%" in g.name)
    assert 0.5 < ten.values["baseline_requests"] / ten.values["requests"] < 2.0
    # at 50 % the match does not fit: no baseline pool, the matched instances serve in stable
    fifty = [e for _, e in changes if e.weights.get("canary") == 50.0]
    assert fifty and all("baseline" not in e.pools for e in fifty)
    assert all("generation sim-initial" in t for t in (await session.driver.lb_read()).values())


async def test_a_rollback_puts_the_matched_baseline_back_in_stable(tmp_path):
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "canary", hosts=10, canary=STEPS, releases=releases)
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    assert any("baseline" in e.pools for e in events if isinstance(e, TrafficChanged))
    assert set(result.versions.values()) == {"1.0.0"}
    assert all("generation sim-initial" in t for t in (await session.driver.lb_read()).values())
