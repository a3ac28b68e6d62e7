"""The key bar (console/tui/key_bar.py) and the filter box: what the
operator sees change on a key, read from the drawn lines."""
import threading

from textual.widgets import Input

from console.tui.app import RolloutApp
from console.tui.fleet_table import FleetTable
from console.tui.key_bar import KeyBar
from console.tui.screens import HelpScreen
from strategies.events import OperatorCommand, Phase

from .conftest import stop_engine
from .scenarios import scene_app
from .test_app_pilot import wait_for


def bar(app) -> str:
    """The key bar's line as drawn."""
    return app.screen.query_one(KeyBar).render_line(0).text


async def test_p_turns_pause_into_resume_on_the_bar_at_once_and_back(make_session):
    """`p` is answered on the bar before the engine has even seen the
    command (it is held as it accepts it): "p Pause" becomes "p Resume";
    resuming makes it "p Pause" again. Same bar widget throughout, repainted
    in place."""
    session = make_session("examples/canary.yaml", time_scale=10)
    accepted, release = threading.Event(), threading.Event()

    def hold(event) -> None:  # on the engine's thread, as it accepts the pause
        if isinstance(event, OperatorCommand) and event.command == "pause":
            accepted.set()
            release.wait(60)
    session.bus.subscribe(hold)
    app = RolloutApp(session)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.view.step_title.startswith("analysis"))
        await pilot.pause(0.1)
        key_bar = app.screen.query_one(KeyBar)
        assert " p Pause " in bar(app) and "Resume" not in bar(app)
        await pilot.press("p")
        await pilot.pause(0.05)
        assert not release.is_set() and session.engine.phase != Phase.PAUSED
        assert " p Resume " in bar(app) and "Pause" not in bar(app)
        await wait_for(pilot, accepted.is_set)
        release.set()
        await wait_for(pilot, lambda: session.engine.phase == Phase.PAUSED)
        await pilot.pause(0.2)
        assert " p Resume " in bar(app)
        await pilot.press("p")
        await wait_for(pilot, lambda: session.engine.phase != Phase.PAUSED)
        await wait_for(pilot, lambda: " p Pause " in bar(app))
        assert "Resume" not in bar(app)
        assert app.screen.query_one(KeyBar) is key_bar and not key_bar.children
        await stop_engine(app)


async def test_the_filter_box_shows_on_slash_filters_and_hides_on_escape():
    app = scene_app("rolling-mid-batch")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        table, box = app.screen.query_one(FleetTable), app.screen.query_one("#filter", Input)
        everyone = list(table.keys)
        assert len(everyone) > 2 and not box.display and box.region.height == 0
        assert " ? Help " in bar(app)
        await pilot.press("slash")
        await pilot.pause(0.05)
        assert box.display and box.region.height == 3 and app.focused is box
        assert " ? Help " not in bar(app)  # typing: "?" is a character now
        await pilot.press(*everyone[1])
        await pilot.pause(0.1)
        assert table.keys == [everyone[1]]
        assert everyone[1] in table.render_line(1).text and table.render_line(2).text.strip() == ""
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert not box.display and box.region.height == 0 and box.value == ""
        assert app.focused is table and table.keys == everyone
        assert " ? Help " in bar(app)
        await pilot.press("slash")  # again: the same box, empty
        await pilot.pause(0.05)
        assert box.display and box.value == "" and app.focused is box
        assert len(app.screen.query(Input)) == 1


async def test_clicking_a_key_on_the_bar_presses_it():
    app = scene_app("rolling-mid-batch")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        line = bar(app)
        await pilot.click(KeyBar, offset=(line.index(" ? Help ") + 1, 0))
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
