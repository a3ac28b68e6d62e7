"""The Gatekeeper alone, over fakes of the narrow protocols it takes
(strategies/gating.py JudgedInstances, JudgedTraffic, GateControl): no
engine, no TrafficControl, no fleet. The capacity guard before a drain, and
an analysis window that tells the traffic it reads traffic itself for as
long as it is open, however it ends."""
from __future__ import annotations

from typing import Mapping, Sequence

import pytest

from inventory.clock import Clock
from inventory.driver import HealthSample, PoolStats
from inventory.model import Host, Instance
from inventory.nginx_config import Backend
from simfleet import write_plan
from strategies.control import GateFailed
from strategies.down import Down
from strategies.events import CapacityChecked, Event, Notice
from strategies.gating import Gatekeeper
from strategies.plan import load_plan


def instance(n: int) -> Instance:
    return Instance(host=Host(name=f"agent-{n:02d}", address=f"10.0.0.{n}"), slot="main", unit="agent", port=8080)


FLEET = [instance(n) for n in range(1, 5)]


class Instances:
    def __init__(self, dead: set[str]) -> None:
        self.dead = dead
        self.version = "2.0.0"
        self.versions: dict[str, str | None] = {i.key: "1.0.0" for i in FLEET}
        self.old_versions: dict[str, str | None] = dict(self.versions)
        self.restarted_at: dict[str, float] = {}

    async def probe(self, inst: Instance, *, quiet: bool = False, idle: bool = False) -> HealthSample:
        ok = inst.key not in self.dead
        return HealthSample(instance=inst.key, ok=ok, version="1.0.0" if ok else None, latency=0.01)


class Traffic:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.untouched: tuple[Backend, ...] = ()
        self.window: list[str] = []  # "open" / "read" / "close", in order

    async def read(self) -> dict[str, PoolStats]:
        self.window.append("read")
        return {}

    def report_down(self, traffic: Mapping[str, PoolStats], probes: Mapping[str, bool],
                    should_serve: Sequence[Instance], where: str) -> list[Down]:
        return []

    def open_window(self) -> None:
        self.window.append("open")

    def close_window(self) -> None:
        self.window.append("close")


class Control:
    def __init__(self, promoted: bool = False) -> None:
        self.promoted = promoted
        self.held: list[str] = []

    async def wait(self, seconds: float, promotable: bool = False) -> None:
        return None

    async def wait_for_promotion(self, title: str) -> bool:
        self.held.append(title)
        return True

    def take_promotion(self) -> bool:
        return self.promoted


class Driver:
    """The InstanceDriver the Gatekeeper samples CPU and metrics through;
    neither test reaches a sample's readings, so every call fails loudly."""

    clock = Clock()

    def __getattr__(self, name: str) -> None:
        raise AssertionError(f"the driver's {name} was used")


def gatekeeper(tmp_path, dead=(), control=None, **sections):
    plan = load_plan(write_plan(tmp_path / "plan.yaml", "rolling", **sections))
    events: list[Event] = []
    ops, traffic = Instances(set(dead)), Traffic()
    gates = Gatekeeper(plan, Driver(), ops, traffic, control or Control(), events.append)  # type: ignore[arg-type]
    return gates, traffic, events


async def test_a_drain_that_would_leave_too_few_serving_waits_for_a_human_naming_the_down_host(tmp_path):
    control = Control()
    gates, _, events = gatekeeper(tmp_path, dead={"agent-04"}, control=control)
    await gates.guard_capacity("batch 2", FLEET, FLEET[:2], floor=3)
    checked = [e for e in events if isinstance(e, CapacityChecked)]
    assert [(c.serving, c.after, c.floor, c.unhealthy, c.ok) for c in checked] == [(3, 1, 3, ["agent-04"], False)]
    assert control.held == ["batch 2: agent-04 unhealthy (not touched by this release); draining would leave 1 "
                            "of 4 serving, the plan allows no fewer than 3"]
    assert any(isinstance(e, Notice) and e.level == "error" for e in events)


async def test_the_capacity_guard_applies_on_failure_when_the_plan_says_so(tmp_path):
    control = Control()
    gates, _, _ = gatekeeper(tmp_path, dead={"agent-04"}, control=control,
                             rolling={"batch": 2, "capacity_guard": "on_failure"})
    with pytest.raises(GateFailed, match="agent-04 unhealthy"):
        await gates.guard_capacity("batch 2", FLEET, FLEET[:2], floor=3)
    assert control.held == []


async def test_enough_serving_drains_without_stopping(tmp_path):
    control = Control()
    gates, _, events = gatekeeper(tmp_path, control=control)
    await gates.guard_capacity("batch 2", FLEET, FLEET[:2], floor=2)
    assert control.held == [] and [e.ok for e in events if isinstance(e, CapacityChecked)] == [True]


async def test_a_window_holds_the_traffic_s_reads_from_its_opening_to_its_end(tmp_path):
    gates, traffic, _ = gatekeeper(tmp_path, control=Control(promoted=True))  # promoted: ends at its first wait
    await gates.gate("batch 1", 10.0, FLEET[:1])
    assert traffic.window == ["open", "read", "close"]


async def test_a_window_that_fails_still_lets_the_traffic_go(tmp_path):
    class Failing(Traffic):
        async def read(self) -> dict[str, PoolStats]:
            if "open" in self.window:
                raise GateFailed("the LB went away")
            return {}

    plan = load_plan(write_plan(tmp_path / "plan.yaml", "rolling"))
    traffic = Failing()
    gates = Gatekeeper(plan, Driver(), Instances(set()), traffic, Control(), lambda e: None)  # type: ignore[arg-type]
    with pytest.raises(GateFailed):
        await gates.gate("batch 1", 10.0, FLEET[:1])
    assert traffic.window == ["open", "close"]
