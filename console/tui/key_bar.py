"""The key bar: the keys valid now, one line at the bottom of a screen.

It draws what Textual's Footer draws (the screen's active bindings with
`show`, key then description), but as one widget that renders its own text.
Footer recomposes on every binding change: it removes and mounts a widget
per key and lays the screen out again, 25 to 70 ms on the shared machine,
and a change of the keys is exactly when the operator has just pressed one
(`p`: "pausing", "paused", "running"; `/`: the filter takes the focus). A key
pressed meanwhile waited behind it. Here a binding change recomputes a list
of (key, description) pairs and, only when it differs, repaints one line:
no mount, no layout pass (the height is fixed in app.tcss).
"""
from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

DIM = Style(dim=True)
Key = tuple[str, str, str, bool]  # (the key to simulate, what is shown for it, description, enabled)


class KeyBar(Widget, can_focus=False):
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.keys: list[Key] = []
        self._spans: list[tuple[int, int, str]] = []  # (start, end, key) on the line, for clicks

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self.bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: object) -> None:
        """The screen's bindings may have changed (a phase, the focus): repaint if the keys did."""
        if not self.is_attached or screen is not self.screen:
            return
        app = self.app
        keys: list[Key] = []
        seen: set[str] = set()
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            keys.append((binding.key, app.get_key_display(binding), binding.description, active.enabled))
        if keys != self.keys:
            self.keys = keys
            self.refresh()

    def render(self) -> Text:
        key_style = self.get_component_rich_style("key-bar--key")
        description_style = self.get_component_rich_style("key-bar--description")
        text = Text(no_wrap=True, overflow="crop", end="")
        spans = []
        for key, shown, description, enabled in self.keys:
            start = text.cell_len
            text.append(f" {shown} ", key_style if enabled else key_style + DIM)
            if description:
                text.append(f"{description} ", description_style if enabled else description_style + DIM)
            spans.append((start, text.cell_len, key if enabled else ""))
        self._spans = spans
        return text

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                if key:
                    self.app.simulate_key(key)
                else:
                    self.app.bell()  # shown but not valid now (Footer does the same)
                return
