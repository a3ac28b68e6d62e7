"""The report's plots, drawn by matplotlib as inline SVG.

Why matplotlib: it is the best-kept plotting library in Python (a release
every few months for twenty years, NumFOCUS-backed), and its SVG backend
writes plain vector markup that any browser shows with no script at all:
the page stays one file that works offline, prints, and is archived with
the journal. Plotly was the alternative; its page needs its JavaScript
bundle (several MB) embedded in every report to work offline, and renders
nothing without a script engine. Only its SVG output is used (no GUI
toolkit, no pyplot global state), and matplotlib is imported only when
an HTML report is asked for: it is an optional extra (`pip install
rollout-console[report]`), so a deploy host does not carry it.

Each plotted series gets an SVG id (`gid`), so a test (and a curious
reader of the markup) can find it: `release-error_rate`,
`baseline-p95_latency`, `threshold-error_rate`, `split-<pool>`,
`version-<instance>`, `verdict-<n>`.
"""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from inventory.model import Colour
from strategies.events import GateEvaluated
from strategies.metrics import format_value
from strategies.topology import Pool

from ..judged import SERIES, threshold
from .extract import Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RELEASE, BASELINE, LIMIT = "#c0392b", "#2471a3", "#7d3c98"
VERDICT_STYLE = {"pass": ("o", "#1e8449"), "fail": ("X", "#c0392b"), "inconclusive": ("s", "#d68910")}
PALETTE = ("#2471a3", "#c0392b", "#1e8449", "#d68910", "#7d3c98", "#17a589", "#a04000", "#566573")
# the canary is the release, as in the judged plots; blue-green's colours are their names
POOL_COLOURS: dict[str, str] = {Pool.CANARY: RELEASE, Pool.STABLE: BASELINE, Colour.BLUE: "#2471a3", Colour.GREEN: "#1e8449"}
NOT_INSTALLED = "#d5d8dc"  # an idle blue-green colour before its first deploy
MAX_LANES = 60  # instances drawn one lane each; a bigger fleet shows its first 60 and says so


class MissingPlotting(RuntimeError):
    """matplotlib is not installed (the `report` extra)."""


def _figure(height: float) -> Figure:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise MissingPlotting("the HTML report draws with matplotlib: pip install 'rollout-console[report]'") from None
    return Figure(figsize=(10, height), dpi=96, layout="constrained")


def to_svg(fig: Figure) -> str:
    """The figure as SVG markup to inline in HTML (text kept as text, ids
    stable from run to run so reports diff cleanly)."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rollout-console"}):
        fig.savefig(out, format="svg", metadata={"Date": None, "Creator": "rollout-console"})
    text = out.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML


def _steps(ax: Axes, report: Report) -> None:
    """Step boundaries as faint lines, on one time axis shared by every plot."""
    ax.set_xlim(0, max(report.end, 1.0))
    for s in report.steps:
        ax.axvline(s.start, color="#d5d8dc", linewidth=0.8, zorder=0)


def _windowed(samples: list[GateEvaluated], key: str) -> tuple[list[float], list[float]]:
    """x, y with a gap (NaN) between windows: each window's pooled value
    starts afresh, so its line must not join the last one's."""
    xs: list[float] = []
    ys: list[float] = []
    window = None
    for s in samples:
        if window is not None and s.name != window:
            xs.append(math.nan)
            ys.append(math.nan)
        window = s.name
        value = s.values.get(key)
        xs.append(s.at)
        ys.append(math.nan if value is None else float(value))
    return xs, ys


