"""Engine behaviour on the SIMULATED fleet: fast, deterministic, no hosts.

These prove the engine's decisions and safety rules; the same paths against
real sshd/systemd/nginx are in tests/sandbox/."""
from __future__ import annotations

import asyncio
import math

import pytest

from console.journal import read_journal
from console.session import Session, load_inputs
from inventory.driver import DriverError
from inventory.model import Colour
from simfleet import write_inventory, write_plan
from strategies.control import Command
from strategies.engine import Outcome
from strategies.events import (
    AlertRaised,
    CapacityChecked,
    GateEvaluated,
    HealthChecked,
    InstanceChanged,
    Notice,
    OperatorCommand,
    PhaseChanged,
    RoutingVerified,
    RunFinished,
    StepStarted,
    TrafficChanged,
)

SCALE = 100.0


def make_session(tmp_path, strategy="rolling", releases=None, hosts=6, version=None,
                 interactive=False, auto_promote=False, **sections):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=hosts, releases=releases)
    plan = write_plan(tmp_path / "plan.yaml", strategy, **sections)
    inputs = load_inputs(str(plan), str(inv), version)
    session = Session(inputs, argv=["test"], record=str(tmp_path / "journal.jsonl"), time_scale=SCALE,
                      interactive=interactive, auto_promote=auto_promote)
    events = []
    session.bus.subscribe(events.append)
    return session, events


def lb_pools(session):
    state = session.driver._lb_state  # the simulated LB's current routing
    return {p: sorted(str(b) for b in bs) for p, bs in state.pools.items()}, dict(state.weights)


async def test_rolling_replaces_every_instance_batch_by_batch(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2})
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    assert set(result.versions.values()) == {"2.0.0"}
    # each batch drained exactly its two instances; with no window between batches the next
    # change re-admits them while draining the next batch, and the restore re-admits the last
    drained = [len(e.pools["stable"]) for e in events if isinstance(e, TrafficChanged)]
    assert drained == [4, 4, 4, 6]
    # the LB ends byte-identical to where it started
    texts = await session.driver.lb_read()
    assert all("generation sim-initial" in t for t in texts.values())


async def test_rolling_never_routes_to_an_instance_while_it_changes(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 1})
    routed: set[str] = set()
    violations = []

    def watch(event):
        nonlocal routed
        if isinstance(event, TrafficChanged):
            routed = {b for bs in event.pools.values() for b in bs}
        if isinstance(event, InstanceChanged) and event.phase in ("deploying", "restarting"):
            inst = session.engine.by_key[event.instance]
            if f"{inst.host.address}:{inst.port}" in routed:
                violations.append(event.instance)

    session.bus.subscribe(watch)
    assert (await session.run()).outcome == Outcome.SUCCEEDED
    assert violations == []


async def test_release_that_fails_to_start_is_rolled_back(tmp_path):
    releases = {"1.0.0": {}, "2.0.0": {"fail_start": True}}
    session, events = make_session(tmp_path, releases=releases, rolling={"batch": 2})
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    assert set(result.versions.values()) == {"1.0.0"}
    pools, weights = lb_pools(session)
    assert len(pools["stable"]) == 6 and weights == {}


async def test_max_fail_percentage_tolerates_failures_within_budget(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 3, "max_fail_percentage": 50})
    # one host cannot install the release: give it its own release table
    host = session.inputs.inventory.hosts["agent-02"]
    object.__setattr__(host, "vars", {**host.vars, "sim_releases": {"1.0.0": {}, "2.0.0": {"fail_start": True}}})
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    assert result.versions["agent-02"] == "1.0.0"
    assert [k for k, v in result.versions.items() if v == "2.0.0"] == [k for k in result.versions if k != "agent-02"]


async def test_on_failure_abort_stops_with_every_instance_serving(tmp_path):
    releases = {"1.0.0": {}, "2.0.0": {"fail_start": True}}
    session, _ = make_session(tmp_path, releases=releases, on_failure="abort")
    result = await session.run()
    assert result.outcome == Outcome.FAILED
    pools, _ = lb_pools(session)
    assert len(pools["stable"]) == 6  # the failed instance was reverted and re-admitted
    assert set(result.versions.values()) == {"1.0.0"}


