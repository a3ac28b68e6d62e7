"""The judge's panel: the reducer's window (pure), the metric it watches,
and the widget as a live console and a replay draw it (Pilot). Recorded
SIMULATED-fleet events (tests/tui/fixtures)."""
from __future__ import annotations

import pytest

from console.judged import SERIES, watched
from console.tui.app import RolloutApp
from console.tui.judge_plot import JudgePlot
from console.view_state import FleetView
from strategies.events import GateEvaluated

from .scenarios import load_events, scene_app
from .screenshots import replay_scene_app

CANARY = load_events("canary-bad")


def gates(events, name=None):
    return [e for e in events if e.kind == "gate" and (name is None or e.name == name)]


def test_the_window_holds_each_sample_of_the_current_window_only():
    rolling = load_events("rolling")
    names = list(dict.fromkeys(g.name for g in gates(rolling)))
    assert len(names) >= 2
    second = next(i for i, e in enumerate(rolling) if e.kind == "gate" and e.name == names[1])
    view = FleetView().apply_all(rolling[: second + 1])
    assert view.judge is not None and view.judge.name == names[1]  # a new window starts afresh
    assert [at for at, _ in view.judge.samples] == [rolling[second].at]
    view = FleetView().apply_all(CANARY)
    fail = gates(CANARY)[-1]
    assert view.judge.name == fail.name and view.judge.verdict == "fail" and view.judge.final
    assert [v for _, v in view.judge.samples] == [g.values for g in gates(CANARY, fail.name)]
    assert view.judge.findings[0]["metric"] == "error_rate"


def test_the_watched_metric_is_the_one_a_finding_names():
    assert watched([]) is SERIES["error_rate"]
    assert watched([{"metric": "p95_latency"}]) is SERIES["p95_latency"]
    assert watched([{"metric": "median_latency_vs_stable"}]) is SERIES["p95_latency"]
    assert watched([{"metric": "quality_score"}, {"metric": "error_rate"}]) is SERIES["quality_score"]
    assert watched([{"metric": "something_new"}]) is SERIES["error_rate"]


def plot_text(app) -> str:
    return app.query_one(JudgePlot).render().plain


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
async def test_live_panel_draws_release_baseline_threshold_and_verdict(size):
    app = scene_app("canary-alert")
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        text = plot_text(app)
        assert "error_rate: FAIL" in text
        assert "release" in text and "baseline" in text
        failed = gates(CANARY)[-1].values["error_rate"]
        top = max(failed, 0.01) * 1.15  # the axis reaches above the release's last value and the 1 % threshold
        assert f"{top * 100:.2f}%" in text and "0.00%" in text
        assert app.query_one(JudgePlot).size.height >= 7


async def test_a_latency_finding_switches_the_panel_to_latency():
    view = FleetView().apply_all(CANARY)
    view.apply(GateEvaluated(at=60.0, name="after batch 9", verdict="fail", reasons=[], final=True,
                             values={"p95_latency": 0.9, "baseline_p95_latency": 0.1},
                             findings=[{"metric": "median_latency_vs_stable", "value": 0.8, "limit": 0.125,
                                        "op": ">", "tier": "gate"}]))
    app = RolloutApp(view=view, now=view.elapsed)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        text = plot_text(app)
        assert "p95_latency: FAIL" in text and "ms" in text and "%" not in text.split("\n", 2)[1]


async def test_replay_draws_the_same_panel_and_follows_the_position():
    app = replay_scene_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        at_alert = plot_text(app)
        assert "error_rate: FAIL" in at_alert
        live = scene_app("canary-alert")
        async with live.run_test(size=(160, 47)) as live_pilot:  # the replay's banner takes a row
            await live_pilot.pause()
            assert plot_text(live) == at_alert  # same events, same panel, drawn the same
        await pilot.press("home")
        await pilot.pause()
        assert "no analysis window yet" in plot_text(app)
        first = next(i for i, e in enumerate(CANARY) if e.kind == "gate")
        for _ in range(first + 1):
            await pilot.press("full_stop")
        await pilot.pause()
        assert "error_rate: pending so far" in plot_text(app)
