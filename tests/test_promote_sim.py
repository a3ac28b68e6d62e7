"""Promote and promote-full have their effect on the engine (SIMULATED
fleet): promote ends the current pause and the next step starts; promote-full
skips every remaining step and puts 100 % of traffic on the new version. The
pauses are an hour long, so without the promote handling the run would not
end for hours (engine clock) and these tests time out."""
from __future__ import annotations

import asyncio

from console.session import Session, load_inputs
from simfleet import write_inventory, write_plan
from strategies.control import Command
from strategies.engine import Outcome
from strategies.events import OperatorCommand, StepStarted, TrafficChanged

HOUR_PAUSES = [{"set_weight": 25}, {"pause": "1h"}, {"set_weight": 50}, {"pause": "1h"},
               {"set_weight": 75}, {"pause": "1h"}, {"set_weight": 100}]


def hour_pause_session(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary", canary={"sample_interval": "2s", "steps": HOUR_PAUSES})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"], record=str(tmp_path / "j.jsonl"),
                      time_scale=100.0, interactive=True)
    events = []
    session.bus.subscribe(events.append)
    return session, events


async def step_started(events, index):
    while not any(isinstance(e, StepStarted) and e.index == index for e in events):
        await asyncio.sleep(0.01)
    return next(e for e in events if isinstance(e, StepStarted) and e.index == index)


async def test_promote_ends_the_pause_and_promote_full_skips_the_rest(tmp_path):
    session, events = hour_pause_session(tmp_path)

    async def operator():
        pause = await step_started(events, 2)
        assert session.engine.command(Command.PROMOTE, source="test")
        nxt = await step_started(events, 3)  # the hour-long pause ended: the next step started
        assert nxt.title == "set weight 50%" and nxt.at - pause.at < 60
        await step_started(events, 4)
        assert session.engine.command(Command.PROMOTE_FULL, source="test")

    task = asyncio.create_task(operator())
    result = await asyncio.wait_for(session.run(), 60)
    await task
    assert result.outcome == Outcome.SUCCEEDED
    assert set(result.versions.values()) == {"2.0.0"}
    started = [e.index for e in events if isinstance(e, StepStarted)]
    assert started == [1, 2, 3, 4]  # steps 5-7 skipped
    weights = [e.weights.get("canary") for e in events if isinstance(e, TrafficChanged)]
    assert 75.0 not in weights  # never went through the skipped 75 % step
    last = [e for e in events if isinstance(e, TrafficChanged)][-1]
    assert list(last.pools) == ["stable"] and len(last.pools["stable"]) == 4  # all 4 on 2.0.0, one pool
    pause = next(e for e in events if isinstance(e, StepStarted) and e.index == 2)
    assert events[-1].at - pause.at < 3600  # done inside the first hour-long pause
    assert [e.command for e in events if isinstance(e, OperatorCommand)] == ["promote", "promote_full"]