async def test_canary_of_bad_release_rolls_back_at_first_analysis(tmp_path):
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.2}}
    session, events = make_session(tmp_path, "canary", releases=releases, hosts=10)
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    gates = [e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail"]
    assert gates and gates[0].name.startswith("step 2")
    assert set(result.versions.values()) == {"1.0.0"}
    pools, weights = lb_pools(session)
    assert weights == {} and len(pools["stable"]) == 10


def phases_in_rollback(events) -> dict[str, list[str]]:
    """Each instance's phases from the run's "rolling back" on."""
    back = next(i for i, e in enumerate(events) if isinstance(e, PhaseChanged) and e.phase == "rolling back")
    phases: dict[str, list[str]] = {}
    for e in events[back:]:
        if isinstance(e, InstanceChanged):
            phases.setdefault(e.instance, []).append(e.phase)
    return phases


async def test_a_canary_rollback_drains_each_canary_out_of_nginx_before_restarting_it(tmp_path):
    """Soak seed 9 run 7 at f47952b: the rollback restarted the canaries
    right after taking them out of nginx, cutting the requests still on
    them (15 of nginx's own 502s). Each is drained first."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.2}}
    session, events = make_session(tmp_path, "canary", releases=releases, hosts=10)
    assert (await session.run()).outcome == Outcome.ROLLED_BACK
    phases = phases_in_rollback(events)
    restarted = [key for key, seen in phases.items() if "restarting" in seen]
    assert restarted
    for key in restarted:
        assert "draining" in phases[key][:phases[key].index("restarting")], (key, phases[key])


async def test_canary_split_tracks_configured_weights(tmp_path):
    session, events = make_session(tmp_path, "canary", hosts=10)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    weights = [e.weights.get("canary") for e in events if isinstance(e, TrafficChanged) and e.weights]
    assert 10 in weights and 50 in weights
    # capacity follows traffic: 1 canary host at 10 %, 5 at 50 %
    sizes = {e.weights["canary"]: len(e.pools["canary"]) for e in events
             if isinstance(e, TrafficChanged) and e.weights}
    assert sizes[10] == 1 and sizes[50] == 5


async def test_canary_worse_than_stable_fails_on_the_sequential_test_in_its_first_window(tmp_path):
    """6 % errors against a clean stable, threshold 2 %: the window's
    e-processes (the comparison of the two sides' failures, whose null
    allows half a threshold more, and the 2 % ceiling, which here gets
    there first) decide within the window."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.06}}
    session, events = make_session(
        tmp_path, "canary", releases=releases, hosts=10,
        thresholds={"error_rate": "2%", "persistence": 2, "min_requests": 20, "compare_to_stable": True},
        canary={"sample_interval": "5s", "steps": [{"set_weight": 50}, {"analysis": "30s"}, {"set_weight": 100}]})
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    failed = [e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail"]
    assert len(failed) == 1 and not failed[0].extended
    assert failed[0].reasons[0].startswith("error_rate ")
    assert failed[0].values["baseline_error_rate"] == 0.0


async def test_an_alert_shows_the_plans_threshold_and_what_the_judge_weighed_apart(tmp_path):
    """The likelihood test weighs 2 x the plan's 2 % (or the gross 10 %):
    the alert it raises still says threshold 2 %, with the test apart."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.2}}
    session, events = make_session(
        tmp_path, "canary", releases=releases, hosts=10, alerts={"critical": [], "important": [], "warning": []},
        thresholds={"error_rate": "2%", "persistence": 2, "min_requests": 20},
        canary={"sample_interval": "5s", "steps": [{"set_weight": 50}, {"analysis": "30s"}, {"set_weight": 100}]})
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    alerts = [e for e in events if isinstance(e, AlertRaised) and e.metric == "error_rate"]
    assert alerts and alerts[-1].threshold == 0.02, alerts
    assert "vs the baseline's" in alerts[-1].basis and "e-value" in alerts[-1].basis


async def test_canary_with_too_little_traffic_is_inconclusive_and_waits(tmp_path):
    session, events = make_session(
        tmp_path, "canary", hosts=10,
        thresholds={"error_rate": "1%", "persistence": 2, "min_requests": 100000, "max_window": "60s"})
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert any(isinstance(e, GateEvaluated) and e.verdict == "inconclusive" for e in events)


async def test_indefinite_pause_waits_for_promote(tmp_path):
    session, events = make_session(
        tmp_path, "canary", hosts=4, interactive=True,
        canary={"sample_interval": "2s", "steps": [{"set_weight": 25}, {"pause": None}, {"set_weight": 100}]})

    async def promote_when_paused():
        while session.engine.phase.value != "paused":
            await asyncio.sleep(0.01)
        assert session.engine.command(Command.PROMOTE, source="test")

    promoter = asyncio.create_task(promote_when_paused())
    result = await asyncio.wait_for(session.run(), 30)
    await promoter
    assert result.outcome == Outcome.SUCCEEDED
    assert any(isinstance(e, OperatorCommand) and e.command == "promote" and e.accepted for e in events)


async def test_operator_rollback_mid_canary(tmp_path):
    session, events = make_session(tmp_path, "canary", hosts=10, interactive=True)

    async def rollback_at_50():
        while not any(isinstance(e, TrafficChanged) and e.weights.get("canary") == 50 for e in events):
            await asyncio.sleep(0.01)
        session.engine.command(Command.ROLLBACK, source="test")

    task = asyncio.create_task(rollback_at_50())
    result = await asyncio.wait_for(session.run(), 30)
    await task
    assert result.outcome == Outcome.ROLLED_BACK
    assert set(result.versions.values()) == {"1.0.0"}


async def test_pause_then_resume_holds_the_rollout(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "4s"}, interactive=True)
    session.engine.command(Command.PAUSE, source="test")

    async def resume_later():
        while not any(isinstance(e, PhaseChanged) and e.phase == "paused" for e in events):
            await asyncio.sleep(0.01)
        changed_while_paused = [e for e in events if isinstance(e, InstanceChanged)]
        await session.driver.clock.sleep(3 * 4.0)  # three batch intervals on the engine's own clock
        assert [e for e in events if isinstance(e, InstanceChanged)] == changed_while_paused
        session.engine.command(Command.RESUME, source="test")

    task = asyncio.create_task(resume_later())
    result = await asyncio.wait_for(session.run(), 30)
    await task
    assert result.outcome == Outcome.SUCCEEDED


async def test_abort_at_safe_point_leaves_every_instance_serving(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "4s"}, interactive=True)

    def abort_during_first_gate(event):
        if isinstance(event, GateEvaluated) and not any(isinstance(e, OperatorCommand) for e in events):
            session.engine.command(Command.ABORT, source="test")

    session.bus.subscribe(abort_during_first_gate)
    result = await asyncio.wait_for(session.run(), 30)
    assert result.outcome == Outcome.ABORTED
    pools, _ = lb_pools(session)
    assert len(pools["stable"]) == 6
    assert sorted(result.versions.values()) == ["1.0.0"] * 4 + ["2.0.0"] * 2


def command_in_last_step(session, events, command, last_step):
    """Send `command` once, as the strategy's last step starts (no safe
    point follows it): the soak's operator commands arrive at such moments."""
    def send(event):
        if (isinstance(event, StepStarted) and event.index == last_step
                and not any(isinstance(e, OperatorCommand) for e in events)):
            assert session.engine.command(command, source="test")
    session.bus.subscribe(send)


async def test_rollback_accepted_during_the_last_batch_rolls_back(tmp_path):
    """Found adding operator commands to the soak: a rollback accepted "at
    the next safe point" while the last batch ran was dropped (no safe point
    followed it) and the run ended succeeded (exit 0) on the new version."""
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "4s"})
    command_in_last_step(session, events, Command.ROLLBACK, last_step=3)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert set(result.versions.values()) == {"1.0.0"}
    assert "generation sim-initial" in next(iter((await session.driver.lb_read()).values()))


async def test_abort_accepted_during_the_last_batch_ends_aborted(tmp_path):
    """An abort accepted in the last batch ends aborted (exit 5) where the
    strategy left the fleet: every instance in nginx on the new version."""
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "4s"})
    command_in_last_step(session, events, Command.ABORT, last_step=3)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.ABORTED, result.message
    assert "every instance that served before is in nginx" in result.message
    assert set(result.versions.values()) == {"2.0.0"}
    pools, _ = lb_pools(session)
    assert len(pools["stable"]) == 6


