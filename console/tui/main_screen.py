"""The main screen: header, host table, side panels, event log, key bar.
Operator key bindings live here; `check_action` hides the ones that do not
apply in the current phase."""
from __future__ import annotations

from typing import cast

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Log

from strategies.control import Command

from ..status_record import ResultRecord
from .fleet_table import FleetTable
from .host import RolloutHost
from .judge_plot import JudgePlot
from .key_bar import KeyBar
from .metrics import MetricsPanel
from .panels import AlertsPanel, ProgressPanel, ResultBanner, StatusHeader, TrafficGauge
from .screens import ConfirmScreen, HelpScreen, HostDetailScreen, QuitScreen

OPERATOR_ACTIONS = {"pause", "resume", "promote", "promote_full", "rollback", "abort"}


class MainScreen(Screen[None]):
    BINDINGS = [
        Binding("p", "pause", "Pause"),
        Binding("p", "resume", "Resume"),
        Binding("n", "promote", "Promote"),
        Binding("N,shift+n", "promote_full", "Promote all", key_display="N"),
        Binding("r", "rollback", "Roll back"),
        Binding("a", "abort", "Abort"),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("d", "detach", "Detach"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit_console", "Quit"),
    ]

    @property
    def rollout(self) -> RolloutHost:
        """The app, as this screen uses it (a RolloutApp: see console/tui/host.py)."""
        return cast(RolloutHost, self.app)

    def compose(self) -> ComposeResult:
        view = self.rollout.view
        yield StatusHeader(id="status")
        yield ResultBanner(id="result")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield Input(placeholder="filter hosts (name, group, state, version); esc clears", id="filter")
                yield FleetTable(view, id="fleet")
            with Vertical(id="side"):
                yield TrafficGauge(id="traffic")
                yield ProgressPanel(id="progress")
                yield AlertsPanel(id="alerts")
                yield MetricsPanel(id="metrics")
                yield JudgePlot(id="judge")
        yield Log(id="log", max_lines=1000, highlight=False)
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one(FleetTable).focus()
        # The first paint once this screen and its panels are up (after its first
        # refresh), not at the app's next refresh tick, which a loaded machine delays.
        self.call_after_refresh(self._first_paint)

    def _first_paint(self) -> None:
        if self.is_attached and self.app.screen_stack:  # not when the app is already closing
            self.rollout.repaint(force=True)

    # -- which keys apply now ------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "detach":
            return self.rollout.session is not None and self.rollout.record is None and self.rollout.view.active
        if action not in OPERATOR_ACTIONS:
            return True
        return self.rollout.can_command and self.rollout.view.command_refusal(action) is None

    # -- operator keys ----------------------------------------------------------
    def action_pause(self) -> None:
        self.rollout.send(Command.PAUSE, "p")

    def action_resume(self) -> None:
        self.rollout.send(Command.RESUME, "p")

    def action_promote(self) -> None:
        self.rollout.send(Command.PROMOTE, "n")

    def action_promote_full(self) -> None:
        self.rollout.send(Command.PROMOTE_FULL, "N")

    def action_rollback(self) -> None:
        self._confirm_then_send(ConfirmScreen("Roll back?", self.rollout.view.rollback_plan(), yes="Roll back"),
                                Command.ROLLBACK, "r")

    def action_abort(self) -> None:
        self._confirm_then_send(ConfirmScreen("Abort?", self.rollout.view.abort_plan(), yes="Abort"), Command.ABORT, "a")

    def _confirm_then_send(self, question: ConfirmScreen, command: Command, key: str) -> None:
        """Destructive commands go to the engine only after a yes."""
        def answered(yes: bool | None) -> None:
            if yes:
                self.rollout.send(command, key)
        self.app.push_screen(question, answered)

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = ""
        box.display = False
        table = self.query_one(FleetTable)
        table.set_filter("")
        table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter":
            self.query_one(FleetTable).set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self.query_one(FleetTable).focus()

    def on_fleet_table_selected(self, event: FleetTable.Selected) -> None:
        self.app.push_screen(HostDetailScreen(self.rollout.view, event.key, self.rollout.journal_tail_fn()))

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_detach(self) -> None:
        self.rollout.detached = True
        self.app.exit()

    def action_quit_console(self) -> None:
        """Leaving an attached view never touches the run; leaving the
        controlling console while its run is active asks first."""
        self.rollout.drain()
        if not self.rollout.view.active or self.rollout.session is None or self.rollout.record is not None:
            self.app.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "pause":
                self.rollout.send(Command.PAUSE, "q:pause")
            elif choice == "rollback":
                self.rollout.send(Command.ROLLBACK, "q:rollback")
            elif choice == "detach":
                self.action_detach()
        self.app.push_screen(QuitScreen(self.rollout.view.rollback_plan()), chosen)

    # -- refresh (called by the app's timer) ----------------------------------------
    def show_phase(self, now: float) -> None:
        """The header alone: a key's effect or a change of phase, at once."""
        self.query_one(StatusHeader).show(self.rollout.view, now)

    def repaint(self, now: float, record: ResultRecord | None) -> None:
        view = self.rollout.view
        self.query_one(StatusHeader).show(view, now)
        self.query_one(ResultBanner).show(record, view)
        self.query_one(FleetTable).update_rows(now)
        self.query_one(TrafficGauge).show(view)
        self.query_one(ProgressPanel).show(view, now)
        self.query_one(AlertsPanel).show(view)
        self.query_one(MetricsPanel).show(view)
        self.query_one(JudgePlot).show(view)
