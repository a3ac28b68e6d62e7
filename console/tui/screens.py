"""Modal and detail screens: confirm, quit, help, host detail."""
from __future__ import annotations

from typing import Awaitable, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label, Static

from ..view_state import FleetView
from .key_bar import KeyBar


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no with a sentence saying exactly what will happen."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("escape,n", "answer(False)", "No")]

    def __init__(self, title: str, body: str, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text, self.body, self.yes = title, body, yes

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="dialog-title")
            yield Static(self.body, id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error")
                yield Button("Cancel (n/esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class QuitScreen(ModalScreen[str]):
    """Quitting while the rollout is active: pause, roll back, detach, cancel."""

    BINDINGS = [Binding("p", "choose('pause')", "Pause safely"), Binding("r", "choose('rollback')", "Roll back"),
                Binding("d", "choose('detach')", "Detach"),
                Binding("escape,c", "choose('cancel')", "Cancel")]

    def __init__(self, rollback_text: str) -> None:
        super().__init__()
        self.rollback_text = rollback_text

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label("The rollout is still running", id="dialog-title")
            yield Static("Leaving now must not strand the fleet. Choose:\n"
                         "  p  pause safely (at the next safe point; stay here)\n"
                         f"  r  roll back: {self.rollback_text}\n"
                         "  d  detach: the console exits, the rollout continues in the background (journal "
                         "and control socket only; `console attach` to come back)\n"
                         "  c  cancel", id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Pause (p)", id="pause")
                yield Button("Roll back (r)", id="rollback", variant="error")
                yield Button("Detach (d)", id="detach")
                yield Button("Cancel (c)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


KEYS_HELP = [
    ("p", "pause / resume the rollout (at the next safe point)"),
    ("n", "promote: go to the next step now (canary, blue-green)"),
    ("N", "promote fully: skip the remaining steps (canary, blue-green)"),
    ("r", "roll back (asks first and says what will happen)"),
    ("a", "abort: stop safely without rolling back (asks first)"),
    ("/", "filter hosts by name, group, state or version (esc clears)"),
    ("enter", "host detail: commands and output, health history, unit journal"),
    ("up/down pgup/pgdn home/end", "move in the host table"),
    ("tab", "move focus"),
    ("?", "this help"),
    ("d", "detach: the rollout continues in the background; `console attach` comes back"),
    ("q", "quit (offers pause / roll back / detach while the rollout runs; attached: just leaves)"),
]


class HelpScreen(ModalScreen[None]):
    """The key list; subclasses (the replay's help) change only the text."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss_help", "Close")]
    HEADING = "Keys"
    KEYS = KEYS_HELP
    KEY_WIDTH = 27
    FOOTNOTE = ("Operator keys are sent to the engine and act at the next safe point; the footer shows only "
                "the keys that apply now. Every command is recorded in the journal.")

    def compose(self) -> ComposeResult:
        t = Text()
        t.append(f"{self.HEADING}\n\n", "bold")
        for key, text in self.KEYS:
            t.append(f"{key:>{self.KEY_WIDTH}}  ", "bold")
            t.append(text + "\n")
        t.append("\n" + self.FOOTNOTE)
        with Vertical(id="help"):
            yield Static(t)
            yield Label("esc / ? / q to close", id="help-close")

    def action_dismiss_help(self) -> None:
        self.dismiss(None)


class HostDetailScreen(Screen[None]):
    """One host: its instances, recent commands with output, health history,
    and the unit's journal tail (fetched in a worker)."""

    BINDINGS = [Binding("escape,q", "close", "Back"), Binding("j", "fetch_tail", "Refresh journal")]

    def __init__(self, view: FleetView, key: str,
                 journal_tail: Callable[[str], Awaitable[str]] | None) -> None:
        super().__init__()
        self.view, self.key = view, key
        row = view.rows.get(key)
        self.host = row.host if row else key.split("/")[0]
        self.journal_tail = journal_tail

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="detail-summary")
            yield Static(id="detail-commands")
            yield Static(id="detail-health")
            yield Label("UNIT JOURNAL", classes="section")
            yield Static("fetching...", id="detail-journal")
        yield KeyBar(id="keys")

    def on_mount(self) -> None:
        self.render_detail()
        self.action_fetch_tail()

    def render_detail(self) -> None:
        v = self.view
        t = Text()
        t.append(f"HOST {self.host}\n", "bold")
        for key in v.by_host.get(self.host, [self.key]):
            r = v.rows.get(key)
            if r is None:
                continue
            t.append(f"  {r.key}  unit {r.unit or '-'}  port {r.port}  group {r.group or '-'}  version "
                     f"{r.version or '-'} (was {r.old_version or '-'})  state {r.state}"
                     + (f" ({r.detail})" if r.detail else "") + "\n")
        self.query_one("#detail-summary", Static).update(t)
        c = Text()
        c.append("RECENT COMMANDS\n", "bold")
        commands = list(v.commands.get(self.host, []))[-15:]
        if not commands:
            c.append("  none yet\n")
        for cmd in commands:
            status = "?" if cmd["exit_status"] is None else cmd["exit_status"]
            ok = cmd["exit_status"] == 0
            c.append(f"  [{cmd['at']:7.1f}s] $ {cmd['command']}  ")
            c.append(f"exit {status}", "green" if ok else "bold red")
            c.append(f" ({cmd['duration']:.2f}s)\n")
            for stream in ("stdout", "stderr"):
                for line in (cmd[stream] or "").strip().splitlines()[-3:]:
                    c.append(f"      {stream[3:]}| {line}\n", "dim" if stream == "stdout" else "red")
        self.query_one("#detail-commands", Static).update(c)
        h = Text()
        h.append("HEALTH HISTORY\n", "bold")
        for key in v.by_host.get(self.host, [self.key]):
            hist = list(v.health.get(key, []))[-12:]
            h.append(f"  {key}: ")
            if not hist:
                h.append("no checks yet")
            for _at, ok, _latency, _detail in hist:
                h.append("+" if ok else "X", "green" if ok else "bold red")
            if hist:
                at, ok, latency, detail = hist[-1]
                h.append(f"  last {'ok' if ok else 'FAIL'} {latency * 1000:.0f}ms at {at:.1f}s {detail}")
            h.append("\n")
        self.query_one("#detail-health", Static).update(h)

    def action_fetch_tail(self) -> None:
        self.run_worker(self._fetch(), exit_on_error=False, group="journal", exclusive=True)

    async def _fetch(self) -> None:
        widget = self.query_one("#detail-journal", Static)
        if self.journal_tail is None:
            widget.update("(replay: no live host to ask)")
            return
        parts = []
        for key in self.view.by_host.get(self.host, [self.key]):
            try:
                parts.append(await self.journal_tail(key))
            except Exception as exc:  # noqa: BLE001 - show, never crash the console
                parts.append(f"{key}: could not fetch the journal: {exc}")
        widget.update(Text("".join(p if p.endswith("\n") else p + "\n" for p in parts)))

    def action_close(self) -> None:
        self.app.pop_screen()