async def test_blue_green_rollback_accepted_as_the_old_colour_retires_restarts_it(tmp_path):
    """Units form: a rollback accepted in the retire step (after the last
    safe point) starts the retired colour again on the old version, then
    switches back to it."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    command_in_last_step(session, events, Command.ROLLBACK, last_step=4)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert session.driver._lb_state.default_pool == "blue"
    assert "generation sim-initial" in next(iter((await session.driver.lb_read()).values()))
    blue = [i for i in session.engine.instances if i.slot == "blue"]
    assert blue and all(session.engine.ops.versions[i.key] == "1.0.0" for i in blue)
    assert all([(await session.engine.ops.probe(i)).ok for i in blue])


async def test_blue_green_switches_and_retires(tmp_path):
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    pools, _ = lb_pools(session)
    assert list(pools) == ["green"] and len(pools["green"]) == 4
    assert session.driver._lb_state.default_pool == "green"


async def test_blue_green_bad_release_switches_back(tmp_path):
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases)
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    assert session.driver._lb_state.default_pool == "blue"
    assert "generation sim-initial" in next(iter((await session.driver.lb_read()).values()))


async def test_a_blue_green_rollback_drains_the_new_colour_before_stopping_it(tmp_path):
    """Soak seed 9 run 216 at 539650a: green's units were stopped as soon
    as traffic went back to blue, cutting the requests still on them (100
    of nginx's own 502s). Each is drained first."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases)
    assert (await session.run()).outcome == Outcome.ROLLED_BACK
    green = {key: seen for key, seen in phases_in_rollback(events).items() if key.endswith("/green")}
    assert len(green) == 4
    for key, seen in green.items():
        assert seen[0] == "draining" and "rolled back" in seen, (key, seen)


async def test_capacity_guard_will_not_drain_while_an_old_serving_host_is_down(tmp_path):
    """agent-05, not yet updated, dies during batch 1: before batch 2 the
    guard sees it, will not drain agents 03-04 (that would leave 3 of 6
    serving; the plan's batch of 2 allows 4), and stops for a human naming
    it, not blaming the release."""
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "10s"})

    def kill(event):
        if isinstance(event, InstanceChanged) and event.instance == "agent-01" and event.phase == "deploying":
            session.driver._instances[("agent-05", "main")].running = False  # the simulated host dies

    session.bus.subscribe(kill)
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert "agent-05 unhealthy (not touched by this release)" in result.message
    drained = {e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "draining"}
    assert drained == {"agent-01", "agent-02"}
    guard = [e for e in events if isinstance(e, CapacityChecked) and not e.ok]
    assert guard[0].unhealthy == ["agent-05"] and guard[0].after == 3 and guard[0].floor == 4
    assert session.engine.clients.failed == 0  # nginx retried agent-05's requests elsewhere


async def test_capacity_guard_on_failure_applies_the_plan_policy(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2, "capacity_guard": "on_failure"})

    def kill(event):
        if isinstance(event, InstanceChanged) and event.instance == "agent-01" and event.phase == "deploying":
            session.driver._instances[("agent-04", "main")].running = False

    session.bus.subscribe(kill)
    result = await session.run()
    # on_failure: the release's instances rolled back; the dead agent-04 is out of nginx, so a human must look
    assert result.outcome == Outcome.FAILED and "rollback incomplete" in result.message
    assert "agent-04 unhealthy" in result.message and "out of nginx: agent-04" in result.message
    assert result.versions["agent-01"] == "1.0.0"
    last = [e for e in events if isinstance(e, TrafficChanged)][-1]  # the dead host is not routed back to
    assert not any(b.startswith("agent-04:") for bs in last.pools.values() for b in bs)


async def test_rolling_window_without_traffic_is_inconclusive_not_a_pass(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, rps=0.0)
    plan = write_plan(tmp_path / "plan.yaml", rolling={"batch": 2, "interval": "10s"},
                      thresholds={"max_window": "30s"})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"],
                      record=str(tmp_path / "j.jsonl"), time_scale=SCALE)
    events = []
    session.bus.subscribe(events.append)
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION and "inconclusive" in result.message
    final = [e for e in events if isinstance(e, GateEvaluated) and e.final]
    assert final[-1].verdict == "inconclusive" and final[-1].extended and final[-1].seen == 0
    assert any("needs about" in r for r in final[-1].reasons)


async def test_a_window_that_never_compared_the_release_s_latency_extends_and_says_why(tmp_path):
    """SIMULATED. A 10 s window after a batch restarted just before it: the
    median comparison judges the batch's latencies only from 600 s after its
    restart (twice the plan's warm-up), so the window extends, saying why
    in a typed reason, until they are compared (within its 900 s maximum),
    and then passes."""
    session, events = make_session(tmp_path, rolling={"batch": 3, "interval": "10s"},
                                   analysis={"latency_warm_up": "300s"})
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED, result.message
    gate = [e for e in events if isinstance(e, GateEvaluated) and e.name == "after batch 1"]
    waiting = [g for g in gate if g.extended and not g.final]
    # a rolling batch's window is not held for its tail (Policy.hold_for_tail): only the median waits
    assert waiting and all(g.why == ["latency_not_judged"] for g in waiting)
    assert gate[-1].final and gate[-1].verdict == "pass" and gate[-1].extended and gate[-1].why == []


async def test_a_window_whose_maximum_ends_before_the_latency_is_compared_is_inconclusive(tmp_path):
    """SIMULATED. A window whose 30 s maximum ends long before the batch is
    twice its warm-up old never compares the release's latency, so it is
    inconclusive and waits for a human, never a pass."""
    session, events = make_session(tmp_path, rolling={"batch": 3, "interval": "10s"},
                                   analysis={"latency_warm_up": "3600s"},
                                   thresholds={"error_rate": "1%", "max_window": "30s"})
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION and "inconclusive" in result.message
    final = [e for e in events if isinstance(e, GateEvaluated) and e.final]
    assert [(g.verdict, g.why) for g in final] == [("inconclusive", ["latency_not_judged"])]
    assert not any(isinstance(e, GateEvaluated) and e.verdict == "pass" for e in events)


