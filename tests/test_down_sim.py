"""Dead instances noticed within one sample (strategies/down.py), SIMULATED.

The simulated LB attributes every try to its backend as nginx's log does,
and keeps sending a dead backend its share (max_fails=0), retrying each
failed try elsewhere: clients see nothing, the dead backend's tries all fail.
The same on real hosts: tests/sandbox/test_judge_live_real.py."""
from __future__ import annotations

from inventory.driver import BackendStats
from strategies.capacity import canary_floor, canary_moves, canary_next_move
from strategies.down import MIN_FAILED_TRIES, Down, DownReason, DownWatch, find_down
from strategies.engine import Outcome
from strategies.events import (
    AlertRaised,
    CapacityChecked,
    GateEvaluated,
    InstanceChanged,
    MetricsSampled,
    StepStarted,
)
from test_engine_sim import make_session


def kill_when(session, predicate, host):
    """Power `host` off (its simulated unit stops answering) at the first
    event `predicate` accepts; returns a list that gets that event's index
    in the run's stream."""
    died: list[int] = []
    seen = [0]

    def on(event):
        seen[0] += 1
        if not died and predicate(event):
            session.driver._instances[(host, "main")].running = False
            died.append(seen[0])

    session.bus.subscribe(on)
    return died


def samples_before(events, died, event):
    """Analysis samples taken between the death (an index in `events`) and `event`."""
    return sum(1 for e in events[died:events.index(event)] if isinstance(e, MetricsSampled))


def down_alerts(events, host):
    return [e for e in events if isinstance(e, AlertRaised) and e.metric == "instance_down" and e.instance == host]


def test_every_try_failed_or_a_failed_probe_is_down_and_a_bad_moment_is_not():
    addrs = {"a:1": "a", "b:1": "b", "c:1": "c", "d:1": "d"}
    tries = {"a:1": BackendStats(MIN_FAILED_TRIES, MIN_FAILED_TRIES), "b:1": BackendStats(40, 39),
             "c:1": BackendStats(MIN_FAILED_TRIES - 1, MIN_FAILED_TRIES - 1)}
    found = find_down(addrs, tries, {"d": False, "c": True})
    assert found == [Down("a", DownReason.TRIES_FAILED, MIN_FAILED_TRIES, MIN_FAILED_TRIES),
                     Down("d", DownReason.PROBE_FAILED)]


def test_a_down_instance_is_news_once_until_it_answers_again():
    watch = DownWatch()
    down = Down("a", DownReason.TRIES_FAILED, 5, 5)
    assert watch.see([down], []) == [down]
    assert watch.see([down], []) == []
    assert watch.see([], ["a"]) == [] and "a" not in watch
    assert watch.see([down], []) == [down]


async def test_a_dead_old_host_in_the_window_after_a_batch_is_named_and_stops_the_next_drain(tmp_path):
    """agent-05 (old, serving) dies as the window after batch 1 opens: a
    critical alert names it within one sample interval, the capacity guard
    is asked then (not at the next batch), and it holds the run for a
    human naming agent-05 (exit 7 headless), agents 03-04 never drained."""
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "30s"})
    died = kill_when(session, lambda e: isinstance(e, InstanceChanged) and e.instance == "agent-02"
                     and e.phase == "live", "agent-05")
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert "agent-05 unhealthy (not touched by this release)" in result.message
    alert = down_alerts(events, "agent-05")
    assert alert and alert[0].tier == "critical"
    assert samples_before(events, died[0], alert[0]) == 1  # the first sample after its death names it
    guard = [e for e in events if isinstance(e, CapacityChecked) and not e.ok]
    assert guard and guard[0].unhealthy == ["agent-05"]
    assert samples_before(events, died[0], guard[0]) == 1  # the guard is asked then, not after the window
    assert not any(isinstance(e, StepStarted) and e.index == 2 for e in events)  # batch 2 never began
    drained = {e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "draining"}
    assert drained == {"agent-01", "agent-02"}
    assert session.engine.clients.failed == 0  # nginx retried agent-05's tries elsewhere


async def test_a_dead_stable_host_leaves_the_baseline_and_the_canary_passes(tmp_path):
    """A stable host dies during a canary's analysis: named at once, and its
    failed tries do not count as the stable version's errors (before, they
    made the baseline's error rate about 1 in 6 and the window extended).
    No warm-up: the canary's latency is compared from the first sample, so
    the 10 s window has no reason but the dead host's tries to extend for
    error evidence (it may for its tail)."""
    session, events = make_session(tmp_path, "canary", hosts=6, analysis={"latency_warm_up": "0s"})
    kill_when(session, lambda e: isinstance(e, StepStarted) and e.title.startswith("analysis"), "agent-06")
    result = await session.run()
    assert down_alerts(events, "agent-06")
    gates = [e for e in events if isinstance(e, GateEvaluated) and e.name.startswith("step 2")]
    assert all(not g.values.get("baseline_error_rate") for g in gates if g.values)
    # it may wait for its tail comparison (coverage), never for error evidence the dead host's tries muddy
    assert gates[-1].verdict == "pass" and all("evidence" not in g.why for g in gates)
    # the 50 % step drains agents 02-03 and leaves 3 serving, which the plan allows (its largest
    # move is the 3 of the promotion); the promotion would move the dead agent-06, which could
    # only fail its deploy: the capacity guard, asked in the 50 % window (agent-06 still down),
    # stops the run there for a human, naming it
    assert [e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "draining"] == [
        "agent-01", "agent-02", "agent-03"]
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert result.message.startswith("step 4 analysis 10s at 50%, before set weight 100%: agent-06 unhealthy "
                                     "(not touched by this release)"), result.message


