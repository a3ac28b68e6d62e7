"""The SIMULATED fleet's sim_* variables: read as written when they are of
their kind, refused naming the host and the variable when not (they were
used unchecked, and `sim_rps: null` stopped the run with a TypeError)."""
from __future__ import annotations

import pytest

from inventory.driver import DriverError
from inventory.model import Host, Instance
from inventory.nginx_config import Backend, LbState
from inventory.simfleet import SimFleet, SimRelease


def fleet() -> SimFleet:
    return SimFleet(LbState("agent", {"stable": (Backend("10.0.0.1", 8080),)}, "stable"), time_scale=1000.0)


async def test_knobs_of_their_kind_are_read_as_written():
    agent = Host("agent-01", "10.0.0.1", vars={"sim_running_slots": ["blue"], "sim_version": "1.2.0",
                                               "sim_releases": {"2.0.0": {"error_rate": 0.5, "unknown": 1}}})
    f = fleet()
    await f.open([agent], [Host("lb-01", "10.0.0.9", vars={"sim_rps": "40"})])
    assert f._rps == 40.0
    assert [f._state(Instance(agent, slot, "agent@.service", 8080)).running for slot in ("main", "blue")] == [False, True]
    assert f._release(agent, "2.0.0") == SimRelease(error_rate=0.5)
    assert f._release(agent, "3.0.0") is None


@pytest.mark.parametrize("hosts, lbs, message", [
    ({"sim_running_slots": 5}, {}, "agent-01: open: sim_running_slots: expected a list of slots, got 5"),
    ({}, {"sim_rps": None}, "lb-01: open: sim_rps: expected requests per second, got nothing (null)"),
    ({}, {"sim_rps": [1]}, "lb-01: open: sim_rps: expected requests per second, got a list"),
])
async def test_open_refuses_a_knob_of_another_kind(hosts, lbs, message):
    with pytest.raises(DriverError) as err:
        await fleet().open([Host("agent-01", "10.0.0.1", vars=hosts)], [Host("lb-01", "10.0.0.9", vars=lbs)])
    assert str(err.value) == message


def test_releases_must_be_a_mapping():
    agent = Host("agent-01", "10.0.0.1", vars={"sim_releases": ["2.0.0"]})
    with pytest.raises(DriverError, match=r"^agent-01: release: sim_releases: expected a mapping of version -> "
                                          r"behaviour, got a list$"):
        fleet()._release(agent, "2.0.0")
    with pytest.raises(TypeError, match="a sim_releases entry is a mapping of behaviour"):
        SimRelease.from_vars("fast")
