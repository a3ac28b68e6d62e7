"""Sparklines for error rate, p95 latency and CPU (Textual Sparkline)."""
from __future__ import annotations

from functools import partial

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from strategies.analysis import format_value

from ..view_state import FleetView


class MetricsPanel(Vertical):
    # Values print as gates and alerts print them, except CPU, which keeps
    # whole percents here (format_value gives two decimals): it moves to
    # format_value with the metric table of issue 13, snapshots and all.
    SERIES = (("error_rate", "err", partial(format_value, "error_rate")),
              ("p95", "p95", partial(format_value, "p95_latency")),
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