async def test_blue_green_refuses_a_plan_whose_active_colour_is_not_what_nginx_serves(tmp_path):
    from strategies.topology import bluegreen_state

    session, events = make_session(tmp_path, "blue_green")
    green = [i for i in session.engine.instances if i.colour == "green"]
    session.driver._lb_state = bluegreen_state(session.inputs.plan, {"green": green}, "green", "live")
    result = await session.run()
    assert result.outcome == Outcome.REFUSED
    assert "live routing disagrees with the plan" in result.message and "active: blue" in result.message
    assert not any(isinstance(e, TrafficChanged) for e in events)  # nothing changed


def serve_from(session, instances, pool="stable"):
    """What nginx routes to before the run (the simulated LB's state)."""
    from strategies.topology import lb_state

    session.driver._lb_state = lb_state(session.inputs.plan, {pool: instances}, pool, generation="live")


async def test_blue_green_reads_the_active_colour_from_live_routing(tmp_path):
    """active: auto (the default): green serves, so blue gets the release."""
    session, events = make_session(tmp_path, "blue_green", blue_green={"mode": "units", "rollback_window": "10s"})
    assert [i.colour for i in session.engine.instances] == [Colour.BLUE] * 6 + [Colour.GREEN] * 6  # typed sides
    serve_from(session, [i for i in session.engine.instances if i.colour == Colour.GREEN], "green")
    session.driver._running_slots = ["main", "green"]  # the hosts as that routing implies
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED, result.message
    pools, _ = lb_pools(session)
    assert list(pools) == ["blue"] and all(b.endswith(":8081") for b in pools["blue"])
    assert [s.title for s in events if isinstance(s, StepStarted)][0] == "deploy blue"


async def test_blue_green_adopts_a_fleet_serving_from_the_plans_own_slot(tmp_path):
    """A fresh sandbox serves agent@main on 8080 on every host, outside
    both colours: with active: auto it is the old side of the first run
    (green gets the release, main is retired after the switch), and the
    next run finds green serving and ships to blue."""
    from strategies.topology import adoptable

    session, events = make_session(tmp_path, "blue_green", blue_green={"mode": "units", "rollback_window": "10s"})
    main = adoptable(session.inputs.plan, session.engine.instances)
    assert [i.unit for i in main[:1]] == ["agent@main.service"] and len(main) == 6
    serve_from(session, main)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED, result.message
    pools, _ = lb_pools(session)
    assert list(pools) == ["green"] and all(b.endswith(":8082") for b in pools["green"])
    assert not any(session.driver._state(i).running for i in main)  # agent@main retired
    assert all(session.driver._state(i).version == "1.0.0" for i in main)
    assert any("adopted: nginx serves agent@main.service on port 8080" in getattr(e, "message", "") for e in events)
    assert result.message == "green live on 2.0.0; main (adopted) retired"  # not "blue": it never ran
    first_change = min(e.at for e in events if isinstance(e, TrafficChanged))
    before = [e for e in events if isinstance(e, HealthChecked) and not e.ok and e.at < first_change]
    assert before and all(e.idle for e in before)  # green not answering before its deploy: expected, not printed
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert set(finished.versions) == {f"agent-0{n}{slot}" for n in range(1, 7) for slot in ("", "/green")}

    blue = write_plan(tmp_path / "again.yaml", "blue_green", version="3.0.0",
                      blue_green={"mode": "units", "rollback_window": "10s"})
    inv = write_inventory(tmp_path / "inv3.yaml", hosts=6, releases={"1.0.0": {}, "2.0.0": {}, "3.0.0": {}})
    again = Session(load_inputs(str(blue), str(inv), None), argv=["test"], record=str(tmp_path / "j2.jsonl"),
                    time_scale=SCALE)
    again.driver._lb_state = session.driver._lb_state  # the same routing: green serves
    again.driver._running_slots = ["green"]
    second = await again.run()
    assert second.outcome == Outcome.SUCCEEDED, second.message
    pools, _ = lb_pools(again)
    assert list(pools) == ["blue"]


async def test_a_written_active_colour_that_nginx_does_not_serve_is_refused_naming_the_fix(tmp_path):
    from strategies.topology import adoptable

    session, events = make_session(tmp_path, "blue_green")  # active: blue, written on line 14 of plan.yaml
    serve_from(session, adoptable(session.inputs.plan, session.engine.instances))
    result = await session.run()
    assert result.outcome == Outcome.REFUSED
    plan = session.inputs.plan.source
    line = next(n for n, text in enumerate(open(plan), 1) if "active:" in text)
    assert ("nginx serves agent@main.service on port 8080 on every host, outside both colours: to adopt it"
            in result.message), result.message
    assert f"set `active: auto` in {plan}:{line}" in result.message
    assert not any(isinstance(e, TrafficChanged) for e in events)  # nothing changed


async def test_a_change_routes_only_to_instances_verified_just_now(tmp_path):
    """A bad canary is rolled back; a stable host died meanwhile: the way
    back leaves it out of nginx instead of routing to it, and says so."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "canary", releases=releases, hosts=6)

    def kill(event):
        if isinstance(event, TrafficChanged) and event.weights:  # the split is live: a stable host dies
            session.driver._instances[("agent-06", "main")].running = False

    session.bus.subscribe(kill)
    await session.run()
    n = next(i for i, e in enumerate(events) if isinstance(e, RoutingVerified) and e.left_out)
    assert "agent-06" in events[n].left_out
    change = next(e for e in events[n:] if isinstance(e, TrafficChanged))  # the way back to stable
    assert not any(b.startswith("agent-06:") for bs in change.pools.values() for b in bs)
    # it is routed to again only after the rollback reinstalled it and a probe verified it
    back = next(i for i, e in enumerate(events) if i > n and isinstance(e, TrafficChanged)
                and any(b.startswith("agent-06:") for bs in e.pools.values() for b in bs))
    assert any(isinstance(e, InstanceChanged) and e.instance == "agent-06" and e.phase == "rolled back"
               for e in events[n:back])


async def test_clients_are_counted_from_the_first_change_to_the_last(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 3})
    await session.run()
    finished = [e for e in events if isinstance(e, RunFinished)][0]
    assert finished.clients["requests"] > 0 and finished.clients["failed"] == 0
    assert finished.clients == session.engine.clients.as_dict()


def cut_at_switch(session, host, hang_cpu=False, step="switch"):
    """From the blue-green step titled `step...` on, `host` is unreachable
    (soak seed 2 run 154: its link cut): its units stop answering, every
    command to it fails, and with `hang_cpu` a CPU reading over SSH never
    answers at all."""
    cut = set()
    driver = session.driver
    real = {name: getattr(driver, name) for name in ("run_commands", "restart", "stop", "unit_cpu")}

    def refuse(name):
        async def call(inst, *args, **kwargs):
            if inst.host.name in cut:
                if name == "unit_cpu" and hang_cpu:
                    await asyncio.Event().wait()  # no answer, ever
                raise DriverError(inst.host.name, name, "connect: no route to host")
            return await real[name](inst, *args, **kwargs)
        return call

    for name in real:
        setattr(driver, name, refuse(name))

    def on(event):
        if isinstance(event, StepStarted) and event.title.startswith(step):
            cut.add(host)
            for slot in ("blue", "green"):
                driver._instances[(host, slot)].running = False

    session.bus.subscribe(on)


async def test_a_reading_that_never_answers_does_not_hold_the_window(tmp_path):
    """A dead host's CPU reading hung the sample, and with it the critical
    health alert, for the transport's 18 s while clients met the host (soak
    seed 2 run 154). The reading is now unknown after its limit, the health
    alert fails the window and the colours switch back."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    cut_at_switch(session, "agent-03", hang_cpu=True)
    result = await asyncio.wait_for(session.run(), 60)
    gates = [e for e in events if isinstance(e, GateEvaluated)]
    assert gates[-1].verdict == "fail" and "health_check_failed" in gates[-1].reasons[0]
    assert session.driver._lb_state.default_pool == "blue", result.message