async def test_a_dead_stable_host_the_next_step_would_move_stops_the_canary_within_a_sample(tmp_path):
    """agent-02 (stable, serving) dies during the 10 % window; the 50 % step
    would drain it with agent-03. Named by a critical alert within one
    sample, the capacity guard asked then and there stops the run for a
    human (exit 7), naming it; nothing more is drained."""
    session, events = make_session(tmp_path, "canary", hosts=6, analysis={"latency_warm_up": "0s"})
    died = kill_when(session, lambda e: isinstance(e, StepStarted) and e.title.startswith("analysis"), "agent-02")
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert result.message.startswith("step 2 analysis 10s at 10%, before set weight 50%: agent-02 unhealthy "
                                     "(not touched by this release)"), result.message
    alert = down_alerts(events, "agent-02")[0]
    assert samples_before(events, died[0], alert) == 1 and alert.tier == "critical"
    guard = next(e for e in events if isinstance(e, CapacityChecked) and not e.ok)
    assert guard.unhealthy == ["agent-02"] and guard.in_batch == ["agent-02"] and guard.floor == 3
    assert samples_before(events, died[0], guard) == 1
    assert [e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "draining"] == ["agent-01"]


async def test_a_canary_whose_dead_host_leaves_too_few_serving_applies_on_failure(tmp_path):
    """Two stable hosts die in the window (agents 05 and 06, not moved by
    the 50 % step): draining agents 02-03 would leave 2 of 6 serving, the
    plan's largest move allows no fewer than 3. With `canary.capacity_guard:
    on_failure` the canary rolls back instead of pausing."""
    session, events = make_session(tmp_path, "canary", hosts=6, analysis={"latency_warm_up": "0s"},
                                   canary={"sample_interval": "2s", "capacity_guard": "on_failure",
                                           "steps": [{"set_weight": 10}, {"analysis": "10s"}, {"set_weight": 50},
                                                     {"analysis": "10s"}, {"set_weight": 100}]})
    kill_when(session, lambda e: isinstance(e, StepStarted) and e.title.startswith("analysis"), "agent-05")
    kill_when(session, lambda e: isinstance(e, StepStarted) and e.title.startswith("analysis"), "agent-06")
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    guard = next(e for e in events if isinstance(e, CapacityChecked) and not e.ok)
    assert sorted(guard.unhealthy) == ["agent-05", "agent-06"] and guard.after == 2 and guard.floor == 3
    assert guard.in_batch == []
    assert result.versions["agent-01"] == "1.0.0"


async def test_a_dead_judged_instance_fails_the_window_at_once(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "30s"})
    died = kill_when(session, lambda e: isinstance(e, InstanceChanged) and e.instance == "agent-02"
                     and e.phase == "live", "agent-01")
    result = await session.run()
    assert result.outcome in (Outcome.ROLLED_BACK, Outcome.FAILED)
    fail = next(e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail")
    assert samples_before(events, died[0], fail) == 1  # its failed probe, the critical tier
    alert = down_alerts(events, "agent-01")
    assert alert[0].reason == "probe_failed" and samples_before(events, died[0], alert[0]) == 1


async def test_a_judged_instance_whose_every_try_fails_fails_the_window(tmp_path):
    """/health answers, every request fails: both updated instances are
    named down from nginx's log in the same sample the window fails."""
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "30s"},
                                   releases={"1.0.0": {}, "2.0.0": {"error_rate": 1.0}},
                                   thresholds={"error_rate": "50%", "min_requests": 20})
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    fail = next(e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail")
    named = [e for e in events[:events.index(fail)] if isinstance(e, AlertRaised) and e.metric == "instance_down"]
    assert {(e.instance, e.reason) for e in named} == {("agent-01", "tries_failed"), ("agent-02", "tries_failed")}


def test_a_canary_plan_s_floor_is_all_but_its_largest_move():
    """Pure: 6 instances, 10 % then 50 % then the promotion move 1, 2 and 3
    of them; 3 must always serve. The next drain at 10 % is the 50 % step's."""
    assert canary_moves([10, 50], 6) == [1, 2, 3]
    assert canary_floor([10, 50], 6) == 3
    assert canary_floor([1, 5, 10, 25, 50], 100) == 50
    stable = ["agent-02", "agent-03", "agent-04", "agent-05", "agent-06"]
    assert canary_next_move([50], 10, 1, stable, 6) == (50, ("agent-02", "agent-03"))
    assert canary_next_move([], 50, 3, stable[2:], 6) == (100, ("agent-04", "agent-05", "agent-06"))
    assert canary_next_move([10, 5], 10, 1, stable, 6) == (100, tuple(stable))  # a lower weight moves nothing


async def test_a_dead_instance_of_the_serving_colour_rolls_blue_green_back_within_a_sample(tmp_path):
    """Blue-green serves one whole colour, so after the switch the judged
    instances are all that serves: agent-03's green unit dies as the window
    opens, it is named within one sample, the window fails at once (the
    critical tier) and the plan's on_failure sends every request back to
    the warm blue colour."""
    session, events = make_session(tmp_path, "blue_green", hosts=4, analysis={"latency_warm_up": "0s"})
    died: list[int] = []

    def on(event):
        if not died and isinstance(event, StepStarted) and event.title.startswith("rollback window"):
            session.driver._instances[("agent-03", "green")].running = False
            died.append(len(events))

    session.bus.subscribe(on)
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    fail = next(e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail")
    assert samples_before(events, died[0], fail) == 1
    assert [a.instance for a in events if isinstance(a, AlertRaised) and a.metric == "instance_down"] == [
        "agent-03/green"]
    assert session.driver._lb_state.default_pool == "blue"
