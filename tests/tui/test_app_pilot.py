"""Pilot tests: the real engine on the embedded SIMULATED fleet; each key is
checked on the engine side (OperatorCommand on the bus / engine state) and
on screen."""
import asyncio
import threading

from textual.widgets import Input, Static

from console.tui.app import RolloutApp
from console.tui.fleet_table import FleetTable
from console.tui.screens import ConfirmScreen, HelpScreen, HostDetailScreen, QuitScreen
from simfleet import write_plan
from strategies.engine import Command
from strategies.events import OperatorCommand, Phase, StepStarted

from .conftest import stop_engine


def operator_log(session):
    seen = []
    session.bus.subscribe(lambda e: seen.append(e) if isinstance(e, OperatorCommand) else None)
    return seen


async def wait_for(pilot, predicate, timeout=10.0):
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


async def answered(pilot, ops, command):
    """The engine (its own thread) has answered the key's command."""
    await wait_for(pilot, lambda: ops and ops[-1].command == command)


def status_text(app) -> str:
    return str(app.screen.query_one("#status").render())


def screen_text(app) -> str:
    return "\n".join(str(w.render()) for w in app.screen.query(Static))


def footer_keys(app) -> set[str]:
    return {b.binding.key for b in app.screen.active_bindings.values() if b.enabled and b.binding.show}


async def test_pause_resume_and_footer(make_session):
    session = make_session("examples/canary.yaml", time_scale=20)
    ops = operator_log(session)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.phase == "running")
        await pilot.press("p")
        await answered(pilot, ops, "pause")
        assert ops[-1].command == "pause" and ops[-1].source == "key:p" and ops[-1].accepted
        await wait_for(pilot, lambda: session.engine.phase == Phase.PAUSED)
        await wait_for(pilot, lambda: "paused" in str(app.screen.query_one("#status").render()))  # repainted
        assert "n" in footer_keys(app)  # promote shown in a canary run
        await pilot.press("p")
        await answered(pilot, ops, "resume")
        assert ops[-1].command == "resume" and ops[-1].accepted
        await wait_for(pilot, lambda: session.engine.phase != Phase.PAUSED)
        await stop_engine(app)


async def test_promote_keys(make_session, tmp_path):
    """`n` ends the current hour-long pause (the next step starts at once);
    `N` skips every remaining step: all traffic on the new version, the run
    succeeded, hours of pauses early. Without the engine's promote handling
    the run sits in its first pause and this test times out."""
    plan = write_plan(tmp_path / "hours.yaml", "canary",
                      canary={"sample_interval": "2s", "steps": [
                          {"set_weight": 25}, {"pause": "1h"}, {"set_weight": 50}, {"pause": "1h"},
                          {"set_weight": 75}, {"pause": "1h"}, {"set_weight": 100}]})
    session = make_session(str(plan), time_scale=20)
    ops = operator_log(session)
    steps = []
    session.bus.subscribe(lambda e: steps.append(e) if isinstance(e, StepStarted) else None)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.step_index == 2)  # the first hour-long pause
        await pilot.press("n")
        await answered(pilot, ops, "promote")
        assert ops[-1].command == "promote" and ops[-1].source == "key:n" and ops[-1].accepted
        await wait_for(pilot, lambda: app.view.step_index == 4, timeout=20)  # 50 %, then the second pause
        assert [s.title for s in steps[2:4]] == ["set weight 50%", "pause 3600s"]
        assert app.view.traffic_weights == {"canary": 50.0, "stable": 50.0}
        await pilot.press("N")
        await answered(pilot, ops, "promote_full")
        assert ops[-1].command == "promote_full" and ops[-1].source == "key:N" and ops[-1].accepted
        await pilot.press("shift+n")
        await answered(pilot, ops, "promote_full")
        await wait_for(pilot, lambda: app.record is not None, timeout=20)
        assert app.record["outcome"] == "succeeded"
        assert [s.index for s in steps] == [1, 2, 3, 4]  # the 75 % step and the last pause skipped
        assert app.view.traffic_pools == {"stable": 10} and app.view.traffic_weights == {}  # all on 2.0.0
        assert set(app.record["versions"].values()) == {"2.0.0"}


