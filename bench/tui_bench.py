"""TUI cost at 100 / 1,000 / 5,000 simulated hosts.

    python3 bench/tui_bench.py [--sizes 100,1000,5000] [--ticks 20]

The fleet view is fed synthetic events shaped like a SIMULATED rolling run
(RunStarted with N instances, then per tick 2% of the instances change state
and get a health check, plus a metrics sample). Measured inside
App.run_test at 160x48:
  refresh ms   one refresh tick: fold the tick's events into the FleetView and
               repaint every panel and the visible table rows, until the
               frame is rendered (pilot.pause)
  apply ms     the reducer alone for the same events
  key ms       time from pilot.press to the screen reflecting it: "down"
               (cursor moves) and "/" + one character (table filtered)
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import fmt, start  # noqa: E402
from console.tui.app import RolloutApp  # noqa: E402
from console.tui.fleet_table import FleetTable  # noqa: E402
from console.view_state import FleetView  # noqa: E402
from strategies.events import HealthChecked, InstanceChanged, MetricsSampled, PhaseChanged, RunStarted, StepStarted  # noqa: E402

STATES = ["draining", "deploying", "restarting", "checking", "live"]


def start_events(n: int):
    keys = [f"agent-{i:05d}" for i in range(n)]
    return keys, [
        RunStarted(at=0.1, plan="bench.yaml", strategy="rolling", service="agent", version="2.0.0",
                   old_versions={k: "1.0.0" for k in keys},
                   instances=[{"key": k, "host": k, "address": k, "slot": "main", "port": 8080,
                               "unit": "agent@main.service"} for k in keys],
                   steps=[{"title": f"batch {b}/10", "instances": keys[b::10]} for b in range(10)], simulated=True),
        PhaseChanged(at=0.2, phase="running"),
        StepStarted(at=0.3, index=1, total=10, title="batch 1/10", instances=keys[::10]),
    ]


def tick_events(keys, t: float, rng: random.Random):
    events = []
    for k in rng.sample(keys, max(1, len(keys) // 50)):
        events.append(InstanceChanged(at=t, instance=k, phase=rng.choice(STATES), version="2.0.0"))
        events.append(HealthChecked(at=t, instance=k, ok=True, version="2.0.0", latency=0.02))
    events.append(MetricsSampled(at=t, pools={"stable": {"requests": 100, "errors": 1, "p95": 0.07}},
                                 cpu={k: 0.3 for k in keys[:50]}))
    return events


async def bench(n: int, ticks: int) -> dict[str, float]:
    rng = random.Random(7)
    keys, first = start_events(n)
    view = FleetView().apply_all(first)
    app = RolloutApp(view=view, refresh_hz=0.01, show_operator_keys=True)  # we drive the ticks
    refresh, apply_only, down, filt = [], [], [], []
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        for i in range(ticks):
            events = tick_events(keys, 1.0 + i, rng)
            t0 = time.perf_counter()
            app._queue.extend(events)
            app.repaint()
            await pilot.pause()
            refresh.append((time.perf_counter() - t0) * 1000)
            probe = FleetView().apply_all(first)
            t0 = time.perf_counter()
            probe.apply_all(events)
            apply_only.append((time.perf_counter() - t0) * 1000)
        table = app.screen.query_one(FleetTable)
        for _ in range(10):
            before = table.cursor
            t0 = time.perf_counter()
            await pilot.press("down")
            assert table.cursor == before + 1
            down.append((time.perf_counter() - t0) * 1000)
        for ch in "9876":
            await pilot.press("slash")
            t0 = time.perf_counter()
            await pilot.press(ch)
            assert all(ch in k for k in table.keys[:5])
            filt.append((time.perf_counter() - t0) * 1000)
            await pilot.press("escape")
    return {"hosts": n, "refresh": refresh, "refresh_p95": sorted(refresh)[int(0.95 * (len(refresh) - 1))],
            "apply": apply_only, "down": down, "filter": filt}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="100,1000,5000")
    p.add_argument("--ticks", type=int, default=20)
    args = p.parse_args()
    start("tui_bench")
    rows = [asyncio.run(bench(int(n), args.ticks)) for n in args.sizes.split(",")]
    print("median (min-max, n) per size; ms")
    for r in rows:
        print(f"{r['hosts']} hosts:")
        print(f"  refresh (fold a tick + frame)  {fmt(r['refresh'], 'ms', 1)}; p95 {r['refresh_p95']:.1f}")
        print(f"  reducer per tick               {fmt(r['apply'], 'ms', 2)}")
        print(f"  key down -> cursor             {fmt(r['down'], 'ms', 1)}")
        print(f"  key / + char -> filtered       {fmt(r['filter'], 'ms', 1)}")


if __name__ == "__main__":
    main()
