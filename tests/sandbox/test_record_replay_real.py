"""A real-sandbox session, recorded and replayed: at every event, the state
the replay shows equals the state the live console showed. No mocks."""
from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest

from console.journal import read_journal, verify
from console.replay import replay_status
from console.session import Session, load_inputs
from console.status_record import RunState
from console.view_state import FleetView
from rollout_helpers import plan_file
from strategies.control import Command
from strategies.events import OperatorCommand, StepStarted

pytestmark = pytest.mark.sandbox


async def test_replay_equals_the_live_state_at_every_event(sandbox_fleet, tmp_path):
    sandbox_fleet.reset()
    plan = plan_file(tmp_path, "canary", canary={"sample_interval": "1s", "steps": [
        {"set_weight": 20}, {"analysis": "3s"}, {"set_weight": 100}]},
        thresholds={"min_requests": 0})  # no client load here: an empty window must not wait for a human
    inputs = load_inputs(str(plan), str(sandbox_fleet.inventory_path), None)
    session = Session(inputs, argv=["test"], record=str(tmp_path / "j.jsonl"), interactive=True)
    live, seen, states = FleetView(), [], []

    def watch(event):
        live.apply(event)
        seen.append(copy.deepcopy(live.snapshot()))
        states.append(copy.deepcopy(live.state()))
        if isinstance(event, StepStarted) and event.index == 2:  # an operator pauses, then resumes
            session.engine.command(Command.PAUSE, source="key:p")
            asyncio.get_running_loop().call_later(1.0, session.engine.command, Command.RESUME, "key:p")

    session.bus.subscribe(watch)
    result = await session.run()
    record = session.finish(result)
    assert record["exit_code"] == 0, record["message"]
    assert verify(Path(record["journal"])).ok
    journal = read_journal(Path(record["journal"]))
    assert len(journal.events) == len(seen)
    replay = FleetView()
    for n, event in enumerate(journal.events):
        replay.apply(event)
        assert replay.snapshot() == seen[n], f"replay differs from the live state at event {n} ({event.kind})"
    # `console replay --status --at T` is the status record the live run held after its last event at or before T
    times = [e.at for e in journal.events]
    for t in sorted(set(times)):
        last = max(n for n, at in enumerate(times) if at <= t)
        rebuilt = replay_status(journal, record["journal"], t)
        assert {k: rebuilt[k] for k in RunState.__annotations__ if k != "simulated"} == {
            k: v for k, v in states[last].items() if k != "simulated"}, f"status differs at {t} s"
        assert rebuilt["simulated"] is False  # real hosts
    assert states[-1]["outcome"] == "succeeded" and all(i["in_nginx"] for i in states[-1]["instances"].values())
    operator = [e for e in journal.events if isinstance(e, OperatorCommand)]
    assert [(e.command, e.source, e.accepted) for e in operator] == [("pause", "key:p", True),
                                                                      ("resume", "key:p", True)]
    assert journal.header and journal.header.operator.user and journal.header.plan.sha256
    sandbox_fleet.reset_agents()
