"""The replay screen: the main screen fed from a recording.

Same panels, same FleetView logic; a REPLAY banner on top says where we
are (event i/N at t s, speed x). Playback keys live here; operator keys
(pause/resume, promote, rollback, abort) stay hidden by MainScreen's
`check_action` (no engine) and land on a hidden `read_only` binding that
says so. Host detail still works: recorded commands and health history.
"""
from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Input, Static

from .fleet_table import FleetTable
from .main_screen import MainScreen
from .replay import ReplayController
from .screens import HelpScreen

PLAYBACK_HZ = 10
PLAYBACK_ACTIONS = {"play_pause", "step", "step_back", "faster", "slower", "seek", "start", "end"}

REPLAY_KEYS_HELP = [
    ("space", "play / pause (at the end: play again from the start)"),
    ("+ / -", "speed 1x 2x 5x 10x 20x 50x 100x (paced by the recorded times)"),
    (". or right", "step one event forward"),
    (",", "step one event back"),
    ("g", "go to an event number (e.g. 120) or a time (e.g. 12.5s)"),
    ("home / end", "jump to the start / the end of the recording"),
    ("/", "filter hosts by name, group, state or version (esc clears)"),
    ("enter", "host detail: recorded commands and health history (pauses playback)"),
    ("up/down pgup/pgdn", "move in the host table"),
    ("p n N r a", "refused: a replay is read-only, it never touches hosts"),
    ("?", "this help"),
    ("q", "quit"),
]


class ReplayHelpScreen(HelpScreen):
    HEADING = "Replay keys"
    KEYS = REPLAY_KEYS_HELP
    KEY_WIDTH = 18
    FOOTNOTE = ("The panels at event i are what the operator saw after event i: the recorded events are fed "
                "through the same reducer as the live console.")


class ReplayScreen(MainScreen):
    """MainScreen + the replay banner, the seek box and playback keys."""

    BINDINGS = [
        Binding("space", "play_pause", "Play", key_display="space"),
        Binding("full_stop,right", "step", "Step", key_display="."),
        Binding("comma", "step_back", "Back", key_display=","),
        Binding("plus", "faster", "Faster", key_display="+"),
        Binding("minus", "slower", "Slower", key_display="-", show=False),  # in the help: the footer is short
        Binding("g", "seek", "Go to"),
        # priority: the host table binds home/end itself; skipped while typing (check_action)
        Binding("home", "start", "Start", show=False, priority=True),
        Binding("end", "end", "End", show=False, priority=True),
        Binding("p", "read_only('pause / resume')", show=False),
        Binding("n", "read_only('promote')", show=False),
        Binding("N,shift+n", "read_only('promote')", show=False),
        Binding("r", "read_only('roll back')", show=False),
        Binding("a", "read_only('abort')", show=False),
    ]

    def __init__(self, replay: ReplayController, id: str | None = None) -> None:
        super().__init__(id=id)
        self.replay = replay
        self._last_tick: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="replay-banner")
        yield Input(placeholder="go to: an event number (e.g. 120) or a time (e.g. 12.5s); enter goes, esc cancels",
                    id="seek")
        yield from super().compose()

    # Message handlers: Textual also runs MainScreen's handler of the same
    # name after these (it dispatches along the MRO), so none calls super().
    def on_mount(self) -> None:
        self.query_one("#seek", Input).display = False
        self.show_position()
        r = self.replay
        if r.torn_tail:
            self.notify(f"the journal's last record is torn (the session did not finish writing it); "
                        f"replaying the {r.total} complete events", title="journal", severity="warning",
                        timeout=10)
        elif not r.closed:
            self.notify("the journal has no closing record (the session did not finish)", title="journal",
                        severity="warning", timeout=10)
        self.set_interval(1.0 / PLAYBACK_HZ, self.tick, name="playback")

    # -- which keys apply now --------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in PLAYBACK_ACTIONS and isinstance(self.focused, Input):
            return False  # typing in the filter or seek box
        return super().check_action(action, parameters)

    # -- playback ------------------------------------------------------------------------
    def tick(self) -> None:
        """The playback timer: advance the recording's clock by wall time."""
        now = time.monotonic()
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        if not self.replay.playing:
            return
        self.replay.advance(dt)
        self.show_position()

    def show_position(self) -> None:
        """Hand the controller's view and clock to the app and repaint."""
        r = self.replay
        self.rollout.frozen_now = r.clock
        self.rollout.set_view(r.view)
        self.query_one("#replay-banner", Static).update(self.banner())
        self.refresh_bindings()

    def banner(self) -> Text:
        r = self.replay
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append(" REPLAY ", "bold black on cyan")
        t.append(" ")
        if r.simulated:
            t.append(" SIMULATED ", "bold black on yellow")
            t.append(" ")
        t.append(" PLAYING " if r.playing else " PAUSED ", "bold reverse" if r.playing else "bold")
        t.append(f" {r.status()}", "bold")
        t.append("  read-only", "dim")
        if r.torn_tail:
            t.append("  TORN TAIL", "bold red")
        if r.source:
            t.append(f"  {r.source}", "dim")
        return t

    def _moved(self) -> None:
        self._last_tick = time.monotonic()
        self.show_position()

    def action_play_pause(self) -> None:
        self.replay.toggle()
        self._moved()

    def action_step(self) -> None:
        self.replay.playing = False
        self.replay.step()
        self._moved()

    def action_step_back(self) -> None:
        self.replay.playing = False
        self.replay.step_back()
        self._moved()

    def action_faster(self) -> None:
        self.replay.faster()
        self._moved()

    def action_slower(self) -> None:
        self.replay.slower()
        self._moved()

    def action_start(self) -> None:
        self.replay.seek(0)
        self._moved()

    def action_end(self) -> None:
        self.replay.seek(self.replay.total)
        self._moved()

    def action_seek(self) -> None:
        box = self.query_one("#seek", Input)
        box.value = ""
        box.display = True
        box.focus()

    def _close_seek(self) -> None:
        box = self.query_one("#seek", Input)
        box.display = False
        self.query_one(FleetTable).focus()

    def action_clear_filter(self) -> None:
        if self.query_one("#seek", Input).display:
            self._close_seek()
            return
        super().action_clear_filter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "seek":
            return
        text = event.value.strip()
        if text:
            if self.replay.goto(text) is None:
                self.notify(f"go to: {text!r} is neither an event number (120) nor a time (12.5s)",
                            severity="warning")
                return
            self.replay.playing = False
        self._close_seek()
        self._moved()

    def action_read_only(self, what: str) -> None:
        self.notify(f"replay: read-only ({what} would touch hosts)", severity="warning")

    # -- host detail, help -------------------------------------------------------------------
    def on_fleet_table_selected(self, event: FleetTable.Selected) -> None:
        self.replay.playing = False  # then MainScreen's handler opens the detail
        self._moved()

    def action_help(self) -> None:
        self.app.push_screen(ReplayHelpScreen())
