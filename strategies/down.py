"""Dead and sick instances (pure): which instances that should serve are
down in one sample, and which of those are news.

nginx's log attributes every try to the backend that answered it
(inventory.driver.BackendStats), and with `max_fails=0` nginx keeps sending
a dead backend its share and retrying each failed try elsewhere: clients
see nothing, the backend's tries all fail. That, or a failed health probe,
names the instance within one sample interval. Before this existed, a dead
old host was noticed only by the capacity guard before the next batch
(~30 s later on the sandbox), and meanwhile its failed tries counted in the
baseline's error rate (15-18 %), which made the judge extend the window "to
tell 15.41 % from 17.41 %" and pass.

What follows from a finding is the caller's (strategies/gating.py,
strategies/traffic.py): an instance down leaves the baseline, a judged one
fails the window, and the capacity guard is asked at once.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping

from inventory.driver import BackendStats, PoolStats

# Fewest tries in one sample that must all have failed to call an instance
# down: one or two failed tries are a bad moment (a release's 500s, a
# burst), not a dead host; at 100 req/s over six hosts a dead one is sent
# about 80 a sample.
MIN_FAILED_TRIES = 3


class DownReason(enum.StrEnum):
    TRIES_FAILED = "tries_failed"  # nginx: every try sent to it in the sample failed
    PROBE_FAILED = "probe_failed"  # its health probe failed


@dataclass(frozen=True)
class Down:
    """One instance found down in one sample, and the evidence."""

    instance: str  # instance key
    reason: DownReason
    tries: int = 0  # tries nginx sent it in the sample (TRIES_FAILED)
    failed: int = 0


def per_backend(traffic: Mapping[str, PoolStats]) -> dict[str, BackendStats]:
    """Every backend's tries in one sample, summed over the pools."""
    out: dict[str, BackendStats] = {}
    for stats in traffic.values():
        for addr, st in stats.backends.items():
            out.setdefault(addr, BackendStats()).merge(st)
    return out


def find_down(should_serve: Mapping[str, str], tries: Mapping[str, BackendStats],
              probes: Mapping[str, bool]) -> list[Down]:
    """The instances down in one sample, of `should_serve` (backend
    "address:port" -> instance key): every one of at least
    MIN_FAILED_TRIES tries failed, or the health probe (instance key ->
    passed) failed. A probe failure is reported first: it needs no traffic."""
    out: list[Down] = []
    for addr, key in should_serve.items():
        if probes.get(key) is False:
            out.append(Down(key, DownReason.PROBE_FAILED))
            continue
        st = tries.get(addr)
        if st is not None and st.tries >= MIN_FAILED_TRIES and st.failed == st.tries:
            out.append(Down(key, DownReason.TRIES_FAILED, st.tries, st.failed))
    return out


def answering(should_serve: Mapping[str, str], tries: Mapping[str, BackendStats],
              probes: Mapping[str, bool]) -> set[str]:
    """Instances that showed they serve in the sample: a try succeeded, or
    the probe passed (and no try contradicts it)."""
    out = set()
    for addr, key in should_serve.items():
        st = tries.get(addr)
        if st is not None and st.failed < st.tries:
            out.add(key)
        elif probes.get(key) is True and (st is None or st.tries < MIN_FAILED_TRIES):
            out.add(key)
    return out


class DownWatch:
    """Which instances are known down now: a finding is news once, until
    the instance is seen answering again."""

    def __init__(self) -> None:
        self.down: dict[str, Down] = {}

    def see(self, found: Iterable[Down], up: Iterable[str]) -> list[Down]:
        """Fold one sample in; return the findings not known before."""
        for key in up:
            self.down.pop(key, None)
        news = [d for d in found if d.instance not in self.down]
        self.down.update({d.instance: d for d in found})
        return news

    def __contains__(self, key: object) -> bool:
        return key in self.down
