"""Sparklines for error rate, p95 latency and CPU (Textual Sparkline)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from ..view_state import FleetView


class MetricsPanel(Vertical):
    SERIES = (("error_rate", "err", lambda v: f"{v * 100:.2f}%"), ("p95", "p95", lambda v: f"{v * 1000:.0f}ms"),
              ("cpu", "cpu", lambda v: f"{v * 100:.0f}%"))

    def compose(self) -> ComposeResult:
        for name, _, _ in self.SERIES:
            yield Label("", id=f"label-{name}", classes="spark-label")
            yield Sparkline([], id=f"spark-{name}", classes="spark")

    def show(self, view: FleetView) -> None:
        for name, title, fmt in self.SERIES:
            data = list(getattr(view, name))
            self.query_one(f"#label-{name}", Label).update(
                f"{title} {fmt(data[-1]) if data else '-'}" + (f" max {fmt(max(data))}" if data else ""))
            self.query_one(f"#spark-{name}", Sparkline).data = data[-60:] or [0.0]
