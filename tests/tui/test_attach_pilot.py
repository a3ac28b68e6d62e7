"""An attached TUI (`console attach`) over a run in another process: its
elapsed clock ticks between the run's events."""
import asyncio

from console.tui.app import RolloutApp

from .scenarios import scene_view
from .test_app_pilot import header, wait_for


class QuietRun:
    """A RemoteRun whose run sends no event while the test looks."""

    def __init__(self, elapsed: float, time_scale: float) -> None:
        self.status = {"elapsed": elapsed, "time_scale": time_scale}
        self.gone = asyncio.Event()

    async def follow(self, on_event):
        await self.gone.wait()
        return None

    async def command(self, name: str) -> dict:
        return {"accepted": False, "detail": "not in this test"}


async def test_an_attached_clock_ticks_without_events():
    view = scene_view("rolling-mid-batch")  # an active run, its last event at view.elapsed
    remote = QuietRun(elapsed=view.elapsed + 10.0, time_scale=2.0)
    app = RolloutApp(view=view, remote=remote)
    wall = [1000.0]
    app._clock = lambda: wall[0]
    app._remote_clock = (wall[0], remote.status["elapsed"], 2.0)  # as connected at wall time 1000
    async with app.run_test(size=(120, 40)) as pilot:
        def shows(seconds: float) -> bool:
            m, s = divmod(int(round(seconds)), 60)
            return f"elapsed {m:02d}:{s:02d}" in header(app)
        await wait_for(pilot, lambda: shows(view.elapsed + 10.0))
        revision = app.view.revision
        wall[0] += 30.0  # 30 s later on the wall: 60 s of the run's (scaled) clock, and no event
        await wait_for(pilot, lambda: shows(view.elapsed + 70.0))
        assert app.view.revision == revision  # no event arrived: the clock ticked on its own
        remote.gone.set()
