"""Write SVG screenshots of the console into screenshots/ from recorded
SIMULATED-fleet event fixtures (deterministic; no engine runs):

    python3 -m tests.tui.screenshots [--out screenshots] [--size 160x48]

(from the repository root; development tooling, not part of the package)
"""
from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from console.view_state import FleetView

from .scenarios import canary_alert, load_events, scene_app

REPLAY = "replay"  # a SHOTS scene: the replay screen, paused (replay_scene_app)
ATTACH = "attach"  # a SHOTS scene: `console attach` on the canary at its alert (attach_scene_app)
SCALED = "scaled"  # a SHOTS scene: the rolling demo at --time-scale 3, the header says x3 (scaled_scene_app)

SHOTS = [
    ("rolling-mid-batch", "rolling-mid-batch", []),
    ("canary-analysis-alert", "canary-alert", []),
    ("canary-analysis-window", "canary-mid-window", []),
    ("blue-green-before-switch", "blue-green-before-switch", []),
    ("rollback-in-progress", "rollback-in-progress", []),
    ("host-detail", "rolling-mid-batch", ["down", "enter"]),
    ("help", "canary-alert", ["question_mark"]),
    ("replay", REPLAY, []),
    ("attach", ATTACH, []),
    ("rolling-time-scaled", SCALED, []),
]


class RecordedRun:
    """What `console attach` talks to (a RemoteRun), for a still picture:
    no live event arrives while it is taken."""

    def __init__(self, status: dict) -> None:
        self.status = status
        self._never = asyncio.Event()

    async def follow(self, on_event):
        await self._never.wait()
        return None

    async def command(self, name: str) -> dict:
        return {"accepted": False, "detail": "a screenshot"}


def canary_status(view) -> dict:
    """`console status` of the canary at its alert, as the run's control
    socket would answer (fixed pid, user and paths: deterministic)."""
    gate = view.gate
    return {"run_id": "canary-3451", "pid": 3451, "user": "ops", "simulated": True,
            "plan": "/srv/rollouts/examples/canary.yaml", "strategy": view.strategy, "upstream": "agent",
            "old_version": view.old_version, "version": view.version, "phase": view.phase,
            "phase_reason": view.phase_reason,
            "step": {"index": view.step_index, "total": view.steps_total, "title": view.step_title},
            "gate": {"name": gate.name, "verdict": gate.verdict, "remaining": view.gate_remaining(view.elapsed)}
            if gate else None, "weights": view.traffic_split(), "elapsed": view.elapsed, "viewers": 1,
            "time_scale": 1.0, "journal": "/home/ops/.local/state/rollout-console/journals/"
                                          f"20261201T223422-canary-{view.version}-3451.jsonl"}


def attach_scene_app():
    """`console attach` on the bad canary at its first alert, frozen clock."""
    from console.tui.app import RolloutApp

    view = FleetView().apply_all(canary_alert(load_events("canary-bad")))
    return RolloutApp(view=view, remote=RecordedRun(canary_status(view)), now=view.elapsed)


def scaled_scene_app():
    """The rolling scene as command 1 shows it: a SIMULATED clock at x3."""
    app = scene_app("rolling-mid-batch")
    app.view.time_scale = 3.0
    return app


def status_svg(path: Path, width: int) -> None:
    """`console status` (the real formatter) on the same run, as an SVG."""
    from rich.console import Console

    from console.control.commands import describe_run

    view = FleetView().apply_all(canary_alert(load_events("canary-bad")))
    console = Console(record=True, width=width, file=open(os.devnull, "w"), color_system="truecolor")
    console.print("$ console status", style="bold", highlight=False)
    console.print(describe_run(canary_status(view)), highlight=False, soft_wrap=False)
    console.save_svg(str(path), title="console status")


def replay_scene_app():
    """`console replay` of the bad canary, paused at the gate after its first
    alert (the canary-alert scene's event), at 10x: deterministic."""
    from console.tui.app import make_replay_app
    from console.tui.replay import ReplayController

    events = load_events("canary-bad")
    controller = ReplayController(events, simulated=True, source="examples/canary.yaml (canary-bad.jsonl)")
    controller.seek(len(canary_alert(events)))
    controller.speed = 10
    return make_replay_app(controller)


async def shoot(out: Path, size: tuple[int, int], suffix: str = "") -> list[Path]:
    written = []
    for filename, scene, keys in SHOTS:
        app = (replay_scene_app() if scene == REPLAY else attach_scene_app() if scene == ATTACH
               else scaled_scene_app() if scene == SCALED else scene_app(scene))
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            await pilot.pause(0.2)
            path = out / f"{filename}{suffix}.svg"
            app.save_screenshot(str(path.name), path=str(out))
            written.append(path)
    status = out / f"status{suffix}.svg"
    status_svg(status, size[0])
    written.append(status)
    return written


def main() -> None:
    p = argparse.ArgumentParser(prog="python3 -m tests.tui.screenshots")
    p.add_argument("--out", default="screenshots")
    p.add_argument("--size", default="160x48", help="WxH, e.g. 160x48 or 80x24")
    args = p.parse_args()
    w, h = (int(x) for x in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "" if (w, h) == (160, 48) else f"-{w}x{h}"
    for path in asyncio.run(shoot(out, (w, h), suffix)):
        print(path)


if __name__ == "__main__":
    main()
