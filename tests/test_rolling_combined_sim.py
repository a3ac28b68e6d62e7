"""Rolling's combined change on the SIMULATED fleet: re-admitting batch k
and draining batch k+1 in one verified nginx change, only when nothing
must watch batch k serve first and the capacity guard allows it.

The invariants are checked at every change: no more than one batch out of
nginx, and every instance routed to is running the version the engine
expects and was verified by a probe within the last health interval."""
from __future__ import annotations

from strategies.batches import readmit_later
from strategies.engine import Outcome
from strategies.events import CapacityChecked, GateEvaluated, InstanceChanged, TrafficChanged
from test_engine_sim import make_session


def watch_changes(session, batch: int):
    """Record, at each verified change, who is out of nginx and any routed
    instance that is not running the expected version or was not verified
    within the last health interval."""
    outs: list[list[str]] = []
    violations: list[str] = []
    interval = session.inputs.plan.health.interval

    engine = session.engine
    checked: set[str] = set()  # at the change's routing check: the instances it found verified
    check = engine.traffic.verified

    async def spy(state):
        """The rule verified() must keep: an instance counts as verified if
        a good probe on the expected version is at most one health interval
        older than the check, or one passed during it."""
        start = session.driver.clock.now()
        before = dict(engine.ops._verified_at)
        result = await check(state)
        checked.clear()
        checked.update(k for k, t in engine.ops._verified_at.items()
                       if t != before.get(k) or start - t <= interval)
        return result

    engine.traffic.verified = spy

    def on_event(event):
        if not isinstance(event, TrafficChanged):
            return
        routed = {b for bs in event.pools.values() for b in bs}
        out = sorted(i.key for i in engine.instances if f"{i.host.address}:{i.port}" not in routed)
        outs.append(out)
        if len(out) > batch:
            violations.append(f"{len(out)} out at once: {out}")
        for inst in engine.instances:
            if f"{inst.host.address}:{inst.port}" not in routed:
                continue
            state = session.driver._instances[(inst.host.name, inst.slot)]
            if not state.running or state.version != engine.ops.versions.get(inst.key):
                violations.append(f"{inst.key} routed while {state}")
            if inst.key not in checked:
                violations.append(f"{inst.key} routed without a probe in the last {interval:g}s")

    session.bus.subscribe(on_event)
    return outs, violations


def test_readmit_later_only_without_a_window_and_without_failures():
    assert readmit_later(0.0, last=False, failed=0)
    assert readmit_later(10.0, last=True, failed=0)  # nothing is judged after the last batch
    assert not readmit_later(10.0, last=False, failed=0)  # the gate must see the batch serve
    assert not readmit_later(0.0, last=False, failed=1)
    assert not readmit_later(0.0, last=True, failed=1)


async def test_without_a_window_each_change_readmits_one_batch_and_drains_the_next(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2})
    outs, violations = watch_changes(session, batch=2)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED and set(result.versions.values()) == {"2.0.0"}
    # 4 verified changes instead of 7: drain 1; 1 back + 2 out; 2 back + 3 out; restore with 3 back
    assert outs == [["agent-01", "agent-02"], ["agent-03", "agent-04"], ["agent-05", "agent-06"], []]
    assert violations == []
    texts = await session.driver.lb_read()
    assert all("generation sim-initial" in t for t in texts.values())  # the last change is the restore
    live = [e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "live"]
    assert sorted(live) == [f"agent-0{n}" for n in range(1, 7)]


async def test_with_a_window_between_batches_each_batch_serves_before_the_next_is_drained(tmp_path):
    session, events = make_session(tmp_path, rolling={"batch": 2, "interval": "4s"})
    outs, violations = watch_changes(session, batch=2)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    # batches 1 and 2 are re-admitted on their own and judged serving; the last one by the restore
    assert outs == [["agent-01", "agent-02"], [], ["agent-03", "agent-04"], [], ["agent-05", "agent-06"], []]
    assert violations == []
    n_change = [i for i, e in enumerate(events) if isinstance(e, TrafficChanged)]
    gates = [i for i, e in enumerate(events) if isinstance(e, GateEvaluated)]
    # every gate sample falls between re-admitting a batch and draining the next
    assert gates and all(n_change[1] < g < n_change[2] or n_change[3] < g < n_change[4] for g in gates)


async def test_a_down_host_before_the_next_batch_readmits_the_held_batch_alone(tmp_path):
    """agent-05 (not yet updated) dies during batch 1: the combined change
    would leave 3 of 6 serving (the plan allows 4), so batch 1 is
    re-admitted on its own and the capacity guard stops for a human
    before agents 03-04 are drained."""
    session, events = make_session(tmp_path, rolling={"batch": 2})
    outs, violations = watch_changes(session, batch=2)

    def kill(event):
        if isinstance(event, InstanceChanged) and event.instance == "agent-01" and event.phase == "deploying":
            session.driver._instances[("agent-05", "main")].running = False

    session.bus.subscribe(kill)
    result = await session.run()
    assert result.outcome == Outcome.AWAITING_PROMOTION
    assert "agent-05 unhealthy (not touched by this release)" in result.message
    assert outs[:2] == [["agent-01", "agent-02"], ["agent-05"]]  # batch 1 back; the dead host left out
    drained = {e.instance for e in events if isinstance(e, InstanceChanged) and e.phase == "draining"}
    assert drained == {"agent-01", "agent-02"}
    refused = [e for e in events if isinstance(e, CapacityChecked) and not e.ok]
    assert refused and refused[-1].unhealthy == ["agent-05"]
    assert violations == []
