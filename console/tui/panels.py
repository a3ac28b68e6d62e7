"""Text panels of the main screen: status header, traffic gauge, progress,
alerts. Each renders from the FleetView on the app's refresh tick; colour
is never the only carrier of meaning (NO_COLOR / 16-colour terminals).

A panel's text goes to the screen only when it differs from what is shown,
and without a layout pass (their heights are fixed in app.tcss): at 8 ticks
a second, re-laying-out and redrawing the whole screen for unchanged text
was most of the UI thread's work at 10,000 hosts, and a key waited behind it."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from strategies.metrics import format_value
from strategies.topology import Pool

from ..status_record import ResultRecord
from ..view_state import FleetView


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


PHASE_STYLE = {"running": "bold green", "analysing": "bold cyan", "paused": "bold yellow reverse",
               "rolling back": "bold magenta reverse", "succeeded": "bold green reverse",
               "rolled back": "bold magenta", "failed": "bold red reverse", "aborted": "bold red",
               "preflight": "bold"}


PENDING = {"pause": "pausing", "rollback": "rolling back", "abort": "aborting"}


class Panel(Static):
    """A fixed-height text panel that repaints only on a change."""

    _shown: Text | None = None

    def show_text(self, text: Text) -> None:
        if text != self._shown:
            self._shown = text
            self.update(text, layout=False)


class StatusHeader(Panel):
    def show(self, view: FleetView, now: float) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        if view.simulated:
            t.append(" SIMULATED ", "bold black on yellow")
            t.append(" ")
        if view.time_scale != 1.0:
            t.append(f" x{view.time_scale:g} ", "bold black on cyan")
            t.append(" ")
        t.append(f"{view.strategy or '?'} ", "bold")
        t.append(f"{view.service} {view.old_version or '?'} -> {view.version or '?'}", "bold")
        t.append(f"   plan {view.plan}", "dim")
        if view.inventory_engine:
            t.append(f"   inventory read by {view.inventory_engine}", "dim")
        t.append("\n")
        t.append("phase ")
        t.append(f" {view.phase} ", PHASE_STYLE.get(view.phase, "bold"))
        if view.pending:
            t.append(f" {PENDING[view.pending]} at the next safe point", "bold yellow")
        t.append(f"   elapsed {clock(now)}" + (f" (simulated, x{view.time_scale:g})" if view.time_scale != 1.0 else "")
                 + f"  ETA {clock(view.eta(now))}")
        t.append(f"  fleet {len(view.rows)} instance(s)" + (" (SIMULATED)" if view.simulated else ""))
        self.show_text(t)


class TrafficGauge(Panel):
    def show(self, view: FleetView) -> None:
        width = max(10, self.size.width - 2)
        split = view.traffic_split()
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("TRAFFIC ", "bold")
        if not split:
            t.append("no split yet" if view.strategy != "rolling" else "all pools serve")
            self.show_text(t)
            return
        new = view.new_share()
        stable = 100.0 - new
        new_name = Pool.CANARY if view.strategy == "canary" else (view.new_group or "new")
        old_name = Pool.STABLE if view.strategy != "blue_green" else next(
            (g for g in split if g != view.new_group), "old")
        if view.strategy == "rolling":
            pools = ", ".join(f"{p} {n}" for p, n in sorted(view.traffic_pools.items()))
            t.append(f"pools: {pools}")
            self.show_text(t)
            return
        t.append(f"{old_name} {stable:g}% | {new_name} {new:g}%\n")
        filled = int(round(width * new / 100.0))
        t.append("#" * filled, "bold green")
        t.append("." * (width - filled), "dim")
        self.show_text(t)


class ProgressPanel(Panel):
    def show(self, view: FleetView, now: float) -> None:
        t = Text(no_wrap=True, overflow="ellipsis")
        done, total = view.steps_done, view.steps_total
        t.append("STEPS ", "bold")
        bar = 12
        filled = int(bar * done / total) if total else 0
        t.append(f"{done}/{total} [{'=' * filled}{' ' * (bar - filled)}] ")
        t.append(view.step_title or "-", "bold")
        t.append("\n")
        gate = view.gate
        t.append("GATE ", "bold")
        if gate is None:
            t.append("-")
        else:
            verdict_style = {"pass": "green", "fail": "bold red reverse", "hold": "yellow"}.get(gate.verdict, "")
            t.append(gate.verdict.upper(), verdict_style)
            remaining = view.gate_remaining(now)
            if remaining is not None:
                t.append(f" {remaining:.0f}s left", "bold")
            elif gate.final:
                t.append(" (closed)")
            t.append(f" {gate.name}")
        self.show_text(t)


LOWER_IS_WORSE = ("quality_score", "health_pass_rate")
TIER_STYLE = {"critical": "bold white on red", "important": "bold red", "warning": "yellow"}


class AlertsPanel(Panel):
    def show(self, view: FleetView) -> None:
        alerts = view.sorted_alerts()
        t = Text(no_wrap=True, overflow="ellipsis")
        counts = {tier: sum(1 for a in alerts if a.tier == tier) for tier in ("critical", "important", "warning")}
        t.append("ALERTS ", "bold")
        t.append(" ".join(f"{k[:4].upper()} {v}" for k, v in counts.items()))
        limit = max(1, self.size.height - 1) if self.size.height else 3
        for alert in alerts[:limit]:
            t.append("\n")
            t.append(f"{alert.tier.upper():9}", TIER_STYLE.get(alert.tier, ""))
            t.append(" ")
            op = "<" if alert.metric in LOWER_IS_WORSE else ">"
            t.append(f"{alert.metric} {format_value(alert.metric, alert.value)} {op} "
                     f"{format_value(alert.metric, alert.threshold)} on {alert.where} @{alert.at:.0f}s")
        if not alerts:
            t.append("\nnone")
        self.show_text(t)


class ResultBanner(Static):
    _shown = ""

    def show(self, record: ResultRecord | None, view: FleetView) -> None:
        if record is None and not view.finished:
            self.display = False
            return
        self.display = True
        if record is not None:
            text = (f"RESULT {record['outcome']} (exit {record['exit_code']}): {record['message']}  "
                    f"journal {record['journal']}  - press q to quit")
        else:
            text = f"RESULT {view.outcome}: {view.outcome_message}"
        if text != self._shown:  # its height follows the text: this one keeps the layout pass
            self._shown = text
            self.update(Text(text, no_wrap=False))