def judged(report: Report, metric: str) -> str:
    """Release against baseline on `metric`, pooled per window as the judge
    saw it, the plan's threshold, and each window's closing verdict."""
    series = SERIES[metric]
    scale = 100.0 if metric == "error_rate" else 1000.0
    unit = "%" if metric == "error_rate" else "ms"
    fig = _figure(3.2)
    ax = fig.add_subplot()
    _steps(ax, report)
    for key, label, colour, style in ((series.release, "release", RELEASE, "-"),
                                      (series.baseline, "baseline", BASELINE, "--")):
        if key is None:
            continue
        xs, ys = _windowed(report.samples, key)
        (line,) = ax.plot(xs, [y * scale for y in ys], style, color=colour, linewidth=1.6, marker=".",
                          markersize=4, label=f"{label} (pooled window)")
        line.set_gid(f"{label}-{metric}")
    limit = threshold(series, report.run.thresholds if report.run else {})
    if limit is not None:
        ax.axhline(limit * scale, color=LIMIT, linestyle=":", linewidth=1.4,
                   label=f"threshold {format_value(metric, limit)}").set_gid(f"threshold-{metric}")
    for n, v in enumerate(report.verdicts):
        value = v.values.get(series.release)
        if value is None:
            continue
        marker, colour = VERDICT_STYLE.get(v.verdict, ("D", "#566573"))
        (point,) = ax.plot([v.at], [float(value) * scale], marker, color=colour, markersize=9,
                           markeredgecolor="black", markeredgewidth=0.6)
        point.set_gid(f"verdict-{n}")
        ax.annotate(v.verdict, (v.at, float(value) * scale), textcoords="offset points", xytext=(4, 6),
                    fontsize=8, color=colour)
    ax.set_ylabel(f"{metric} ({unit})")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", color="#eaeded")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{metric}: release against baseline, as judged", fontsize=10, loc="left")
    return to_svg(fig)


def split(report: Report) -> str:
    """The traffic split over time (percent per pool), as a stacked step area."""
    fig = _figure(2.6)
    ax = fig.add_subplot()
    _steps(ax, report)
    pools = sorted({p for s in report.splits for p in s.shares})
    xs = [s.at for s in report.splits] + [report.end]
    bottom = [0.0] * len(xs)
    for i, pool in enumerate(pools):
        ys = [s.shares.get(pool, 0.0) for s in report.splits]
        ys.append(ys[-1] if ys else 0.0)
        top = [b + y for b, y in zip(bottom, ys)]
        colour = POOL_COLOURS.get(pool, PALETTE[(i + 2) % len(PALETTE)])
        ax.fill_between(xs, bottom, top, step="post", color=colour, alpha=0.6,
                        label=pool).set_gid(f"split-{pool}")
        ax.step(xs, top, where="post", color=colour, linewidth=1.2)  # a 1 % share still shows as a line
        bottom = top
    ax.set_ylim(0, 100)
    ax.set_ylabel("share of traffic (%)")
    ax.set_xlabel("seconds since the run started")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    unweighted = any(not s.weighted for s in report.splits)
    ax.set_title("traffic split" + (" (unweighted pools: share by backend count)" if unweighted else ""),
                 fontsize=10, loc="left")
    return to_svg(fig)


def versions(report: Report) -> str:
    """Each instance's version over time: one lane per instance."""
    instances = sorted({s.instance for s in report.versions})
    shown = instances[:MAX_LANES]
    colours: dict[Any, str] = {None: NOT_INSTALLED}
    for s in report.versions:
        colours.setdefault(s.version, PALETTE[(len(colours) - 1) % len(PALETTE)])
    fig = _figure(max(1.6, 0.22 * len(shown) + 0.9))
    ax = fig.add_subplot()
    lane = {name: i for i, name in enumerate(shown)}
    for s in report.versions:
        if s.instance not in lane:
            continue
        ax.broken_barh([(s.start, max(s.end - s.start, 0.01))], (lane[s.instance] - 0.4, 0.8),
                       facecolors=colours[s.version]).set_gid(f"version-{s.instance}-{s.start:g}")
    _steps(ax, report)
    ax.set_yticks(range(len(shown)), shown, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    from matplotlib.patches import Patch

    drawn = {s.version for s in report.versions}
    ax.legend(handles=[Patch(color=c, label=str(v) if v else "not installed") for v, c in colours.items()
                       if v in drawn], loc="upper left",
              bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    more = f" (first {len(shown)} of {len(instances)})" if len(instances) > len(shown) else ""
    ax.set_title(f"version of each instance{more}", fontsize=10, loc="left")
    return to_svg(fig)


def all_plots(report: Report) -> list[tuple[str, str, str]]:
    """(id, caption, svg) of every plot the report has data for."""
    out = []
    if report.samples:
        out.append(("plot-error-rate", "Error rate of the release against its baseline, pooled over each analysis "
                    "window as the judge saw it; dotted: the plan's threshold; markers: each window's verdict.",
                    judged(report, "error_rate")))
        out.append(("plot-latency", "p95 latency of the release against its baseline, pooled per window; dotted: "
                    "the plan's p95 threshold.", judged(report, "p95_latency")))
    if report.splits:
        out.append(("plot-split", "Traffic split over time, as the load balancers served it.", split(report)))
    if report.versions:
        out.append(("plot-versions", "Version of each instance over time.", versions(report)))
    return out
