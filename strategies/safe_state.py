"""Where a run sends traffic before its strategy goes on: the decision.

Every run starts by reconciling the fleet towards a safe state: traffic
only to instances healthy on one version, and the instances that are not
healthy (or were caught mid-change) put back on their old version.
`safe_state` decides which, from typed facts and nothing else; the engine
(Engine.reconcile) applies it. A fresh run finds the fleet safe already
(preflight refused it otherwise), so the decision changes nothing there;
after a crash the fleet is in whatever state the dead session left it, and
a resume is the same run from that status, not a path of its own.

The order of preference, each a fix a soak run taught:
1. healthy on the old version, among the pools nginx routed to before the
   run (the ordinary case);
2. nothing answers on the old version: the dead session had finished (or
   nearly) shipping the new one (soak seed 3 run 63: SIGTERM in a canary's
   last step, every instance on it). One version is what makes a fleet
   safe, so traffic stays on the new one, in the original pools; the
   strategy then finds them done, or rolls them back;
3. the same, among the pools nginx routed to at preflight: blue-green's
   green lies outside the original pools once blue was retired (soak
   seed 6 run 59: SIGTERM as blue was retired, then `resume --rollback`
   refused with green live and healthy);
4. none of these: nothing is left to take traffic, the resume is refused.

An instance whose version is unknown is sick: unhealthy after the crash,
or caught mid-change by it (soak seed 9 run 214: a slow start the killed
run began, which no session saw end; strategies/origin.py start_point).
It is put back on its old version when that is known; one that was not
running before the run (blue-green's idle colour) has nothing to go back to.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Mapping

from inventory.nginx_config import Backend

Pools = Mapping[str, tuple[Backend, ...]]


class Serving(enum.StrEnum):
    """Which instances the safe state sends traffic to (the branch taken)."""

    OLD_VERSION = "old_version"  # healthy on the old version, in the original pools
    NEW_VERSION = "new_version"  # none answers on the old version: on the new one, in the original pools
    NEW_VERSION_LIVE = "new_version_live"  # on the new one, in the pools nginx routed to at preflight
    NOTHING = "nothing"  # no healthy instance on either version is left to take traffic

    @property
    def warns(self) -> bool:
        """Does the operator hear that traffic stays on the new version?"""
        return self in (Serving.NEW_VERSION, Serving.NEW_VERSION_LIVE)


@dataclass(frozen=True)
class SafeState:
    serving: Serving
    pools: dict[str, tuple[Backend, ...]]  # the pools to apply ({} when serving is NOTHING)
    default_pool: str | None  # the first pool left with a server (None when serving is NOTHING)
    # instance keys of unknown version whose old version is known, in instance order: reverted to it
    sick: tuple[str, ...]
    reroute: bool  # nginx routes the run's instances otherwise than `pools`: the change must be applied


def _keep(versions: Mapping[str, str | None], backends: Mapping[str, str], want: Mapping[str, str | None],
          among: Pools) -> tuple[dict[str, tuple[Backend, ...]], str | None]:
    """The pools `among`, each left with the servers of instances healthy on
    the version `want` names for them; the first pool left with one."""
    keep = {backends[k] for k in backends if versions.get(k) is not None and versions[k] == want.get(k)}
    pools = {p: tuple(b for b in bs if str(b) in keep) for p, bs in among.items()}
    return pools, next((p for p in among if pools[p]), None)


def _routing(pools: Pools, backends: Mapping[str, str]) -> list[tuple[str, frozenset[str]]]:
    """Which of the run's instances each pool routes to, the pools with none
    left out, in the pools' order (the first is where traffic goes by default)."""
    ours = set(backends.values())
    members = ((p, frozenset(str(b) for b in bs if str(b) in ours)) for p, bs in pools.items())
    return [(p, m) for p, m in members if m]


def safe_state(versions: Mapping[str, str | None], old_versions: Mapping[str, str | None], target: str,
               original: Pools, live: Pools, backends: Mapping[str, str]) -> SafeState:
    """Decide the safe state. `versions`: what each instance runs now (None:
    unhealthy or caught mid-change); `old_versions`: what it ran before the
    run; `target`: the release being shipped; `original`: the pools before
    the run; `live`: the pools nginx routed to at preflight; `backends`:
    each instance's key to its address:port, in instance order."""
    sick = tuple(k for k in backends if versions.get(k) is None and old_versions.get(k))
    new = {k: target for k in backends}
    for serving, want, among in ((Serving.OLD_VERSION, old_versions, original),
                                 (Serving.NEW_VERSION, new, original),
                                 (Serving.NEW_VERSION_LIVE, new, live)):
        pools, default = _keep(versions, backends, want, among)
        if default is not None:
            return SafeState(serving, pools, default, sick, _routing(pools, backends) != _routing(live, backends))
    return SafeState(Serving.NOTHING, {}, None, sick, bool(_routing(live, backends)))
