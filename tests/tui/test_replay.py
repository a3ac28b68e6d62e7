"""`console replay FILE`: the controller (pure, no Textual), the replay
screen (Pilot) and the journal it reads. The panels at event i must equal
what the operator saw after event i: FleetView().apply_all(events[:i])."""
import json

import pytest
from textual.widgets import Static

from console.journal import JournalWriter, read_journal
from console.tui.app import RolloutApp, make_replay_app
from console.tui.fleet_table import FleetTable
from console.tui.replay import SPEEDS, ReplayController
from console.tui.replay_screen import ReplayHelpScreen, ReplayScreen
from console.tui.screens import ConfirmScreen, HostDetailScreen
from console.view_state import FleetView

from .scenarios import load_events
from .test_app_pilot import wait_for

EVENTS = load_events("canary-bad")
N = len(EVENTS)


def write_journal(path, events, simulated=True, torn=False):
    """A real hash-chained journal of recorded SIMULATED-fleet events."""
    writer = JournalWriter.open_new(path, {"tool": "rollout-console", "argv": ["console"], "simulated": simulated,
                                           "operator": {"user": "op", "host": "bastion"}, "started": "T0",
                                           "plan": {"path": "examples/canary.yaml"}})
    for event in events:
        writer(event)
    writer.close("rolled_back", 3)
    if torn:
        data = path.read_bytes().rstrip(b"\n")
        last = data.rfind(b"\n")
        path.write_bytes(data[: last + 1] + data[last + 1: last + 40])  # half of the closing record
    return path


# -- the controller (pure) -------------------------------------------------------------
def test_seek_forward_and_back_equal_a_fresh_prefix():
    c = ReplayController(EVENTS)
    for i in [0, 1, 10, 56, 40, N, 83, 3, 0, N + 5, -2]:
        view = c.seek(i)
        j = max(0, min(i, N))
        assert c.position == j and view is c.view
        assert view.snapshot() == FleetView().apply_all(EVENTS[:j]).snapshot()
        assert c.clock == (EVENTS[j - 1].at if j else EVENTS[0].at)


def test_step_and_step_back():
    c = ReplayController(EVENTS)
    c.seek(30)
    assert c.step().snapshot() == c.view_at(31).snapshot() and c.position == 31
    assert c.step_back().snapshot() == c.view_at(30).snapshot() and c.position == 30
    c.seek(0)
    c.step_back()
    assert c.position == 0
    c.seek(N)
    c.step()
    assert c.position == N and c.view.finished


def test_seek_by_time_and_parse():
    c = ReplayController(EVENTS)
    assert c.parse_target("42") == ("index", 42)
    assert c.parse_target(" 12.5s ") == ("time", 12.5) and c.parse_target("7S") == ("time", 7.0)
    assert c.parse_target("abc") is None and c.parse_target("-3") is None and c.parse_target("1.5") is None
    c.goto("41.065s")
    assert all(e.at <= 41.065 for e in EVENTS[:c.position]) and EVENTS[c.position].at > 41.065
    assert c.clock == 41.065
    c.goto("12")
    assert c.position == 12
    c.goto("1000s")
    assert c.position == N and c.clock == EVENTS[-1].at
    assert c.goto("nonsense") is None and c.position == N


def test_speed_steps():
    c = ReplayController(EVENTS)
    assert c.speed == 1
    assert [c.faster() for _ in SPEEDS] == [2, 5, 10, 20, 50, 100, 100]
    assert [c.slower() for _ in SPEEDS] == [50, 20, 10, 5, 2, 1, 1]


def test_playback_is_paced_by_the_recorded_times():
    c = ReplayController(EVENTS)
    c.seek(10)
    t0 = c.clock
    c.speed = 10
    assert c.advance(1.0) == 0  # paused: nothing moves
    c.toggle()
    applied = c.advance(0.5)  # 5 s of the recording
    assert c.clock == pytest.approx(t0 + 5.0)
    assert c.position == 10 + applied == sum(1 for e in EVENTS if e.at <= t0 + 5.0)
    assert c.view.snapshot() == c.view_at(c.position).snapshot()
    c.speed = 100
    while c.playing:
        c.advance(0.1)
    assert c.at_end and c.view.finished and c.view.outcome == "rolled_back"
    assert c.toggle() and c.position == 0  # play at the end: from the start again


