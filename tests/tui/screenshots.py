"""Write SVG screenshots of the console into screenshots/ from recorded
SIMULATED-fleet event fixtures (deterministic; no engine runs):

    python3 -m tests.tui.screenshots [--out screenshots] [--size 160x48]

(from the repository root; development tooling, not part of the package)
"""
from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from .scenarios import canary_alert, load_events, scene_app

REPLAY = "replay"  # a SHOTS scene: the replay screen, paused (replay_scene_app)

SHOTS = [
    ("rolling-mid-batch", "rolling-mid-batch", []),
    ("canary-analysis-alert", "canary-alert", []),
    ("blue-green-before-switch", "blue-green-before-switch", []),
    ("rollback-in-progress", "rollback-in-progress", []),
    ("host-detail", "rolling-mid-batch", ["down", "enter"]),
    ("help", "canary-alert", ["question_mark"]),
    ("replay", REPLAY, []),
]


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
        app = replay_scene_app() if scene == REPLAY else scene_app(scene)
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            await pilot.pause(0.2)
            path = out / f"{filename}{suffix}.svg"
            app.save_screenshot(str(path.name), path=str(out))
            written.append(path)
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
