"""Where a run sends traffic before its strategy goes on (strategies/safe_state.py),
and where a run starts from (strategies/origin.py): pure decisions, tested
as tables without I/O. The soak runs that taught each branch are named;
the engine tests that resume a simulated fleet (test_engine_sim.py) show
the engine applies the decision."""
from __future__ import annotations

import pytest

from inventory.nginx_config import Backend, LbState, render
from strategies.events import InstanceChanged, InstancePhase, Phase, PhaseChanged, RunStarted, StartedInstance
from strategies.origin import live_pools, start_point
from strategies.safe_state import SafeState, Serving, safe_state
from strategies.status import rebuild

OLD, NEW = "1.0.0", "2.0.0"


def b(n: int, port: int = 8080) -> Backend:
    return Backend(f"10.0.0.{n}", port)


def fleet(n: int, port: int = 8080, suffix: str = "") -> dict[str, str]:
    """Instance key -> backend, in instance order."""
    return {f"agent-0{i}{suffix}": str(b(i, port)) for i in range(1, n + 1)}


ROLLING = fleet(3)
BLUE, GREEN = fleet(2, 8080, "/blue"), fleet(2, 8081, "/green")
BG = {**BLUE, **GREEN}

CASES = {
    # 1. the ordinary case: healthy on the old version, in the original pools; a sick one left out and reverted
    "old version, one sick": dict(
        versions={"agent-01": OLD, "agent-02": None, "agent-03": OLD}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3))}, live={"stable": (b(1), b(3))},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(1), b(3))}, "stable", ("agent-02",), reroute=False)),
    # ...an instance already on the new version is not sent traffic beside the old ones (one version)
    "old version, mid-batch": dict(
        versions={"agent-01": NEW, "agent-02": OLD, "agent-03": OLD}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3))}, live={"stable": (b(2), b(3))},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(2), b(3))}, "stable", (), reroute=False)),
    # ...the default pool is the first one left with a server (the canary's pool emptied)
    "old version, first pool emptied": dict(
        versions={"agent-01": NEW, "agent-02": OLD, "agent-03": OLD}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"canary": (b(1),), "stable": (b(2), b(3))}, live={},
        want=SafeState(Serving.OLD_VERSION, {"canary": (), "stable": (b(2), b(3))}, "stable", (), reroute=True)),
    # ...each instance against its own old version (a fleet that ran two releases before)
    "old version, per instance": dict(
        versions={"agent-01": "0.9.0", "agent-02": OLD, "agent-03": "0.9.0"},
        old={"agent-01": "0.9.0", "agent-02": "0.9.0", "agent-03": OLD}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3))}, live={},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(1),)}, "stable", (), reroute=True)),
    # 2. soak seed 3 run 63: SIGTERM in a canary's last step, every instance on the new version
    "seed 3 run 63": dict(
        versions={k: NEW for k in ROLLING}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3)), "canary": ()}, live={"stable": (b(1), b(2), b(3))},
        want=SafeState(Serving.NEW_VERSION, {"stable": (b(1), b(2), b(3)), "canary": ()}, "stable", (),
                       reroute=False)),
    # 3. soak seed 6 run 59: SIGTERM as blue-green retired blue; green, live and healthy, is outside the
    # original pools (blue), and blue, stopped, is sick
    "seed 6 run 59": dict(
        versions={**{k: None for k in BLUE}, **{k: NEW for k in GREEN}}, old={k: OLD for k in BG}, backends=BG,
        original={"blue": (b(1), b(2))}, live={"green": (b(1, 8081), b(2, 8081))},
        want=SafeState(Serving.NEW_VERSION_LIVE, {"green": (b(1, 8081), b(2, 8081))}, "green",
                       ("agent-01/blue", "agent-02/blue"), reroute=False)),
    # soak seed 9 run 214: a green start the killed run began is unknown (start_point), blue still serves
    "seed 9 run 214": dict(
        versions={**{k: OLD for k in BLUE}, "agent-01/green": None, "agent-02/green": OLD},
        old={k: OLD for k in BG}, backends=BG,
        original={"blue": (b(1), b(2))}, live={"blue": (b(1), b(2))},
        want=SafeState(Serving.OLD_VERSION, {"blue": (b(1), b(2))}, "blue", ("agent-01/green",), reroute=False)),
    # a fresh run finds the fleet safe (preflight refused it otherwise): nothing to change. Blue-green's idle
    # colour, stopped before the run, is of unknown version with nothing to go back to: not reverted
    "fresh blue-green": dict(
        versions={**{k: OLD for k in BLUE}, **{k: None for k in GREEN}},
        old={**{k: OLD for k in BLUE}, **{k: None for k in GREEN}}, backends=BG,
        original={"blue": (b(1), b(2))}, live={"blue": (b(1), b(2))},
        want=SafeState(Serving.OLD_VERSION, {"blue": (b(1), b(2))}, "blue", (), reroute=False)),
    # ...and servers outside the run (the instances a --limit left out) are not the run's to reconcile
    "fresh rolling under --limit": dict(
        versions={k: OLD for k in ROLLING}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3), b(9))}, live={"stable": (b(1), b(2), b(3), b(9))},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(1), b(2), b(3))}, "stable", (), reroute=False)),
    # a crash between batches left the new version serving beside the old: rerouted to one version
    "crash between batches": dict(
        versions={"agent-01": NEW, "agent-02": OLD, "agent-03": OLD}, old={k: OLD for k in ROLLING},
        backends=ROLLING, original={"stable": (b(1), b(2), b(3))}, live={"stable": (b(1), b(2), b(3))},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(2), b(3))}, "stable", (), reroute=True)),
    # the same instances in nginx, but in other pools than the safe state's (a canary's split): rerouted
    "same instances, other pools": dict(
        versions={k: OLD for k in ROLLING}, old={k: OLD for k in ROLLING}, backends=ROLLING,
        original={"stable": (b(1), b(2), b(3))}, live={"stable": (b(2), b(3)), "canary": (b(1),)},
        want=SafeState(Serving.OLD_VERSION, {"stable": (b(1), b(2), b(3))}, "stable", (), reroute=True)),
    # 4. nothing healthy on either version: refused
    "nothing left": dict(
        versions={"agent-01": None, "agent-02": "1.5.0", "agent-03": None}, old={k: OLD for k in ROLLING},
        backends=ROLLING, original={"stable": (b(1), b(2), b(3))}, live={"stable": (b(1), b(2), b(3))},
        want=SafeState(Serving.NOTHING, {}, None, ("agent-01", "agent-03"), reroute=True)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_safe_state_of_a_resume(case):
    c = CASES[case]
    assert safe_state(c["versions"], c["old"], NEW, c["original"], c["live"], c["backends"]) == c["want"]


def test_only_the_new_version_warns():
    assert [s for s in Serving if s.warns] == [Serving.NEW_VERSION, Serving.NEW_VERSION_LIVE]


def managed(pools: dict[str, tuple[Backend, ...]]) -> str:
    """A managed nginx file as the console writes it."""
    return render(LbState(upstream="agent", pools=pools, default_pool=next(iter(pools))))


def test_a_fresh_run_starts_where_the_fleet_is():
    text = managed({"stable": (b(1), b(2))})
    origin = start_point("agent", {"lb-01": text}, {"agent-01": OLD, "agent-02": None}, None)
    assert origin.lb_files == {"lb-01": text}
    assert origin.live_pools == {"stable": (b(1), b(2))} == origin.original_pools("agent")
    assert origin.old_versions == origin.versions == {"agent-01": OLD, "agent-02": None}
    assert live_pools("agent", {}) == {}


def _started(lb_snapshot: dict[str, str]) -> RunStarted:
    return RunStarted(plan="p.yaml", strategy="blue_green", service="agent", version=NEW,
                      old_versions={"a/blue": OLD, "a/green": OLD},
                      instances=[StartedInstance(key=f"a/{c}", host="a", address="10.0.0.1", slot=c, unit=f"agent-{c}",
                                                 port=port) for c, port in (("blue", 8080), ("green", 8081))],
                      steps=[], simulated=True, lb_snapshot=lb_snapshot)


def test_a_resumed_run_starts_from_the_status_of_the_session_it_resumes():
    """The LB files and old versions are the dead session's (its
    RunStarted, folded); what nginx routes to now is read now; an instance
    the status shows mid-change is of unknown version whatever it answers
    (soak seed 9 run 214)."""
    before, now = managed({"blue": (b(1),)}), managed({"green": (b(1, 8081),)})
    status = rebuild([_started({"lb-01": before}),
                      InstanceChanged(instance="a/green", phase=InstancePhase.RESTARTING, version=NEW)])
    origin = start_point("agent", {"lb-01": now}, {"a/blue": OLD, "a/green": NEW}, status)
    assert origin.lb_files == {"lb-01": before} and origin.original_pools("agent") == {"blue": (b(1),)}
    assert origin.live_pools == {"green": (b(1, 8081),)}
    assert origin.old_versions == {"a/blue": OLD, "a/green": OLD}
    assert origin.versions == {"a/blue": OLD, "a/green": None}
    settled = rebuild([_started({"lb-01": before}),
                       InstanceChanged(instance="a/green", phase=InstancePhase.LIVE, version=NEW)])
    assert start_point("agent", {"lb-01": now}, {"a/blue": OLD, "a/green": NEW}, settled).versions == {
        "a/blue": OLD, "a/green": NEW}  # live when it stopped: its answer stands


def test_what_a_resume_starts_from_is_read_off_the_folded_status():
    started = RunStarted(plan="p.yaml", strategy="rolling", service="agent", version=NEW,
                         old_versions={"a": OLD, "b": "0.9.0"},
                         instances=[StartedInstance(key=k, host=k, address=f"10.0.0.{n}", slot="main", unit="agent",
                                                    port=8080) for n, k in enumerate("ab", 1)],
                         steps=[], simulated=True, lb_snapshot={"lb-01": "file"})
    events = [started, InstanceChanged(instance="a", phase=InstancePhase.DEPLOYING, version=OLD),
              PhaseChanged(phase=Phase.ROLLING_BACK, reason="gate failed")]
    status = rebuild(events)
    assert (dict(status.old_versions), status.lb_snapshot, status.changing(), status.rollback) == (
        {"a": OLD, "b": "0.9.0"}, {"lb-01": "file"}, ["a"], "gate failed")
    fresh = rebuild(events[:1])
    assert (dict(fresh.old_versions), fresh.lb_snapshot, fresh.changing(), fresh.rollback) == (
        {"a": OLD, "b": "0.9.0"}, {"lb-01": "file"}, [], "")