async def test_blue_green_rollback_that_cannot_restore_an_old_unit_takes_the_new_colour_out_of_nginx(tmp_path):
    """Soak seed 2 run 154: the rollback could not restore agent-03's blue
    unit (unreachable), so the managed file was not restored byte for byte
    and kept the green pool (a header can force it) naming units the
    rollback then stopped; and the retire stopped at agent-03, leaving the
    green units after it running. Now green leaves nginx before any unit
    stops, and every reachable green unit is stopped."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases)
    cut_at_switch(session, "agent-03")
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED and "agent-03/blue" in result.message, result.message
    pools, _ = lb_pools(session)
    assert list(pools) == ["blue"] and len(pools["blue"]) == 3 and session.driver._lb_state.default_pool == "blue"
    assert not any(session.driver._instances[(h, "green")].running for h in ("agent-01", "agent-02", "agent-04"))


async def test_blue_green_rollback_before_the_switch_stops_routing_to_old_units_that_died(tmp_path):
    """Soak seed 2 run 170: agent-04 powered off as the run began; green
    failed to deploy there and the rollback, with nothing switched, changed
    no nginx file, so nginx kept routing to agent-04's dead blue unit. The
    rollback now routes the old colour alone, verified just now: the dead
    unit is left out and named, every other blue unit serves."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    cut_at_switch(session, "agent-04", step="deploy")
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED and "agent-04/blue" in result.message, result.message
    blue = {str(session.engine.ops.by_key[f"agent-0{n}/blue"].host.address) for n in (1, 2, 3, 4)}
    pools, _ = lb_pools(session)
    assert list(pools) == ["blue"] and {b.rsplit(":", 1)[0] for b in pools["blue"]} == blue - {
        str(session.engine.ops.by_key["agent-04/blue"].host.address)}, pools
    assert not any(session.driver._instances[(h, "green")].running for h in ("agent-01", "agent-02", "agent-03"))


def resume_on_the_same_fleet(session, first, tmp_path):
    """`console resume` of `session`'s journal, on the simulated hosts and LB
    as `session` left them (a new session builds a fleet of its own); with
    `first` None the journal is left open, as a SIGKILL leaves it."""
    from console.resume import load_resume

    if first is not None:
        session.finish(first)
    inputs, state = load_resume(str(tmp_path / "journal.jsonl"))
    resumed = Session(inputs, argv=["test"], record=str(tmp_path / "resumed.jsonl"), time_scale=SCALE,
                      auto_promote=True, resume=state)
    left = session.driver
    boot = resumed.driver.open

    async def reopen(hosts, lbs):
        await boot(hosts, lbs)
        resumed.driver._instances.update(left._instances)
        resumed.driver._lb_texts.update(left._lb_texts)
        resumed.driver._lb_state = left._lb_state

    resumed.driver.open = reopen
    return resumed


async def test_resume_of_a_run_aborted_with_every_instance_on_the_new_version_finishes_it(tmp_path):
    """Soak seed 3 run 63: SIGTERM during a canary's final 100 % step; the
    run ended aborted (exit 5) with every instance on the new version, and
    `console resume` (continue) refused (exit 6): "no healthy instance on
    the old version is left to take traffic". One version is the safe
    state, so traffic stays on the new one and the resumed run finds the
    work done."""
    session, events = make_session(tmp_path, "canary", canary={
        "sample_interval": "2s", "steps": [{"set_weight": 50}, {"pause": {"duration": "4s"}}, {"set_weight": 100}]})
    command_in_last_step(session, events, Command.ABORT, last_step=3)
    first = await asyncio.wait_for(session.run(), 60)
    assert first.outcome == Outcome.ABORTED and set(first.versions.values()) == {"2.0.0"}, first.message
    resumed = resume_on_the_same_fleet(session, first, tmp_path)
    resumed_events = []
    resumed.bus.subscribe(resumed_events.append)
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert set(result.versions.values()) == {"2.0.0"}
    redeployed = [e.instance for e in resumed_events if isinstance(e, InstanceChanged) and e.phase == "deploying"]
    assert redeployed == []


async def test_a_resumed_run_keeps_the_shadow_judge_of_the_run_it_resumes(tmp_path):
    """A run started with --judge-shadow (the plan does not say shadow) and
    aborted before its second window: `console resume` reads the plan file
    again, and must not turn the judge it was only trying into one that acts.
    The journal's JudgeBudget says shadow; the resumed run's judge is one."""
    from strategies.events import JudgeBudget

    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary")
    session = Session(load_inputs(str(plan), str(inv), None, judge_shadow=True), argv=["test", "--judge-shadow"],
                      record=str(tmp_path / "journal.jsonl"), time_scale=SCALE)
    events: list = []
    session.bus.subscribe(events.append)
    command_in_last_step(session, events, Command.ABORT, last_step=3)
    first = await asyncio.wait_for(session.run(), 60)
    assert first.outcome == Outcome.ABORTED, first.message
    assert [e.shadow for e in events if isinstance(e, JudgeBudget)] == [True]
    resumed = resume_on_the_same_fleet(session, first, tmp_path)
    resumed_events: list = []
    resumed.bus.subscribe(resumed_events.append)
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert [e.shadow for e in resumed_events if isinstance(e, JudgeBudget)] == [True]
    gates = [e for e in resumed_events if isinstance(e, GateEvaluated)]
    assert gates and all(g.shadow for g in gates)