async def test_manual_gate_offers_promote_not_resume(make_session):
    """At examples/canary-manual.yaml's `pause: {}` the key bar offers `n`
    and not `p`: going on is a promotion, and the engine refuses a resume
    there with "use promote" (the socket's `console resume` gets the same)."""
    session = make_session("examples/canary-manual.yaml", time_scale=50)
    ops = operator_log(session)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.awaiting_promotion, timeout=20)
        await wait_for(pilot, lambda: "n" in footer_keys(app))  # the key bar has caught up
        keys = footer_keys(app)
        assert "p" not in keys, keys
        assert session.engine.command(Command.RESUME) is False
        assert "use promote" in ops[-1].detail
        await pilot.press("n")
        await answered(pilot, ops, "promote")
        assert ops[-1].accepted
        await wait_for(pilot, lambda: not app.view.awaiting_promotion and app.view.phase != "paused", timeout=20)
        await wait_for(pilot, lambda: "p" in footer_keys(app))  # running again: pause is offered
        await stop_engine(app)


async def test_rollback_confirm_then_rolls_back(make_session):
    session = make_session("examples/canary.yaml", time_scale=20)
    ops = operator_log(session)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.rows and app.view.rows["agent-01"].state == "live")
        await pilot.press("r")
        assert isinstance(app.screen, ConfirmScreen)
        body = str(app.screen.query_one("#dialog-body").render())
        assert "All traffic returns to stable (1.0.0); 1 canary instance(s) are reinstalled with 1.0.0" in body
        assert not ops  # nothing sent before the confirmation
        await pilot.press("y")
        await answered(pilot, ops, "rollback")
        assert ops[-1].command == "rollback" and ops[-1].source == "key:r" and ops[-1].accepted
        await wait_for(pilot, lambda: app.record is not None, timeout=20)
        assert app.record["outcome"] == "rolled_back" and app.record["exit_code"] == 3


async def test_abort_cancelled_then_confirmed(make_session):
    session = make_session("examples/rolling.yaml", time_scale=5)  # slow enough to abort before the end
    ops = operator_log(session)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.phase == "running")
        await wait_for(pilot, lambda: {"p", "r", "a"} <= footer_keys(app))  # the running footer is shown
        keys = footer_keys(app)
        assert "n" not in keys and "N,shift+n" not in keys  # no promote in a rolling run
        assert {"p", "r", "a"} <= keys
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        assert "stops at the next safe point" in str(app.screen.query_one("#dialog-body").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, ConfirmScreen) and not ops
        await pilot.press("a", "y")
        await answered(pilot, ops, "abort")
        assert ops[-1].command == "abort" and ops[-1].source == "key:a"
        await wait_for(pilot, lambda: app.record is not None, timeout=20)
        assert app.record["outcome"] == "aborted"


async def test_filter_detail_and_help(make_session):
    session = make_session("examples/canary.yaml", time_scale=20)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(app.view.rows) == 10)
        await pilot.press("p")
        table = app.screen.query_one(FleetTable)
        await wait_for(pilot, lambda: len(table.keys) == 10)
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        await pilot.press(*"agent-03")
        await wait_for(pilot, lambda: table.keys == ["agent-03"])
        assert "agent-03" in table.render_line(1).text and table.render_line(2).text.strip() == ""
        await pilot.press("enter")  # submit: focus back on the table
        await pilot.press("enter")  # open the host detail
        assert isinstance(app.screen, HostDetailScreen)
        await wait_for(pilot, lambda: "version" in str(app.screen.query_one("#detail-journal").render()))
        text = screen_text(app)
        assert "HOST agent-03" in text and "agent@main.service" in text and "HEALTH HISTORY" in text
        await pilot.press("escape")
        await pilot.press("escape")  # clear the filter
        await wait_for(pilot, lambda: len(table.keys) == 10)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = screen_text(app)
        for key in ("pause / resume", "promote", "roll back", "abort", "filter", "host detail", "quit"):
            assert key in help_text
        await pilot.press("escape")
        await stop_engine(app)


