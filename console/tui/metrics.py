"""Sparklines for error rate, p95 latency and CPU (Textual Sparkline)."""
from __future__ import annotations

from functools import partial

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from strategies.metrics import format_value

from ..view_state import FleetView


class MetricsPanel(Vertical):
    # (view series, title, metric): values print as gates and alerts print
    # them, from the one metric table (strategies/metrics.py)
    SERIES = (("error_rate", "err", "error_rate"), ("p95", "p95", "p95_latency"), ("cpu", "cpu", "cpu"))

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: dict[str, list[float]] = {}

    def compose(self) -> ComposeResult:
        for name, _, _ in self.SERIES:
            yield Label("", id=f"label-{name}", classes="spark-label")
            yield Sparkline([], id=f"spark-{name}", classes="spark")

    def show(self, view: FleetView) -> None:
        """Repaint a series only when it changed (a sample arrives every
        few seconds; the refresh tick is 8 a second)."""
        for name, title, metric in self.SERIES:
            data = list(getattr(view, name))
            if data == self._shown.get(name):
                continue
            self._shown[name] = data
            fmt = partial(format_value, metric)
            self.query_one(f"#label-{name}", Label).update(
                f"{title} {fmt(data[-1]) if data else '-'}" + (f" max {fmt(max(data))}" if data else ""))
            self.query_one(f"#spark-{name}", Sparkline).data = data[-60:] or [0.0]