async def test_resume_rollback_of_a_blue_green_run_aborted_as_blue_was_retired(tmp_path):
    """Soak seed 6 run 59: SIGTERM as blue-green retired blue; the run ended
    aborted (exit 5) with green live and every blue unit stopped, and
    `console resume --rollback` refused (exit 6): "no healthy instance on
    the old or the new version is left to take traffic", looking for the new
    version only in the original pools (blue). Traffic now stays on green,
    where nginx routed it, and the rollback brings blue back and routes to it."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    command_in_last_step(session, events, Command.ABORT, last_step=4)
    first = await asyncio.wait_for(session.run(), 60)
    assert first.outcome == Outcome.ABORTED and "blue retired" in first.message, first.message
    resumed = resume_on_the_same_fleet(session, first, tmp_path)
    assert resumed.engine.command(Command.ROLLBACK, source="test")
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert {v for k, v in result.versions.items() if k.endswith("/blue")} == {"1.0.0"}, result.versions
    pools, _ = lb_pools(resumed)
    assert list(pools) == ["blue"] and len(pools["blue"]) == 4, pools


async def test_a_resumed_blue_green_rollback_drains_the_new_colour_before_stopping_it(tmp_path):
    """Soak seed 9 run 26 at b0fb389: the run stopped with green live, and
    its resume's rollback stopped green's units as soon as traffic went back
    to blue (28 of nginx's own 502s). They are drained first there too."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    command_in_last_step(session, events, Command.ABORT, last_step=3)
    first = await asyncio.wait_for(session.run(), 60)
    assert first.outcome == Outcome.ABORTED, first.message
    resumed = resume_on_the_same_fleet(session, first, tmp_path)
    seen: list = []
    resumed.bus.subscribe(seen.append)
    assert resumed.engine.command(Command.ROLLBACK, source="test")
    assert (await asyncio.wait_for(resumed.run(), 60)).outcome == Outcome.ROLLED_BACK
    green = {key: phases for key, phases in phases_in_rollback(seen).items() if key.endswith("/green")}
    assert len(green) == 4
    for key, phases in green.items():
        assert phases[0] == "draining" and "rolled back" in phases, (key, phases)


async def test_resume_reinstalls_the_old_release_where_a_change_failed_unseen(tmp_path):
    """Soak seed 6 run 179: agent-01's link was cut while its deploy command
    ran; the command completed on the host (the new release installed under
    the running old one), its answer never came back, the revert could not
    reach the host, and the run failed. After the repair `console resume`
    found agent-01 answering on the old version and left it, so its next
    restart would have brought up the new release. An instance whose change
    failed is now treated as caught mid-change: reinstalled on the old version."""
    session, events = make_session(tmp_path, rolling={"batch": 2})
    run_commands = session.driver.run_commands

    async def cut_after_it_ran(inst, commands, timeout, *, version=None):
        if inst.host.name != "agent-01":
            return await run_commands(inst, commands, timeout, version=version)
        if version == "2.0.0":
            await run_commands(inst, commands, timeout, version=version)  # ran on the host ...
        raise DriverError("agent-01", "deploy", "connection lost: Server not responding to keepalive")  # ... unseen

    session.driver.run_commands = cut_after_it_ran
    first = await asyncio.wait_for(session.run(), 60)
    assert first.outcome == Outcome.FAILED and "agent-01" in first.message, first.message
    assert session.driver._instances[("agent-01", "main")].staged == "2.0.0"  # installed, not running
    resumed = resume_on_the_same_fleet(session, first, tmp_path)
    assert "agent-01" in resumed.engine.resume.status.changing()
    assert resumed.engine.command(Command.ROLLBACK, source="test")
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    agent = resumed.driver._instances[("agent-01", "main")]
    assert (agent.version, agent.staged) == ("1.0.0", "1.0.0")


async def test_a_failed_run_names_the_dead_instances_nginx_still_routes_to(tmp_path):
    """Soak seed 3 run 14: a bad release's green took traffic, agent-06's
    link was cut, and the rollback's reload did not take (the LB kept the
    switched file). The run failed (exit 4) saying "every instance that
    served before is in nginx", while nginx routed to agent-06's dead units.
    The result now names the instances nginx is left routing to that do not
    answer."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases)
    cut_at_switch(session, "agent-04", step="rollback window")  # after the switch routed to it
    apply = session.driver.lb_apply

    async def reload_that_does_not_take(state):
        if any(isinstance(e, PhaseChanged) and e.phase == "rolling back" for e in events):
            raise DriverError("lb-01", "reload", "marker answers the previous generation (previous config restored)")
        return await apply(state)

    session.driver.lb_apply = reload_that_does_not_take
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED, result.message
    assert "nginx still routes to agent-04/blue, agent-04/green, which do not answer" in result.message



def power_off_after_the_restore(session, host):
    """`host` dies just after the run's last change, the byte-for-byte
    restore of the managed file, comes out: after its last probe, before
    the run ends (soak seed 4 run 163: agent-03 powered off as the
    rollback's restore came out)."""
    driver = session.driver
    restore = driver.lb_restore

    async def restore_then_power_off(texts):
        steps = await restore(texts)
        for (name, _slot), inst in driver._instances.items():
            if name == host:
                inst.running = False
        return steps

    driver.lb_restore = restore_then_power_off


async def test_a_rollback_whose_routed_host_dies_after_the_last_change_fails_naming_it(tmp_path):
    """Soak seed 4 run 163: green missed its deadline, the rollback routed
    blue (agent-03 verified just before), agent-03 was powered off as the
    restore came out, and the run ended rolled back (exit 3) with nginx
    routing to a dead host. Every run that changed the LB now probes what
    nginx routes to after its last change."""
    releases = {"1.0.0": {}, "2.0.0": {"error_rate": 0.3}}
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases)
    power_off_after_the_restore(session, "agent-03")
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED, result.message
    assert "rolled back" in result.message  # what the run did is kept
    assert result.message.endswith("; nginx still routes to agent-03/blue, which do not answer"), result.message


async def test_a_success_that_leaves_an_instance_out_of_nginx_fails_naming_it(tmp_path):
    """Soak seed 6 run 151: agent-04's health flapped just as the last change
    verified what it routes to, so that change left agent-04 out of nginx,
    and the run still ended "succeeded" (exit 0) with one instance fewer
    serving and the managed file not the original. Left out at the end is a
    rollout a human must finish: exit 4, naming it."""
    session, events = make_session(tmp_path, rolling={"batch": 2})

    def sicken(event):
        if isinstance(event, StepStarted) and event.index == event.total:
            session.driver._instances[("agent-02", "main")].running = False

    session.bus.subscribe(sicken)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED, result.message
    assert result.message.startswith("rollout incomplete: "), result.message
    assert result.message.endswith("; left out of nginx, not verified at its last change: agent-02"), result.message
    last = [e for e in events if isinstance(e, TrafficChanged)][-1]
    assert not any(b.startswith("agent-02:") for bs in last.pools.values() for b in bs)


async def test_a_success_whose_routed_host_dies_after_the_last_change_fails_naming_it(tmp_path):
    """The same race at the end of a rolling update: exit 0 would say the
    fleet serves the new version on every host while nginx routes to one
    that does not answer."""
    session, events = make_session(tmp_path, rolling={"batch": 2})
    power_off_after_the_restore(session, "agent-02")
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED, result.message
    assert result.message.endswith("; nginx still routes to agent-02, which do not answer"), result.message


async def test_a_success_whose_lb_is_lost_after_the_last_change_fails_naming_it(tmp_path):
    """Soak seed 30 run 58: the LB was powered off just after the run's last
    change; the run could not release its lock there (connect failed) and
    still said every instance was in nginx, the LB unnamed. What nginx routes
    to is then unknown: exit 4, naming the LB."""
    session, _ = make_session(tmp_path, rolling={"batch": 2})
    driver = session.driver
    restore = driver.lb_restore
    lost = False

    async def restore_then_lose_the_lb(texts):
        nonlocal lost
        steps = await restore(texts)
        lost = True
        return steps

    async def release():
        if lost:
            raise DriverError("lb-01", "connect", "10.0.0.10: TimeoutError")

    driver.lb_restore = restore_then_lose_the_lb
    driver.lock_release = release
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.FAILED, result.message
    assert result.message.startswith("failed after the last change: "), result.message
    assert "(lb-01: connect: 10.0.0.10: TimeoutError)" in result.message, result.message


COST_METRIC = {"custom": [{"name": "cost_per_request", "worse": "higher", "tolerance": "25%",
                           "instance": {"metric": "agent_cost_dollars_total", "per": "agent_requests_total"}}]}


async def test_canary_costing_five_times_its_baseline_is_rolled_back_on_that_custom_metric_alone(tmp_path):
    """SIMULATED: no errors, no slowdown; only the custom metric read from
    each instance's /metrics (cost per answered request) tells."""
    releases = {"1.0.0": {}, "2.0.0": {"cost_per_request": 0.01}}
    session, events = make_session(tmp_path, "canary", releases=releases, hosts=10, metrics=COST_METRIC)
    result = await session.run()
    assert result.outcome == Outcome.ROLLED_BACK
    failed = [e for e in events if isinstance(e, GateEvaluated) and e.verdict == "fail"]
    assert [r.split()[0] for r in failed[0].reasons] == ["cost_per_request"]
    assert failed[0].values["cost_per_request"] == pytest.approx(0.01)
    assert failed[0].values["baseline_cost_per_request"] == pytest.approx(0.002)
    assert set(result.versions.values()) == {"1.0.0"}


async def test_custom_metric_breaches_alert_at_the_plans_tier_and_a_warning_never_fails(tmp_path):
    """SIMULATED: the same costly release, judged only by a warning-tier
    metric, raises warning alerts and is promoted."""
    warn = {"custom": [dict(COST_METRIC["custom"][0], tier="warning", threshold=0.005)]}
    releases = {"1.0.0": {}, "2.0.0": {"cost_per_request": 0.01}}
    session, events = make_session(tmp_path, "canary", releases=releases, hosts=10, metrics=warn)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    alerts = [e for e in events if isinstance(e, AlertRaised) and e.metric == "cost_per_request"]
    assert alerts and {a.tier for a in alerts} == {"warning"}
    assert alerts[0].value == pytest.approx(0.01) and alerts[0].threshold == pytest.approx(0.0025)


async def test_canary_with_a_custom_metric_like_its_baseline_is_promoted(tmp_path):
    session, events = make_session(tmp_path, "canary", hosts=10, metrics=COST_METRIC)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    passed = [e for e in events if isinstance(e, GateEvaluated) and e.final]
    assert passed and all(e.verdict == "pass" for e in passed)
    assert all(e.values["cost_per_request"] == pytest.approx(0.002) for e in passed)


async def test_the_rolling_demo_runs_clean(tmp_path):
    """README command 1's plan on the embedded fleet: no warning. With a 5 s
    window after each batch, the first batch (1 host of 10, ~10 req/s) could
    not show the ~220 requests that tell 2 % errors from none, and every
    demo warned "extended (up to 900s): needs about 224 requests"."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    inputs = load_inputs(str(root / "examples" / "rolling.yaml"), None, None)
    session = Session(inputs, argv=["test"], record=str(tmp_path / "j.jsonl"), time_scale=SCALE)
    events = []
    session.bus.subscribe(events.append)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED, result.message
    assert [e.message for e in events if isinstance(e, Notice) and e.level != "info"] == []
    assert not any(isinstance(e, GateEvaluated) and e.extended for e in events)


async def test_the_judge_gets_each_canary_instance_s_age_and_its_window_s_place(tmp_path, monkeypatch):
    """SIMULATED. The engine knows when it restarted each canary instance:
    the judge gets, every sample, each judged instance's seconds since that
    restart (its warm-up is the instance's own, not the window's), and which
    of the plan's windows it judges (the first gets more of the budget)."""
    from strategies import analysis, gating

    seen = []
    fold = analysis.fold

    def spy(window, judged, baseline, readings, policy, ages=None):
        seen.append((policy.window, dict(ages or {})))
        return fold(window, judged, baseline, readings, policy, ages)

    monkeypatch.setattr(gating.analysis, "fold", spy)
    session, events = make_session(tmp_path, "canary", hosts=10)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    windows = sorted({w for w, _ in seen})
    assert windows == [0, 1]  # the simulated plan's two analysis steps, 10 % then 50 %
    # every judged and baseline instance's age: the baseline's warm-up is left out like the release's
    # (a matched baseline restarts with the canary); the run restarted none of the stable ones
    first = [{k: v for k, v in ages.items() if v < math.inf} for w, ages in seen if w == 0]
    assert len(seen[0][1]) == 10
    assert len(first[0]) == 1 and 0 < min(first[0].values()) < 60  # the one canary, restarted just before
    later = [{k: v for k, v in ages.items() if v < math.inf} for w, ages in seen if w == 1]
    assert len(later[0]) == 5  # five canaries at 50 %
    old = first[0].keys() & later[0].keys()
    assert old and all(later[0][k] > first[-1][k] for k in old)  # its age runs on across windows
    assert min(later[0].values()) < min(later[0][k] for k in old)  # the new ones are younger


async def test_resume_does_again_a_start_its_killed_session_never_saw_finish(tmp_path):
    """Soak seed 9 run 214 (539650a): blue-green units, a release slower to
    start than the health deadline; the console was SIGKILLed as green's
    first unit restarted. systemd finished the starts it had begun, so the
    resume found every green unit answering on the new version, took them as
    deployed and switched to them: the release succeeded though no session
    had seen a start end within its deadline. A unit caught mid-change is
    now changed again, watched: here its start misses the deadline and the
    resume rolls back."""
    releases = {"1.0.0": {}, "2.0.0": {"start_delay": 40.0}}  # sim seconds; the deadline is 20 s
    session, events = make_session(tmp_path, "blue_green", hosts=4, releases=releases,
                                   health={"interval": "1s", "passes": 2, "deadline": "20s"})
    run = asyncio.ensure_future(session.run())

    def kill(event):  # SIGKILL: no safe point, no journal close
        if isinstance(event, InstanceChanged) and event.phase == "restarting" and not run.done():
            run.cancel()

    session.bus.subscribe(kill)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 60)
    assert read_journal(tmp_path / "journal.jsonl").close is None
    for (_host, slot), unit in session.driver._instances.items():  # systemd finished the starts begun
        if slot == "green":
            unit.version, unit.running = "2.0.0", True
    resumed = resume_on_the_same_fleet(session, None, tmp_path)
    assert {k for k in resumed.engine.resume.status.changing() if k.endswith("/green")}
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert "deadline" in result.message, result.message
    assert {v for k, v in result.versions.items() if k.endswith("/blue")} == {"1.0.0"}


