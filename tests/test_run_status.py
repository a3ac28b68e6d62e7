"""The run's status and its outcome, without I/O: `decide_outcome` on every
branch (a table), the events folded into a status (the reducer), and the
engine's own status equal to the one rebuilt from its journal (SIMULATED
fleet)."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from console.journal import read_journal
from simfleet import write_inventory, write_plan
from strategies.events import (
    GateEvaluated,
    InstanceChanged,
    InstancePhase,
    Phase,
    PhaseChanged,
    RoutingVerified,
    RunFinished,
    RunStarted,
    StartedInstance,
    StepStarted,
    TrafficChanged,
)
from strategies.status import (
    Exclusion,
    InstanceStatus,
    Outcome,
    Position,
    Reason,
    RunStatus,
    StrategyResult,
    decide_outcome,
    needs_answers,
    rebuild,
)

KEYS = ("a", "b", "c")


def status(*, out: tuple[str, ...] = (), left: tuple[str, ...] = (), dead: tuple[str, ...] = (),
           untouched: tuple[str, ...] = (), lb_changed: bool = True, lb: str = "") -> RunStatus:
    """Three instances that served before the run: those in `out` or `left`
    are not in nginx now (`left`: a change left them out); nginx routes to
    those in `dead`, which do not answer; `lb`: the error of an LB the end
    could not reach."""
    insts = {k: InstanceStatus(key=k, backend=f"10.0.0.{n}:8080", served_before=True,
                               in_nginx=lb_changed and k not in out + left,
                               excluded=Exclusion.LEFT_OUT if k in left else None)
             for n, k in enumerate(KEYS)}
    return RunStatus(instances=insts, lb_changed=lb_changed, untouched=untouched, not_answering=dead,
                     lb_unreachable=lb)


R = StrategyResult
ALL_IN = "; every instance that served before is in nginx"
DEAD_B = "; nginx still routes to b, which do not answer"
LB_GONE = "lb1: connect: 10.0.0.9: TimeoutError"
LB_SAID = f"; a load balancer could not be reached at the end ({LB_GONE}): what nginx routes to now is not known"
CASES = [
    # soak seed 30 run 58: the LB powered off after the last change, the result did not name it
    ("completed-lb-gone", R(Reason.COMPLETED, detail="done"), status(lb=LB_GONE),
     Outcome.FAILED, Reason.LB_UNREACHABLE, "failed after the last change: done" + LB_SAID),
    ("rolled-back-lb-gone", R(Reason.ROLLED_BACK, cause="g", took=1.0), status(lb=LB_GONE),
     Outcome.FAILED, Reason.LB_UNREACHABLE, "failed after the last change: rolled back in 1.0s: g" + LB_SAID),
    ("completed-dead-lb-gone", R(Reason.COMPLETED, detail="done"), status(dead=("b",), lb=LB_GONE),
     Outcome.FAILED, Reason.UNANSWERED, "failed after the last change: done" + DEAD_B + LB_SAID),
    ("rollback-failed-lb-gone", R(Reason.ROLLBACK_FAILED, cause="g", detail="agent-06: connect"), status(lb=LB_GONE),
     Outcome.FAILED, Reason.ROLLBACK_FAILED, "rollback failed: agent-06: connect (after: g)" + ALL_IN + LB_SAID),
    ("awaiting-promotion-lb-gone", R(Reason.AWAITING_PROMOTION, cause="step 2"), status(lb=LB_GONE),
     Outcome.AWAITING_PROMOTION, Reason.AWAITING_PROMOTION,
     "step 2: paused, awaiting promotion (use --auto-promote)" + LB_SAID),
    # (id, how the strategy's path ended, the status, outcome, reason, message)
    ("completed", R(Reason.COMPLETED, detail="rolled 3 instances"), status(),
     Outcome.SUCCEEDED, Reason.COMPLETED, "rolled 3 instances"),
    ("completed-left-out", R(Reason.COMPLETED, detail="rolled 3 instances"), status(left=("a",)),
     Outcome.FAILED, Reason.ROLLOUT_INCOMPLETE,
     "rollout incomplete: rolled 3 instances; left out of nginx, not verified at its last change: a"),
    ("completed-left-out-and-dead", R(Reason.COMPLETED, detail="done"), status(left=("a",), dead=("b",)),
     Outcome.FAILED, Reason.ROLLOUT_INCOMPLETE,
     "rollout incomplete: done; left out of nginx, not verified at its last change: a" + DEAD_B),
    ("completed-dead", R(Reason.COMPLETED, detail="done"), status(dead=("b",)),
     Outcome.FAILED, Reason.UNANSWERED, "failed after the last change: done" + DEAD_B),
    ("completed-dead-sorted", R(Reason.COMPLETED, detail="done"), status(dead=("c", "a")),
     Outcome.FAILED, Reason.UNANSWERED, "failed after the last change: done; nginx still routes to a, c, which do not answer"),
    ("completed-untouched", R(Reason.COMPLETED, detail="done"), status(untouched=("x", "y")),
     Outcome.SUCCEEDED, Reason.COMPLETED, "done; left out by --limit, untouched and serving: x, y"),
    ("rolled-back", R(Reason.ROLLED_BACK, cause="gate failed", took=2.54), status(),
     Outcome.ROLLED_BACK, Reason.ROLLED_BACK, "rolled back in 2.5s: gate failed"),
    ("rolled-back-out-of-nginx", R(Reason.ROLLED_BACK, cause="gate failed", took=2.0), status(out=("a", "c")),
     Outcome.FAILED, Reason.ROLLBACK_LEFT_OUT, "rollback incomplete: rolled back in 2.0s: gate failed; out of nginx: a, c"),
    ("rolled-back-out-and-dead", R(Reason.ROLLED_BACK, cause="g", took=1.0), status(out=("a",), dead=("b",)),
     Outcome.FAILED, Reason.ROLLBACK_LEFT_OUT, "rollback incomplete: rolled back in 1.0s: g; out of nginx: a" + DEAD_B),
    ("rolled-back-dead", R(Reason.ROLLED_BACK, cause="g", took=1.0), status(dead=("b",)),
     Outcome.FAILED, Reason.UNANSWERED, "failed after the last change: rolled back in 1.0s: g" + DEAD_B),
    ("rolled-back-lb-unchanged", R(Reason.ROLLED_BACK, cause="g", took=1.0), status(out=("a",), lb_changed=False),
     Outcome.ROLLED_BACK, Reason.ROLLED_BACK, "rolled back in 1.0s: g"),
    ("rollback-incomplete", R(Reason.ROLLBACK_INCOMPLETE, cause="g", detail="a: bad; b: bad"), status(),
     Outcome.FAILED, Reason.ROLLBACK_INCOMPLETE, "rollback incomplete: a: bad; b: bad (after: g)" + ALL_IN),
    ("rollback-failed", R(Reason.ROLLBACK_FAILED, cause="g", detail="nginx: refused"), status(out=("b",)),
     Outcome.FAILED, Reason.ROLLBACK_FAILED, "rollback failed: nginx: refused (after: g); out of nginx: b"),
    ("aborted", R(Reason.ABORTED, cause="abort requested by operator"), status(),
     Outcome.ABORTED, Reason.ABORTED, "aborted: abort requested by operator" + ALL_IN),
    ("aborted-out-and-dead", R(Reason.ABORTED, cause="x"), status(out=("a",), dead=("b",)),
     Outcome.ABORTED, Reason.ABORTED, "aborted: x; out of nginx: a" + DEAD_B),
    ("aborted-after-last-step", R(Reason.ABORTED_AFTER_LAST_STEP, cause="signal", detail="done"), status(),
     Outcome.ABORTED, Reason.ABORTED_AFTER_LAST_STEP, "aborted after the last step (signal): done" + ALL_IN),
    ("aborted-after-failure", R(Reason.ABORTED_AFTER_FAILURE, cause="gate"), status(),
     Outcome.ABORTED, Reason.ABORTED_AFTER_FAILURE, "aborted after failure: gate" + ALL_IN),
    ("fail-stopped", R(Reason.FAIL_STOPPED, cause="journal full"), status(),
     Outcome.FAILED, Reason.FAIL_STOPPED, "failed: journal full; stopped at a safe point for a human" + ALL_IN),
    ("fail-stopped-after-last-step", R(Reason.FAIL_STOPPED_AFTER_LAST_STEP, cause="lock", detail="done"), status(),
     Outcome.FAILED, Reason.FAIL_STOPPED_AFTER_LAST_STEP, "failed: lock; after the last step: done" + ALL_IN),
    ("stopped-for-human", R(Reason.STOPPED_FOR_HUMAN, cause="gate", policy="abort"), status(),
     Outcome.FAILED, Reason.STOPPED_FOR_HUMAN, "failed: gate; stopped for a human (on_failure=abort)" + ALL_IN),
    ("driver-error", R(Reason.DRIVER_ERROR, detail="lb1: nginx -t failed"), status(dead=("b",)),
     Outcome.FAILED, Reason.DRIVER_ERROR, "failed: lb1: nginx -t failed" + ALL_IN + DEAD_B),
    ("awaiting-promotion", R(Reason.AWAITING_PROMOTION, cause="step 2"), status(left=("a",), dead=("b",), untouched=("x",)),
     Outcome.AWAITING_PROMOTION, Reason.AWAITING_PROMOTION,
     "step 2: paused, awaiting promotion (use --auto-promote); left out by --limit, untouched and serving: x"),
    ("preflight-refused", R(Reason.PREFLIGHT_REFUSED, detail="lb1: no managed file"),
     status(out=("a",), dead=("b",), untouched=("x",)),
     Outcome.REFUSED, Reason.PREFLIGHT_REFUSED, "preflight refused: lb1: no managed file"),
    ("lock-refused", R(Reason.LOCK_REFUSED, detail="held by ann"), status(untouched=("x",)),
     Outcome.REFUSED, Reason.LOCK_REFUSED, "lock refused: held by ann"),
]


@pytest.mark.parametrize("result,run,outcome,reason,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_outcome_is_decided_from_the_status_and_how_the_strategy_ended(result, run, outcome, reason, message):
    decision = decide_outcome(run, result)
    assert (decision.outcome, decision.reason, decision.message) == (outcome, reason, message)


def test_every_way_a_strategy_ends_is_in_the_table():
    ends = {c[1].reason for c in CASES}
    made = {Reason.ROLLOUT_INCOMPLETE, Reason.UNANSWERED, Reason.ROLLBACK_LEFT_OUT,  # the status's own
            Reason.LB_UNREACHABLE}
    assert ends | made == set(Reason)


@pytest.mark.parametrize("reason,probe", [(Reason.COMPLETED, True), (Reason.ROLLED_BACK, True),
                                          (Reason.ABORTED, True), (Reason.DRIVER_ERROR, True),
                                          (Reason.AWAITING_PROMOTION, False), (Reason.PREFLIGHT_REFUSED, False),
                                          (Reason.LOCK_REFUSED, False)])
def test_only_a_run_that_is_over_and_changed_something_probes_what_nginx_routes_to(reason, probe):
    assert needs_answers(StrategyResult(reason)) is probe


# -- the fold ------------------------------------------------------------------------------
def _started() -> RunStarted:
    return RunStarted(plan="p.yaml", strategy="rolling", service="agent", version="2.0.0",
                      old_versions={"a": "1.0.0", "b": "1.0.0", "c": None},
                      instances=[StartedInstance(key=k, address=f"10.0.0.{n}", port=8080) for n, k in enumerate(KEYS)],
                      steps=[], simulated=True, untouched=["x"], served_before=["a", "b"])


EVENTS = [
    _started(),
    PhaseChanged(at=1.0, phase="running"),
    StepStarted(at=1.0, index=1, total=2, title="batch 1", instances=["a"]),
    RoutingVerified(at=1.5, generation="g1", instances=2, probed=2, left_out={"c": "unhealthy"}),
    TrafficChanged(at=2.0, generation="g1", pools={"stable": ["10.0.0.1:8080", "10.0.0.9:8080"]}, weights={},
                   duration=0.1),
    InstanceChanged(at=3.0, instance="a", phase=InstancePhase.DEPLOYING, version="1.0.0"),
    InstanceChanged(at=4.0, instance="a", phase=InstancePhase.CHECKING, version="2.0.0"),
    GateEvaluated(at=5.0, name="batch 1", verdict="pending", reasons=[], values={}),
    GateEvaluated(at=5.5, name="shadow", verdict="fail", reasons=[], values={}, shadow=True),
    GateEvaluated(at=6.0, name="batch 1", verdict="pass", reasons=[], values={}, final=True),
    RunFinished(at=7.0, outcome="failed", message="m", duration=7.0, versions={"a": "2.0.0", "b": "1.0.0", "c": None},
                reason="rollout_incomplete"),
]


def test_folding_the_events_gives_each_instance_s_routing_version_and_exclusion():
    run = rebuild(EVENTS[:5])
    assert [(s.key, s.in_nginx, s.served_before, s.excluded) for s in run.instances.values()] == [
        ("a", False, True, None), ("b", True, True, None), ("c", False, False, Exclusion.LEFT_OUT)]
    assert run.out_of_nginx() == ["a"] and run.still_left_out() == ["c"] and run.routed() == ["b"]
    assert (run.phase, run.position, run.untouched, run.lb_changed) == (
        Phase.RUNNING, Position(1, 2, "batch 1"), ("x",), True)
    assert rebuild(EVENTS[:1]).out_of_nginx() == []  # nothing routed by this session yet: nothing out


def test_before_its_first_change_a_run_routes_to_what_nginx_routed_to_as_it_started():
    """So the end of a run that changed nothing probes those (soak seed 20 run
    12: blue-green failed before its first change with a live host lost, and
    its result did not name the host nginx still routed to)."""
    started = RunStarted(**{**{k: getattr(_started(), k) for k in ("plan", "strategy", "service", "version",
                                                                  "old_versions", "instances", "steps", "simulated")},
                            "served_before": ["a", "b"], "routed": ["a", "b"]})
    assert rebuild([started]).routed() == ["a", "b"]
    assert rebuild([started, *EVENTS[3:5]]).routed() == ["b"]  # then as its own change left it
    assert rebuild(EVENTS[:1]).routed() == []  # a journal from before RunStarted.routed: as it read then


def test_the_judge_s_open_window_is_the_last_unfinished_one_shadows_aside():
    assert rebuild(EVENTS[:7]).window is None
    assert rebuild(EVENTS[:8]).window == "batch 1"
    assert rebuild(EVENTS[:9]).window == "batch 1"  # a shadow verdict opens no window
    assert rebuild(EVENTS[:10]).window is None


def test_the_finished_status_carries_the_outcome_its_reason_and_the_last_versions():
    run = rebuild(EVENTS)
    assert (run.outcome, run.reason) == (Outcome.FAILED, Reason.ROLLOUT_INCOMPLETE)
    assert {k: s.version for k, s in run.instances.items()} == {"a": "2.0.0", "b": "1.0.0", "c": None}


def test_the_status_at_any_record_is_the_fold_of_the_records_before_it():
    run = RunStatus()
    for n, event in enumerate(EVENTS, 1):
        run.apply(event)
        assert rebuild(EVENTS[:n]) == run


RECORDED = Path(__file__).resolve().parents[1] / "bench/results/2026-12-01-f9b5469/cases/seed1-run45/run.journal.jsonl.gz"


def test_an_old_journal_folds_into_a_status(tmp_path):
    path = tmp_path / "run.journal.jsonl"
    path.write_bytes(gzip.decompress(RECORDED.read_bytes()))
    journal = read_journal(path)
    run = rebuild(journal.events)
    finished = next(e for e in journal.events if isinstance(e, RunFinished))
    assert run.outcome == Outcome(finished.outcome) and run.reason is None  # written before reasons existed
    last = [e for e in journal.events if isinstance(e, TrafficChanged)][-1]
    routed = {b for bs in last.pools.values() for b in bs}
    assert run.routed() and {run.instances[k].backend for k in run.routed()} == routed


# -- the engine keeps the status its journal rebuilds ------------------------------------------
async def test_the_engine_s_status_is_the_fold_of_what_it_journalled(tmp_path):
    from console.session import Session, load_inputs

    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"fail_start": True}})
    plan = write_plan(tmp_path / "plan.yaml", "rolling", rolling={"batch": 1})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"], record=str(tmp_path / "j.jsonl"),
                      time_scale=100.0)
    result = await session.run()
    session.finish(result)
    kept = session.engine.status
    journalled = rebuild(read_journal(tmp_path / "j.jsonl").events)
    journalled.not_answering = kept.not_answering  # the engine's last probe: its failures only are journalled
    assert journalled == kept
    assert (kept.outcome, kept.reason, result.outcome) == (Outcome.ROLLED_BACK, Reason.ROLLED_BACK, Outcome.ROLLED_BACK)


def test_the_tui_s_view_reads_phase_position_and_outcome_from_the_status_it_folds():
    from console.view_state import FleetView

    view = FleetView().apply_all(EVENTS[:3])
    assert view.status == rebuild(EVENTS[:3])
    assert (view.phase, view.step_index, view.steps_total, view.step_title, view.outcome) == (
        "running", 1, 2, "batch 1", None)
    view.apply_all(EVENTS[3:])
    assert view.outcome == "failed" and type(view.phase) is str  # the words a view shows


def test_a_crash_leaves_the_instances_it_was_changing_and_the_rollback_it_began_in_the_status():
    assert rebuild(EVENTS[:5]).changing() == []
    assert rebuild(EVENTS[:6]).changing() == ["a"]  # deploying: the new release may be under the old
    back = [PhaseChanged(at=8.0, phase="rolling back", reason="batch 1: error_rate 3%"),
            InstanceChanged(at=9.0, instance="a", phase=InstancePhase.ROLLED_BACK, version="1.0.0"),
            PhaseChanged(at=10.0, phase="rolling back", reason="again")]
    run = rebuild([*EVENTS[:7], *back])
    assert (run.rollback, run.changing()) == ("batch 1: error_rate 3%", [])
    assert rebuild(EVENTS[:7]).rollback == ""


CASE_26_55 = Path(__file__).resolve().parents[1] / "bench/results/2026-12-07-73edc22-soak/net5/cases/seed26-run55"


def test_a_resume_that_changes_nothing_names_what_the_dead_session_left_out_of_nginx(tmp_path):
    """Soak seed 26 run 55 (its resume's journal): the run drained agent-01
    and agent-02, then `nginx -t` refused every change, its rollback's too
    (exit 4); the resume's changes were refused the same way, and its result
    said "every instance that served before is in nginx" with the two still
    out. A session that changed nothing reads what nginx routes to as it
    found it (RunStarted.routed)."""
    path = tmp_path / "resume.jsonl"
    path.write_bytes(gzip.decompress((CASE_26_55 / "resume.journal.jsonl.gz").read_bytes()))
    events = read_journal(path).events
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert "every instance that served before is in nginx" in finished.message  # what it said then
    run = rebuild([e for e in events if not isinstance(e, RunFinished)])
    assert not run.lb_changed and run.routed() == ["agent-03", "agent-04", "agent-05", "agent-06"]
    assert run.out_of_nginx() == ["agent-01", "agent-02"]
    decision = decide_outcome(run, StrategyResult(Reason.ROLLBACK_FAILED, cause="nginx -t", detail="nginx -t"))
    assert decision.message == "rollback failed: nginx -t (after: nginx -t); out of nginx: agent-01, agent-02"


@pytest.mark.parametrize("strategy", ["rolling", "canary", "blue_green"])
async def test_what_a_strategy_reads_of_versions_is_what_the_journal_says_at_every_event(tmp_path, strategy):
    """The versions a strategy decides on (ctx.instances.versions) are the
    run's status, changed only by journalled events: at every event, they
    equal the fold of the events so far. A release whose start fails, two
    instances changed side by side: each failure makes a version unknown
    while the other's change goes on."""
    from console.session import Session, load_inputs

    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"fail_start": True}})
    plan = write_plan(tmp_path / "plan.yaml", strategy, rolling={"batch": 2})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"], record=str(tmp_path / "j.jsonl"),
                      time_scale=100.0)
    events: list = []
    differ: list = []

    def check(event):
        events.append(event)
        folded = {k: s.version for k, s in rebuild(events).instances.items()}
        if folded and dict(session.engine.ops.versions) != folded:
            differ.append((event, dict(session.engine.ops.versions), folded))

    session.bus.subscribe(check)
    result = await session.run()
    session.finish(result)
    assert result.outcome == Outcome.ROLLED_BACK, result.message
    assert differ == []
    assert {k: s.version for k, s in rebuild(read_journal(tmp_path / "j.jsonl").events).instances.items()} == (
        result.versions)
