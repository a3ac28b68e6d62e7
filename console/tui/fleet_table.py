"""The instance table: a line-API widget that renders only the visible rows,
so it stays cheap at thousands of hosts (a DataTable costs ~100 ms a tick
at 1,000 rows). Row data lives in the FleetView; this widget holds only the
filtered key order, the cursor and the scroll position."""
from __future__ import annotations

from typing import Callable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from inventory.model import Colour
from strategies.topology import Pool

from ..view_state import FleetView, InstanceRow

COLUMNS = [("HOST", 16), ("GROUP", 7), ("VERSION", 10), ("STATE", 11), ("STEP", 4), ("HEALTH", 9),
           ("CPU", 4), ("CHECK", 7)]
STATE_STYLE = {
    "queued": Style(dim=True), "standby": Style(dim=True), "draining": Style(color="yellow"),
    "deploying": Style(color="cyan"), "restarting": Style(color="cyan"), "checking": Style(color="blue", bold=True),
    "live": Style(color="green"), "failed": Style(color="red", bold=True, reverse=True),
    "rolled back": Style(color="magenta", bold=True),
}
GROUP_STYLE: dict[str, Style] = {Colour.BLUE: Style(color="blue"), Colour.GREEN: Style(color="green"),
                                 Pool.CANARY: Style(color="yellow", bold=True)}
HEADER_STYLE = Style(bold=True, underline=True)
# padding and gaps get a style of their own, never None: with NO_COLOR set, textual's
# Monochrome filter reads every segment's style and crashed on a None (seen in tmux)
PLAIN = Style()
CURSOR_STYLE = Style(reverse=True)


def _cell(text: str, width: int) -> str:
    return text[:width].ljust(width) if len(text) <= width else text[: width - 1] + "~"


def row_cells(row: InstanceRow, now: float) -> list[str]:
    if row.health_ok is None:
        health = "-"
    else:
        health = ("ok " if row.health_ok else "FAIL ") + (f"{row.latency * 1000:.0f}ms" if row.latency else "")
    check = "-" if row.last_check is None else f"{max(0.0, now - row.last_check):.0f}s ago"
    return [row.key, row.group or "-", row.version or "-", row.state, str(row.step) if row.step else "-",
            health, "-" if row.cpu is None else f"{row.cpu * 100:.0f}%", check]


class FleetTable(ScrollView, can_focus=True):
    """Hosts, one line each. Enter posts `FleetTable.Selected`."""

    BINDINGS = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "Top", show=False),
        Binding("end", "jump(-1)", "Bottom", show=False),
        Binding("enter", "select", "Host detail"),
    ]
    DEFAULT_CSS = "FleetTable { overflow-x: hidden; }"

    class Selected(Message):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.key = key

    def __init__(self, view: FleetView, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view = view
        self.keys: list[str] = []
        self.filter = ""
        self.cursor = 0
        self.now = 0.0
        self._width = sum(w for _, w in COLUMNS) + len(COLUMNS)
        self._stamp: tuple[object, ...] = ()
        self._strips: dict[tuple[object, ...], Strip] = {}  # rendered lines by what they show (render_line)

    # -- data ---------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        self.filter = text.strip().lower()
        self.cursor = 0
        self.scroll_to(y=0, animate=False)
        self.update_rows(self.now)

    def matches(self, row: InstanceRow) -> bool:
        f = self.filter
        return (f in row.key.lower() or f in (row.group or "").lower() or f in row.state
                or f in (row.version or ""))

    def update_rows(self, now: float) -> None:
        """Re-read the view (called at the refresh rate, never per event)."""
        self.now = now
        current = self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None
        rows = self.view.rows
        if self.filter:
            keys = [k for k, r in rows.items() if self.matches(r)]
        elif len(self.keys) != len(rows):
            keys = list(rows)
        else:
            keys = self.keys
        if keys is not self.keys:
            self.keys = keys
            if current is not None and current in rows:
                try:
                    self.cursor = keys.index(current) if keys[self.cursor: self.cursor + 1] != [current] else self.cursor
                except ValueError:
                    self.cursor = min(self.cursor, max(0, len(keys) - 1))
        self.virtual_size = Size(self._width, len(self.keys) + 1)
        # Redraw on a change only: the rows (the view's revision), the filtered keys, or the CHECK
        # column's "Ns ago" (the clock, to half a second).
        stamp = (id(self.view), self.view.revision, round(now * 2), self.filter, len(self.keys))
        if stamp != self._stamp:
            self._stamp = stamp
            self.refresh()

    @property
    def selected_key(self) -> str | None:
        return self.keys[self.cursor] if 0 <= self.cursor < len(self.keys) else None

    # -- rendering ------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        """A row's line, the same Strip object while its text and cursor do not
        change: Textual caches what it derives from a Strip (cropping, colour
        filters) on the object, so an unchanged row costs a lookup per frame."""
        width = self.size.width
        if y == 0:
            return self._strip(("header", width), lambda: Strip([Segment(
                " ".join(_cell(name, w) for name, w in COLUMNS), HEADER_STYLE)]).crop_extend(0, width, PLAIN))
        index = int(self.scroll_offset.y) + y - 1
        row = self.view.rows.get(self.keys[index]) if index < len(self.keys) else None
        if row is None:
            return Strip.blank(width, PLAIN)
        cells = row_cells(row, self.now)
        cursor = 0 if index != self.cursor else 2 if self.has_focus else 1  # 2: reversed, 1: underlined
        return self._strip((*cells, cursor, width), lambda: self._row_strip(cells, cursor, width))

    def _strip(self, key: tuple[object, ...], make: Callable[[], Strip]) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) > 4 * max(self.size.height, 10):
                self._strips.clear()
            strip = self._strips[key] = make()
        return strip

    @staticmethod
    def _row_strip(cells: list[str], cursor: int, width: int) -> Strip:
        segments = []
        for (name, w), value in zip(COLUMNS, cells):
            style = Style()
            if name == "STATE":
                style = STATE_STYLE.get(value, style)
            elif name == "GROUP":
                style = GROUP_STYLE.get(value, style)
            elif name == "HEALTH" and value.startswith("FAIL"):
                style = Style(color="red", bold=True)
            segments.append(Segment(_cell(value, w), style))
            segments.append(Segment(" ", PLAIN))
        strip = Strip(segments).crop_extend(0, width, PLAIN)
        if cursor:
            strip = strip.apply_style(CURSOR_STYLE if cursor == 2 else Style(underline=True))
        return strip

    # -- cursor -----------------------------------------------------------------
    def _move_to(self, index: int) -> None:
        if not self.keys:
            return
        self.cursor = max(0, min(len(self.keys) - 1, index))
        visible = max(1, self.size.height - 1)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + visible:
            self.scroll_to(y=self.cursor - visible + 1, animate=False)
        self.refresh()

    def action_cursor(self, delta: int) -> None:
        self._move_to(self.cursor + delta)

    def action_page(self, direction: int) -> None:
        self._move_to(self.cursor + direction * max(1, self.size.height - 2))

    def action_jump(self, where: int) -> None:
        self._move_to(0 if where == 0 else len(self.keys) - 1)

    def action_select(self) -> None:
        if self.selected_key is not None:
            self.post_message(self.Selected(self.selected_key))

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if 0 <= index < len(self.keys):
            self._move_to(index)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