async def test_a_drained_colour_is_stopped_only_once_nginx_forwards_nothing_more_to_it(tmp_path):
    """Soak seed 9 run 274 (d93ce09, replayed at dc5efa7): after the resume's
    rollback routed blue, nginx's retired workers still forwarded requests
    they held to green for up to 0.9 s, after they had stopped accepting;
    the drain saw green's units idle, stopped them all, and those requests
    found no green unit to answer (nginx's own 502s). The drain now waits
    for the workers of the previous configuration to exit. SIMULATED: they
    hold requests for 2 s after each change."""
    session, events = make_session(tmp_path, "blue_green", hosts=4)
    session.driver.retire_seconds = 2.0

    def operator(event):
        if isinstance(event, StepStarted) and event.title.startswith("rollback window"):
            session.engine.command(Command.ROLLBACK, source="test")

    session.bus.subscribe(operator)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    stopped = [e for e in events if isinstance(e, InstanceChanged) and e.instance.endswith("/green")
               and e.detail == "retired"]
    assert len(stopped) == 4  # green was stopped, under no request
    assert session.engine.clients.failed == 0


def before_first_step(events):
    """What a run did before its strategy's first step (its reconcile)."""
    first = next(n for n, e in enumerate(events) if isinstance(e, StepStarted))
    return events[:first]


