"""Deterministic scenes for snapshots and screenshots: recorded event
fixtures (tests/tui/fixtures/*.jsonl, from the embedded SIMULATED fleet) cut
at interesting moments and folded into a FleetView. No engine, no clock.

Development tooling: it lives under tests/ so the installed package neither
ships nor needs it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from console.view_state import FleetView
from strategies.events import Event, from_dict

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_events(name: str, fixtures: Path = FIXTURES) -> list[Event]:
    with open(fixtures / f"{name}.jsonl") as fh:
        return [from_dict(json.loads(line)) for line in fh if line.strip()]


def _cut(events: list[Event], stop: Callable[[int, Event, list[Event]], bool]) -> list[Event]:
    for i, event in enumerate(events):
        if stop(i, event, events):
            return events[: i + 1]
    return events


def rolling_mid_batch(events: list[Event]) -> list[Event]:
    seen = {"step3": False, "checking": 0}

    def stop(_i, e, _all):
        if e.kind == "step_started" and e.index == 3:
            seen["step3"] = True
        if seen["step3"] and e.kind == "instance" and e.phase == "checking":
            seen["checking"] += 1
        return seen["checking"] == 1
    return _cut(events, stop)


def canary_alert(events: list[Event]) -> list[Event]:
    seen = {"alert": False}

    def stop(_i, e, _all):
        if e.kind == "alert":
            seen["alert"] = True
            return False
        return seen["alert"] and e.kind == "gate"
    return _cut(events, stop)


def bluegreen_before_switch(events: list[Event]) -> list[Event]:
    cut = _cut(events, lambda i, e, a: i + 1 < len(a) and a[i + 1].kind == "step_started"
               and a[i + 1].title.startswith("switch to"))
    return cut


def rollback_in_progress(events: list[Event]) -> list[Event]:
    seen = {"rb": False}

    def stop(_i, e, _all):
        if e.kind == "phase" and e.phase == "rolling back":
            seen["rb"] = True
        return seen["rb"] and e.kind == "instance" and e.phase == "restarting"
    return _cut(events, stop)


def canary_mid_window(events: list[Event]) -> list[Event]:
    """The bad canary's first window after its second sample: not decided yet."""
    seen = {"gates": 0}

    def stop(_i, e, _all):
        seen["gates"] += e.kind == "gate"
        return seen["gates"] == 2
    return _cut(events, stop)


SCENES = {
    "rolling-mid-batch": ("rolling", rolling_mid_batch),
    "canary-alert": ("canary-bad", canary_alert),
    "blue-green-before-switch": ("blue-green", bluegreen_before_switch),
    "rollback-in-progress": ("canary-bad", rollback_in_progress),
    "canary-mid-window": ("canary-bad", canary_mid_window),
    "finished": ("blue-green", lambda events: events),
}


def scene_view(name: str, fixtures: Path = FIXTURES) -> FleetView:
    fixture, cut = SCENES[name]
    return FleetView().apply_all(cut(load_events(fixture, fixtures)))


async def canned_journal_tail(key: str) -> str:
    unit = "agent@main.service" if "/" not in key else f"agent@{key.split('/')[1]}.service"
    return (f"[simulated] {unit}: Started agent ({key}).\n"
            f"[simulated] {unit}: listening; health /health ok\n")


def scene_app(name: str, fixtures: Path = FIXTURES):
    """A static (replay) app showing one scene with a frozen clock."""
    from console.tui.app import RolloutApp

    view = scene_view(name, fixtures)
    return RolloutApp(view=view, now=view.elapsed, journal_tail=canned_journal_tail,
                      show_operator_keys=True)