async def test_quit_dialog_pause_and_detach(make_session):
    session = make_session("examples/canary.yaml", time_scale=20)
    ops = operator_log(session)
    app = RolloutApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.view.phase == "running")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("p")
        await answered(pilot, ops, "pause")
        assert ops[-1].command == "pause" and ops[-1].source == "key:q:pause"
        await pilot.press("q", "d")
        await wait_for(pilot, lambda: app.detached)
    assert app.detached and not app.engine_task.done()
    # what run_app does after a detach: the engine thread goes on, closes the journal, gives the record
    app.engine.command(Command.RESUME, "test")
    record = await asyncio.wait_for(app.engine_task, 120)  # a deadline, not a timing: the canary waits out its windows
    assert record["exit_code"] == 0 and record["outcome"] == "succeeded"


async def test_subscriber_batches_refreshes(make_session):
    """Events are folded into the view as they come; widgets repaint on the timer."""
    session = make_session("examples/rolling.yaml", time_scale=50)
    app = RolloutApp(session, refresh_hz=4)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.record is not None, timeout=20)
        assert app.view.revision > 100  # events applied
        assert app.ticks < app.view.revision / 2  # far fewer repaints than events


async def test_header_says_how_fast_a_simulated_clock_runs(make_session):
    """--time-scale N: the header says xN beside SIMULATED (and nothing at x1)."""
    fast = RolloutApp(make_session("examples/rolling.yaml", time_scale=20))
    async with fast.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: "phase  running " in status_text(fast))  # the header has drawn the run
        header = status_text(fast)
        assert " x20 " in header and "(simulated, x20)" in header, header
        await stop_engine(fast)
    real_pace = RolloutApp(make_session("examples/rolling.yaml", time_scale=1.0))
    async with real_pace.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: "phase  running " in status_text(real_pace))
        assert " x1" not in status_text(real_pace)
        await stop_engine(real_pace)


async def test_header_names_the_engine_that_read_a_given_inventory(make_session, tmp_path, monkeypatch):
    from simfleet import write_inventory

    monkeypatch.setenv("ROLLOUT_INVENTORY_ENGINE", "built-in")
    session = make_session("examples/rolling.yaml", time_scale=20,
                           inventory=str(write_inventory(tmp_path / "inv.yaml", hosts=10)))
    app = RolloutApp(session)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: "inventory read by built-in" in screen_text(app))
        await stop_engine(app)
    embedded = RolloutApp(make_session("examples/rolling.yaml", time_scale=20))
    async with embedded.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: embedded.view.phase == "running")
        assert "inventory read by" not in screen_text(embedded)  # the embedded SIMULATED fleet
        await stop_engine(embedded)


def header(app) -> str:
    return str(app.screen.query_one("#status").render())


async def test_pause_says_pausing_at_once_then_paused_at_the_safe_point(make_session):
    """The engine (its own thread) is held as it accepts the pause, so its
    safe point is surely still ahead when the header is read."""
    session = make_session("examples/canary.yaml", time_scale=10)
    accepted, release = threading.Event(), threading.Event()

    def hold(event) -> None:  # on the engine's thread, as it accepts the command
        if isinstance(event, OperatorCommand) and event.command == "pause":
            accepted.set()
            release.wait(60)  # a guard only: the test releases it
    session.bus.subscribe(hold)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.step_title.startswith("analysis"))  # a 30 s wait: 3 s here
        await pilot.press("p")
        assert session.engine.phase != Phase.PAUSED  # the safe point is still ahead...
        assert "pausing at the next safe point" in header(app)  # ...and the key shows at once
        assert "p" in footer_keys(app)  # now offering resume (cancels the pause)
        await wait_for(pilot, accepted.is_set)
        assert session.engine.phase != Phase.PAUSED and not release.is_set()
        release.set()
        await wait_for(pilot, lambda: session.engine.phase == Phase.PAUSED)
        await wait_for(pilot, lambda: "paused" in header(app) and "pausing" not in header(app))  # repainted
        await stop_engine(app)


async def test_q_when_the_run_ends_under_the_quit_dialog_just_quits(make_session):
    session = make_session("examples/canary.yaml", time_scale=20)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.phase == "running")
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        app.engine.command(Command.PROMOTE_FULL, "test")
        await wait_for(pilot, lambda: app.record is not None, timeout=30)
        await wait_for(pilot, lambda: not isinstance(app.screen, QuitScreen))  # nothing left to choose: the dialog goes
        assert "RESULT succeeded" in str(app.screen.query_one("#result").render())
        await pilot.press("q")
        assert app._exit  # quit at once: no dialog on a finished run