@pytest.mark.parametrize("strategy", ["rolling", "canary", "blue_green"])
async def test_every_run_reconciles_first_and_a_fresh_fleet_needs_no_change(tmp_path, strategy):
    """Reconciling towards the safe state is every run's first step, not a
    path of resume's: a fresh fleet is safe already (preflight refused it
    otherwise), so nginx is not touched and nothing is reinstalled before
    the strategy's first step, blue-green's stopped idle colour included."""
    session, events = make_session(tmp_path, strategy, hosts=4, auto_promote=True)
    result = await asyncio.wait_for(session.run(), 60)
    assert result.outcome == Outcome.SUCCEEDED, result.message
    early = before_first_step(events)
    assert not [e for e in early if isinstance(e, (TrafficChanged, InstanceChanged))], early
    assert not [e for e in early if isinstance(e, Notice) and e.level == "warning"], early


async def test_a_resume_that_finds_the_fleet_safe_goes_on_like_a_fresh_run(tmp_path):
    """A console killed as its first batch began, before nginx was touched:
    its resume reconciles exactly as a fresh run does (nothing to change,
    nothing to reinstall) and the strategy goes on from there."""
    session, events = make_session(tmp_path, "rolling", hosts=4, rolling={"batch": 2})
    run = asyncio.ensure_future(session.run())

    def kill(event):  # SIGKILL: no safe point, no journal close
        if isinstance(event, StepStarted) and not run.done():
            run.cancel()

    session.bus.subscribe(kill)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(run, 60)
    assert not [e for e in events if isinstance(e, TrafficChanged)]
    resumed = resume_on_the_same_fleet(session, None, tmp_path)
    resumed_events: list = []
    resumed.bus.subscribe(resumed_events.append)
    routed_at_first_step: list[bool] = []

    def routing(event):  # what the strategy reads of nginx before any change: as the run found it
        if isinstance(event, StepStarted) and not routed_at_first_step:
            routed_at_first_step.extend(resumed.engine.traffic.routes(i) for i in resumed.engine.instances)

    resumed.bus.subscribe(routing)
    result = await asyncio.wait_for(resumed.run(), 60)
    assert result.outcome == Outcome.SUCCEEDED and set(result.versions.values()) == {"2.0.0"}, result.message
    early = before_first_step(resumed_events)
    assert not [e for e in early if isinstance(e, (TrafficChanged, InstanceChanged))], early
    assert routed_at_first_step == [True] * 4

