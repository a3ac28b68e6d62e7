"""Work that must not grow with the square of the fleet (SIMULATED fleet).

bench/fleet_scale.py's 1,000-host canary at `--time-scale 1000` never
finished: every simulated request to the canary pool compared each of the
stable pool's backends (its nginx backups) with each canary backend, so one
request cost milliseconds of real time; at x1000 those milliseconds became
simulated seconds full of yet more requests (up to 2,000 per read), and
every analysis sample took longer than the last. Canary steps also found
the instances to move by list membership (Instance equality compares whole
hosts), O(hosts^2) per weight step.

These count equality comparisons of the model's value objects instead of
timing anything: the counts are deterministic and say which work grows.
"""
from __future__ import annotations

import functools

import pytest

from console.session import Session, load_inputs
from inventory.driver import PoolStats
from inventory.model import Host, Instance
from inventory.nginx_config import Backend, LbState
from inventory.simfleet import SimFleet
from simfleet import write_inventory, write_plan
from strategies.engine import Outcome


@pytest.fixture
def comparisons(monkeypatch):
    """Count __eq__ calls of Backend, Instance and Host (by class name)."""
    counts = {"Backend": 0, "Instance": 0, "Host": 0}
    for cls in (Backend, Instance, Host):
        original = cls.__eq__

        @functools.wraps(original)
        def counted(self, other, _original=original, _name=cls.__name__):
            counts[_name] += 1
            return _original(self, other)

        monkeypatch.setattr(cls, "__eq__", counted)
    return counts


def fleet_with_canary(stable: int, canary: int) -> tuple[SimFleet, list[Instance]]:
    hosts = [Host(f"agent-{n:04d}", f"10.0.{n // 250}.{n % 250 + 1}") for n in range(stable + canary)]
    insts = [Instance(h, "main", "agent@main.service", 8080) for h in hosts]
    backends = [Backend(h.address, 8080) for h in hosts]
    # the canary pool backed up by the stable pool, as strategies/topology.py renders a canary
    lb = LbState("agent", {"stable": tuple(backends[:stable]), "canary": tuple(backends[stable:])}, "stable",
                 weights={"canary": 50.0}, fallback={"canary": "stable"})
    fleet = SimFleet(lb, time_scale=1000.0)
    return fleet, insts


async def test_a_simulated_request_costs_no_work_per_backend_of_its_pool(comparisons):
    fleet, insts = fleet_with_canary(stable=300, canary=30)
    await fleet.open([i.host for i in insts], [])
    fleet.register_ports(insts)
    comparisons.update(Backend=0)
    stats = PoolStats()
    for _ in range(200):
        fleet._serve("canary", stats)
    assert stats.requests == 200 and stats.errors == 0
    # working out the pool's backups is once per LB state: at most one pass over the pools,
    # never per request (it was 200 requests x 300 backups x 30 canary backends, 1.8 million)
    assert comparisons["Backend"] <= 330


async def test_a_large_simulated_canary_does_work_linear_in_the_fleet(tmp_path, comparisons):
    hosts = 200
    inv = write_inventory(tmp_path / "inv.yaml", hosts=hosts)
    plan = write_plan(tmp_path / "plan.yaml", "canary", health={"interval": "1s", "passes": 2, "deadline": "3600s"})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"],
                      record=str(tmp_path / "journal.jsonl"), time_scale=100.0)
    result = await session.run()
    assert result.outcome == Outcome.SUCCEEDED
    assert set(result.versions.values()) == {"2.0.0"}
    # O(hosts) comparisons at most: the canary's weight steps compared every stable
    # instance with every moved one (Instance equality compares whole hosts), and every
    # simulated request to the canary pool compared its backups with its servers
    assert sum(comparisons.values()) <= 20 * hosts, comparisons