def test_status_line():
    c = ReplayController(EVENTS)
    c.seek(56)
    c.speed = 10
    assert c.status() == f"event 56/{N} at {EVENTS[55].at:.1f}s, speed 10x"


def test_from_journal_reads_header_and_torn_tail(tmp_path):
    j = read_journal(write_journal(tmp_path / "j.jsonl", EVENTS))
    c = ReplayController.from_journal(j)
    assert (c.total, c.simulated, c.torn_tail, c.closed) == (N, True, False, True)
    assert "examples/canary.yaml by op@bastion" in c.source
    torn = read_journal(write_journal(tmp_path / "t.jsonl", EVENTS, simulated=False, torn=True))
    c = ReplayController.from_journal(torn)
    assert (c.total, c.simulated, c.torn_tail, c.closed) == (N, False, True, False)


# -- the screen (Pilot) -----------------------------------------------------------------
def panels(app) -> dict[str, str]:
    """What is on screen in the main panels, as text."""
    screen = app.screen_stack[0]
    out = {f"#{w.id}": str(w.render()) for w in screen.query(Static)
           if w.id in ("status", "traffic", "progress", "alerts", "result") and w.display}
    for w in screen.query(".spark-label"):
        out[w.id] = str(w.render())
    table = screen.query_one(FleetTable)
    rows = min(table.size.height, len(table.keys) + 1)  # the replay banner takes a line of the screen
    out["table"] = "\n".join(table.render_line(y).text for y in range(rows))
    return out


async def seek_keys(pilot, target: str):
    await pilot.press("g", *list(target), "enter")
    await pilot.pause()


async def test_panels_after_seeking_equal_what_the_operator_saw():
    c = ReplayController(EVENTS, simulated=True)
    app = make_replay_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, ReplayScreen)
        seen = {}
        for i in [20, 56, 83, N, 40, 1, 0, 70]:  # forward and backward
            await seek_keys(pilot, str(i))
            assert c.position == i and app.view is c.view
            assert app.view.snapshot() == FleetView().apply_all(EVENTS[:i]).snapshot()
            seen[i] = panels(app)
        await pilot.press("comma")
        await pilot.pause()
        assert c.position == 69 and app.view.snapshot() == FleetView().apply_all(EVENTS[:69]).snapshot()
        await pilot.press("full_stop", "right")
        await pilot.pause()
        assert c.position == 71 and app.view.snapshot() == FleetView().apply_all(EVENTS[:71]).snapshot()
    # the same panels as a static console showing the prefix (what the live console painted)
    for i in [20, 56, 83, N]:
        view = FleetView().apply_all(EVENTS[:i])
        static = RolloutApp(view=view, now=EVENTS[i - 1].at)
        async with static.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            assert panels(static) == seen[i], i


async def test_banner_play_pause_speed_start_end():
    c = ReplayController(EVENTS, simulated=True, source="rec.jsonl")
    app = make_replay_app(c)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        banner = lambda: str(app.screen.query_one("#replay-banner").render())  # noqa: E731
        assert banner().startswith(" REPLAY   SIMULATED   PAUSED  event 0/")
        await pilot.press("end")
        await pilot.pause()
        assert c.position == N and f"event {N}/{N} at {EVENTS[-1].at:.1f}s, speed 1x" in banner()
        assert "rolled_back" in str(app.screen.query_one("#result").render())
        await pilot.press("home")
        assert c.position == 0 and not app.view.rows
        for _ in range(7):
            await pilot.press("plus")
        await pilot.press("minus")
        assert c.speed == 50
        await pilot.press(*["minus"] * 5)
        assert c.speed == 1
        await pilot.press("space")
        assert c.playing and "PLAYING" in banner()
        await wait_for(pilot, lambda: c.position > 0)  # the playback timer's first tick applies the first event
        assert c.position < N  # 1x: the end is 62 s away
        await pilot.press(*["plus"] * 6)
        assert c.speed == 100 and "speed 100x" in banner()
        for _ in range(100):
            if c.at_end:
                break
            await pilot.pause(0.05)
        await pilot.pause()
        assert c.at_end and not c.playing and "PAUSED" in banner()
        assert app.view.snapshot() == FleetView().apply_all(EVENTS).snapshot()


