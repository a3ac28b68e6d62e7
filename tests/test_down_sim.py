"""Dead instances noticed within one sample (strategies/down.py), SIMULATED.

The simulated LB attributes every try to its backend as nginx's log does,
and keeps sending a dead backend its share (max_fails=0), retrying each
failed try elsewhere: clients see nothing, the dead backend's tries all fail.
The same on real hosts: tests/sandbox/test_judge_live_real.py."""
from __future__ import annotations

from inventory.driver import BackendStats
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
    made the baseline's error rate about 1 in 6 and the window extended)."""
    session, events = make_session(tmp_path, "canary", hosts=6)
    kill_when(session, lambda e: isinstance(e, StepStarted) and e.title.startswith("analysis"), "agent-06")
    result = await session.run()
    assert down_alerts(events, "agent-06")
    gates = [e for e in events if isinstance(e, GateEvaluated) and e.name.startswith("step 2")]
    assert all(not g.values.get("baseline_error_rate") for g in gates if g.values)
    assert gates[-1].verdict == "pass" and not gates[-1].extended
    assert result.outcome == Outcome.SUCCEEDED  # the simulated restart at 100 % brings agent-06 back


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
