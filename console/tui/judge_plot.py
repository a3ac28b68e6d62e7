"""The judge's panel: the release against its baseline on the metric the
judge is watching, the plan's threshold and the window's verdict, drawn
with plotext (textual-plotext's widget).

What it draws is what the judge decides on: each gate event carries the
window's pooled values (release and baseline side by side) and its typed
findings, so the metric shown is the one a finding names (the one that
failed the window, or is about to), else the error rate
(console/judged.py). Why a plot and not a second Sparkline: a sparkline
has no axis, so a threshold, a baseline beside the release and the point
where the verdict fell cannot be drawn on it; plotext draws all three in
text cells, on any terminal. The release is drawn with a solid marker and
the baseline with dots, so colour is never the only difference (NO_COLOR,
16 colours); the verdict is written into the title.

It redraws only when its window changed (a sample arrives every few
seconds; the app's refresh tick is 8 a second); building the plot is a few
milliseconds of string work on the UI thread, no I/O.
"""
from __future__ import annotations

from typing import Mapping

from textual_plotext import PlotextPlot

from strategies.metrics import METRICS, format_value

from ..judged import Series, threshold, watched
from ..view_state import FleetView, JudgeWindow

VERDICT_COLOUR = {"pass": "green", "fail": "red", "inconclusive": "orange", "pending": "cyan"}


def scale(metric: str) -> float:
    """Values are drawn as the views print them: percent, ms, or as is."""
    shown = METRICS[metric].shown if metric in METRICS else ""
    return 100.0 if shown == "percent" else 1000.0 if shown == "ms" else 1.0


def ticks(top: float, metric: str, count: int = 3) -> tuple[list[float], list[str]]:
    """`count` + 1 evenly spaced y ticks from 0 to `top` (drawn units),
    labelled as the metric prints."""
    factor = scale(metric)
    values = [top * i / count for i in range(count + 1)]
    return values, [format_value(metric, v / factor) for v in values]


class JudgePlot(PlotextPlot):
    """Release vs baseline on the watched metric, for the current window."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: tuple[int, int, tuple[int, int]] | None = None  # (window id, revision, size)

    def show(self, view: FleetView) -> None:
        window = view.judge
        key = (id(window), window.revision if window else -1, (self.size.width, self.size.height))
        if key == self._drawn:
            return
        self._drawn = key
        self.draw(window, view.thresholds)
        self.refresh()

    def draw(self, window: JudgeWindow | None, thresholds: Mapping[str, object]) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("s")
        if window is None:
            plt.title("judge: no analysis window yet")
            return
        series = watched(window.findings)
        factor = scale(series.metric)
        xs = [at for at, _ in window.samples]
        tops: list[float] = []
        for key, label, marker, colour in ((series.release, "release", "hd", "red"),
                                           (series.baseline, "baseline", "dot", "blue")):
            if key is None:
                continue
            points = [(x, float(value) * factor) for x, v in zip(xs, (v for _, v in window.samples))
                      if (value := v.get(key)) is not None]
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], marker=marker, color=colour, label=label)
                tops.extend(p[1] for p in points)
        limit = threshold(series, thresholds)
        if limit is not None:
            plt.hline(limit * factor, "yellow")  # not the release's red: the line is the limit, not data
            tops.append(limit * factor)
        self._verdict(window, series, xs)
        top = max(tops, default=0.0) * 1.15 or 1.0
        plt.ylim(0, top)
        plt.yticks(*ticks(top, series.metric))
        if xs:  # one sample still gets an axis a few seconds wide
            plt.xlim(min(xs) - (0 if max(xs) > min(xs) else 5), max(max(xs), min(xs) + 5))

    def _verdict(self, window: JudgeWindow, series: Series, xs: list[float]) -> None:
        """The verdict in the title; a decided window's last sample marked."""
        plt = self.plt
        decided = window.final or window.verdict == "fail"
        word = window.verdict.upper() if decided else f"{window.verdict} so far"
        # plotext drops a title wider than the plot: the window's name is in the GATE line above
        plt.title(f"{series.metric}: {word}"[: max(8, self.size.width - 2)])
        if xs and decided:
            plt.vline(xs[-1], VERDICT_COLOUR.get(window.verdict, "white"))