async def test_operator_keys_are_read_only_and_hidden():
    c = ReplayController(EVENTS)
    c.seek(56)  # a running canary: live, these keys would all apply
    app = make_replay_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for key in ["p", "n", "N", "r", "a"]:
            await pilot.press(key)
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
        messages = [n.message for n in app._notifications]
        assert len(messages) == 5 and all(m.startswith("replay: read-only") for m in messages)
        shown = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled and b.binding.show}
        assert not shown & {"pause", "resume", "promote", "promote_full", "rollback", "abort"}
        assert {"play_pause", "step", "step_back", "faster", "seek"} <= shown
        assert c.position == 56


async def test_seek_box_typing_and_bad_input():
    c = ReplayController(EVENTS)
    app = make_replay_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await seek_keys(pilot, "12.5s")
        assert c.position == sum(1 for e in EVENTS if e.at <= 12.5) and c.clock == 12.5
        before = c.position
        await pilot.press("g", "x", "y", "enter")  # refused: stays open, no move
        await pilot.pause()
        assert c.position == before and app.screen.query_one("#seek").display
        assert "neither an event number" in list(app._notifications)[-1].message
        await pilot.press("escape")
        await pilot.pause()
        assert not app.screen.query_one("#seek").display
        # the filter box takes "." "," "+" and space as text, not playback keys
        await pilot.press("slash", "1", ".", "0", "space")
        await pilot.pause()
        assert app.screen.query_one("#filter").value == "1.0 " and c.position == before


async def test_host_detail_shows_the_recording():
    c = ReplayController(EVENTS)
    c.seek(56)
    app = make_replay_app(c)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("space", "enter")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HostDetailScreen) and not c.playing
        text = "\n".join(str(w.render()) for w in app.screen.query(Static))
        assert "HOST agent-01" in text and "RECENT COMMANDS" in text and "exit 0" in text
        assert "HEALTH HISTORY" in text and "agent-01: +" in text
        assert "not available in replay" in text
        await pilot.press("escape", "question_mark")
        await pilot.pause()
        assert isinstance(app.screen, ReplayHelpScreen)


async def test_torn_journal_warns_and_replays(tmp_path):
    journal = read_journal(write_journal(tmp_path / "t.jsonl", EVENTS, torn=True))
    assert journal.torn_tail and journal.close is None
    app = make_replay_app(ReplayController.from_journal(journal))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        (note,) = list(app._notifications)
        assert note.severity == "warning" and "torn" in note.message
        await pilot.press("end")
        await pilot.pause()
        assert app.view.snapshot() == FleetView().apply_all(EVENTS).snapshot()
        assert "TORN TAIL" in str(app.screen.query_one("#replay-banner").render())


def test_cli_replay_opens_the_app_playing(tmp_path, monkeypatch):
    from console import cli

    ran = []
    monkeypatch.setattr(RolloutApp, "run", lambda self, *a, **k: ran.append(self))
    path = write_journal(tmp_path / "j.jsonl", EVENTS)
    assert cli.main(["replay", str(path)]) == 0
    (app,) = ran
    assert app.replay.total == N and app.replay.playing and app.replay.simulated
    assert app.session is None and not app.can_command
    json.loads(path.read_text().splitlines()[0])  # the journal is untouched and still readable


def test_checkpoints_do_not_change_the_view():
    long = load_events("blue-green") + load_events("rolling")  # one reducer, 515 events
    c = ReplayController(long)
    c.checkpoint_every = 50
    for i in [400, 120, 399, 49, 50, 51, 0, len(long), 260]:
        assert c.view_at(i).snapshot() == FleetView().apply_all(long[:i]).snapshot(), i
        assert c.seek(i).snapshot() == FleetView().apply_all(long[:i]).snapshot(), i
    assert sorted(c._checkpoints) == list(range(0, len(long) + 1, 50))
    c.view_at(100).apply(long[0])  # a handed-out view is a copy: checkpoints stay intact
    assert c.view_at(100).snapshot() == FleetView().apply_all(long[:100]).snapshot()


async def test_a_console_paints_when_its_screen_mounts_not_at_the_next_refresh_tick():
    """On a loaded machine the first refresh tick can come late: the panels
    are painted as soon as the main screen is mounted (a refresh every 1000 s
    here, so only that first paint can fill them)."""
    view = FleetView().apply_all(EVENTS[:56])
    static = RolloutApp(view=view, now=EVENTS[55].at, refresh_hz=0.001)
    async with static.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = panels(static)
        assert shown["#progress"].startswith("STEPS") and shown["#traffic"].startswith("TRAFFIC"), shown
