"""FleetView: the pure reducer, and replay equivalence with a journal."""
import asyncio
from pathlib import Path

from console.journal import read_journal
from console.view_state import FleetView
from strategies.events import (
    AlertRaised,
    GateEvaluated,
    HealthChecked,
    InstanceChanged,
    MetricsSampled,
    PhaseChanged,
    RunFinished,
    RunStarted,
    StepStarted,
    TrafficChanged,
)

from .scenarios import load_events, scene_view


def started(n=3, strategy="canary"):
    return RunStarted(at=0.5, plan="p.yaml", strategy=strategy, service="agent", version="2.0.0",
                      old_versions={f"h{i}": "1.0.0" for i in range(n)},
                      instances=[{"key": f"h{i}", "host": f"h{i}", "address": f"h{i}", "slot": "main",
                                  "port": 8080, "unit": "agent@main.service"} for i in range(n)],
                      steps=[{"title": "set weight 10%", "instances": ["h0"]}, {"title": "analysis 30s"},
                             {"title": "set weight 100%", "instances": ["h1", "h2"]}], simulated=True)


def test_run_started_builds_rows_and_header():
    v = FleetView().apply_all([started()])
    assert (v.strategy, v.old_version, v.version, v.simulated, v.steps_total) == ("canary", "1.0.0", "2.0.0", True, 3)
    assert [r.state for r in v.rows.values()] == ["queued"] * 3
    assert v.rows["h0"].step == 1 and v.rows["h2"].step == 3


def test_instances_health_traffic_metrics_gate_alerts():
    v = FleetView().apply_all([
        started(), PhaseChanged(at=0.6, phase="running"),
        StepStarted(at=1, index=1, total=3, title="set weight 10%", instances=["h0"]),
        InstanceChanged(at=2, instance="h0", phase="deploying", version=None, detail="2.0.0"),
        HealthChecked(at=3, instance="h0", ok=True, version="2.0.0", latency=0.02),
        InstanceChanged(at=3.5, instance="h0", phase="live", version="2.0.0"),
        TrafficChanged(at=4, generation="g2", pools={"stable": ["h1:8080", "h2:8080"], "canary": ["h0:8080"]},
                       weights={"canary": 10.0, "stable": 90.0}, duration=0.05),
        StepStarted(at=11, index=2, total=3, title="analysis 30s"),
        MetricsSampled(at=16, pools={"stable": {"requests": 90, "errors": 0, "p95": 0.05},
                                     "canary": {"requests": 10, "errors": 1, "p95": 0.2}}, cpu={"h0": 0.5}),
        GateEvaluated(at=16, name="analysis", verdict="pending", reasons=["x"], values={}, remaining=25.0),
        AlertRaised(at=16, tier="warning", metric="cpu_usage", value=0.75, threshold=0.7, where="canary"),
        AlertRaised(at=17, tier="critical", metric="error_rate", value=0.1, threshold=0.05, where="canary"),
    ])
    r = v.rows["h0"]
    assert (r.state, r.version, r.group, r.health_ok, r.cpu, r.last_check) == ("live", "2.0.0", "canary", True, 0.5, 3)
    assert v.rows["h1"].group == "stable"
    assert v.traffic_split() == {"canary": 10.0, "stable": 90.0} and v.new_share() == 10.0
    assert list(v.error_rate) == [0.1] and list(v.p95) == [0.2] and list(v.cpu) == [0.5]
    assert v.gate_remaining(now=20) == 21.0
    assert [a.tier for a in v.sorted_alerts()] == ["critical", "warning"]
    assert v.steps_done == 1 and v.eta(now=11) == 20.0  # 1 step took 10 s; 2 left
    assert "1 canary instance(s) are reinstalled with 1.0.0" in v.rollback_plan()
    assert "All traffic returns to stable (1.0.0)" in v.rollback_plan()
    assert v.events_total == len(v.events) > 5
    v.apply(RunFinished(at=30, outcome="succeeded", message="done", duration=30.0, versions={"h0": "2.0.0"}))
    assert not v.active and v.finished and v.steps_done == 3 and v.eta() is None


def test_bounded_histories():
    from strategies.events import CommandRan
    v = FleetView().apply_all([started(1)])
    for i in range(2000):
        v.apply(CommandRan(at=i, host="h0", command=f"c{i}", exit_status=0, duration=0.1))
    assert len(v.commands["h0"]) == 50 and len(v.events) == 500 and v.events_total == 2001


def test_blue_green_active_colour_follows_switch():
    events = load_events("blue-green")
    v = FleetView()
    seen = []
    for e in events:
        v.apply(e)
        seen.append(v.active_group)
    assert seen[-1] == "green" and "blue" in seen
    assert scene_view("blue-green-before-switch").traffic_split() == {"blue": 100.0}


def test_rollback_scene():
    v = scene_view("rollback-in-progress")
    # the recorded bad canary is caught by the sequential test: an important alert (a critical one
    # needs an error rate clearly above 5 %)
    assert v.phase == "rolling back" and v.sorted_alerts()[0].tier == "important"


def test_replaying_a_journal_reproduces_the_live_state(make_session):
    """Feed the live bus and the recorded journal through two FleetViews."""
    session = make_session("examples/canary.yaml", version="2.1.0-bad", time_scale=200)
    live = FleetView()
    session.bus.subscribe(live.apply)
    result = asyncio.run(session.run())
    session.finish(result)
    replayed = FleetView().apply_all(read_journal(Path(session.journal.path)).events)
    assert live.snapshot() == replayed.snapshot()
    assert replayed.outcome == "rolled_back" and replayed.alerts


def test_blue_green_active_colour_comes_from_the_traffic_event(make_session):
    """The live colour is the routing fact the engine emits (`serving`), not a
    step title: green from the switch's reload on, blue again after a rollback
    moves traffic back, before any pool is retired."""
    for version, expected in (("2.0.0", ["blue", "green"]), ("2.1.0-bad", ["blue", "green", "blue"])):
        session = make_session("examples/blue-green.yaml", version=version, time_scale=200)
        view = FleetView()
        colours: list[str | None] = []

        def watch(event, view=view, colours=colours):
            view.apply(event)
            if isinstance(event, TrafficChanged) and (not colours or colours[-1] != view.active_group):
                colours.append(view.active_group)  # each change of the live colour
        session.bus.subscribe(watch)
        result = asyncio.run(session.run())
        session.finish(result)
        assert colours == expected, (version, colours, view.outcome)
