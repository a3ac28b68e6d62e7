"""The TUI at scale (issue 11, item 5): the UI never waits behind the
engine. Both tests are causal, not timed: the first holds the engine in
the middle of a batch and checks that keys and repaints go on; the second
gives the app a 10,000-host run's worth of events at once and checks that a
key is handled while they are still being folded, and that the log ends
with the newest line in view."""
import threading
import time

from textual.widgets import Input, Log

from console.tui.app import RolloutApp
from console.view_state import FleetView
from simfleet import write_inventory
from strategies.events import HealthChecked, InstanceChanged, Notice, PhaseChanged, RunStarted, StepStarted

from .conftest import stop_engine
from .test_app_pilot import header, wait_for

HOLD_GUARD = 60.0  # seconds: only so that a broken build cannot hang the suite


async def test_keys_and_repaints_go_on_while_the_engine_is_busy_mid_batch(make_session, tmp_path):
    """The engine is held inside its 20 % batch (a bus subscriber blocks it,
    standing for a long stretch of per-host work). The UI still repaints,
    and `p` shows "pausing at the next safe point" while the engine has not
    moved; released, the engine reaches its safe point and "paused" shows.
    With engine and UI on one loop, the hold stops the UI too: nothing
    repaints and the key waits until the guard gives up the hold."""
    inv = write_inventory(tmp_path / "inv.yaml", hosts=200)
    session = make_session("examples/rolling.yaml", time_scale=20, inventory=str(inv))
    holding, release = threading.Event(), threading.Event()
    state = {"step": 0, "gave_up": False}

    def busy_engine(event) -> None:  # runs on the engine's side of the bus
        if isinstance(event, StepStarted):
            state["step"] = event.index
        elif isinstance(event, InstanceChanged) and state["step"] == 2 and not holding.is_set():
            holding.set()
            state["gave_up"] = not release.wait(HOLD_GUARD)
    session.bus.subscribe(busy_engine)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: holding.is_set() and not app._queue, timeout=HOLD_GUARD * 2)
        seen = app.view.revision  # every event before the hold is in the view
        ticks = app.ticks
        await pilot.press("p")
        assert "pausing at the next safe point" in header(app)
        await wait_for(pilot, lambda: app.ticks > ticks + 2)  # the refresh timer keeps running
        assert not state["gave_up"] and not release.is_set()  # ...while the engine is still held
        assert app.view.revision <= seen + 1 and app.view.phase == "running"  # no engine event since the key
        release.set()
        await wait_for(pilot, lambda: app.view.phase == "paused", timeout=30)
        await wait_for(pilot, lambda: "phase  paused" in header(app) and "pausing" not in header(app))  # repainted
        await stop_engine(app)


def big_run(hosts: int) -> list:
    keys = [f"agent-{n:05d}" for n in range(1, hosts + 1)]
    events = [RunStarted(at=0.1, plan="rolling.yaml", strategy="rolling", service="agent", version="2.0.0",
                         old_versions={k: "1.0.0" for k in keys},
                         instances=[{"key": k, "host": k, "address": k, "slot": "main", "port": 8080,
                                     "unit": "agent@main.service"} for k in keys],
                         steps=[{"title": "batch 1/1", "instances": keys}], simulated=True),
              PhaseChanged(at=0.2, phase="running"),
              StepStarted(at=0.3, index=1, total=1, title="batch 1/1", instances=keys)]
    for n, k in enumerate(keys):
        at = 1.0 + n / 100
        events += [InstanceChanged(at=at, instance=k, phase="deploying", version=None),
                   InstanceChanged(at=at, instance=k, phase="live", version="2.0.0"),
                   HealthChecked(at=at, instance=k, ok=True, version="2.0.0", latency=0.01)]
    events.append(Notice(at=999.0, level="info", message="the newest line"))
    return events


async def test_a_key_goes_between_a_10000_host_backlog_and_the_log_ends_on_the_newest_line():
    """30,000 events arrive at once (a 10,000-host batch's worth). They are
    folded a slice at a time, so `/` opens the filter while many are still
    queued (one unbounded fold would handle the key only after all of them;
    each fold is held to at least 20 us, so that this holds however fast
    the machine folds);
    at the end every event is in the view and the log's newest line is in
    view."""
    events = big_run(10_000)
    app = RolloutApp(view=FleetView(), show_operator_keys=True)
    fold = app.view.apply

    def apply(event) -> None:  # at least 20 us an event: the backlog takes many slices on any machine
        end = time.perf_counter() + 20e-6
        fold(event)
        while time.perf_counter() < end:
            pass
    app.view.apply = apply  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        backlog_at_key: list[int] = []
        screen = app.screen
        opened = screen.action_filter

        def action_filter() -> None:
            backlog_at_key.append(len(app._queue))
            opened()
        screen.action_filter = action_filter  # type: ignore[method-assign]
        for event in events:
            app._on_bus_event(event)  # what the engine thread's bus does
        await pilot.press("slash")
        assert isinstance(app.focused, Input)
        assert backlog_at_key and backlog_at_key[0] > 0  # the key did not wait for the whole backlog
        await wait_for(pilot, lambda: not app._queue and app.view.revision == len(events), timeout=60)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app._logged == app.view.events_total)
        log = app.screen.query_one("#log", Log)
        assert log.lines[-1].endswith("the newest line")
        await wait_for(pilot, lambda: log.scroll_y == log.max_scroll_y)  # scrolled: the newest line is in view
        assert len(app.view.rows) == 10_000 and all(r.state == "live" for r in app.view.rows.values())


async def test_a_change_of_phase_is_shown_before_the_next_slice_of_a_backlog_is_folded():
    """"paused" arrives in the middle of a 10,000-host batch's events. The
    header says "paused" as soon as the slice that folded it ends: no
    further slice of events (up to DRAIN_BUDGET each) is folded first."""
    events = big_run(10_000)
    events.insert(3 + 600, PhaseChanged(at=5.0, phase="paused", reason="operator"))
    app = RolloutApp(view=FleetView(), show_operator_keys=True)
    slices, phase_slice, shown = [0], [], []
    fold, drain = app.view.apply, app.drain

    def apply(event) -> None:  # at least 20 us an event: the backlog takes many slices on any machine
        end = time.perf_counter() + 20e-6
        fold(event)
        if isinstance(event, PhaseChanged) and event.phase == "paused":
            phase_slice.append(slices[0])
        while time.perf_counter() < end:
            pass

    def counted(budget=None) -> bool:
        if budget is not None:
            slices[0] += 1
        return drain(budget)
    app.view.apply = apply  # type: ignore[method-assign]
    app.drain = counted  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        status = app.screen.query_one("#status")
        update = status.update

        def updated(content, **kw):
            if "paused" in str(content) and not shown:
                shown.append((slices[0], len(app._queue)))
            return update(content, **kw)
        status.update = updated  # type: ignore[method-assign]
        for event in events:
            app._on_bus_event(event)
        await wait_for(pilot, lambda: shown, timeout=60)
        assert phase_slice and shown[0][0] == phase_slice[0]  # no slice between the change and the header
        assert shown[0][1] > 0  # ...while the backlog still waited
        await wait_for(pilot, lambda: not app._queue, timeout=120)
