"""Where a run starts from, as one typed value.

Preflight reads the fleet (the LB files, a probe of every instance) and
`start_point` turns what it read into an `Origin`: the LB files before any
change, what nginx routes to now, and each instance's version before the
run and now. The engine hands it to each service through the service's own
`start_from`, so no code outside a service writes that service's state.

A resumed session starts from the origin of the session it resumes: the
dead session's `RunStarted` journalled its LB files and old versions, and
its folded status (strategies/status.py) says which instances it was
changing and whether it was rolling back. A `Resume` carries that status
whole: nothing a resume starts from is read anywhere else.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from inventory.nginx_config import Backend, parse_pools

from .status import RunStatus


@dataclass(frozen=True)
class Resume:
    """A run that resumes a session that died: that session's journal and
    the status its events fold into (strategies/status.py rebuild). The
    resume is an ordinary run started from that status: its LB files and
    old versions (the dead session's RunStarted), the instances it was
    changing, whether it was rolling back."""

    journal: str
    status: RunStatus


@dataclass(frozen=True)
class Origin:
    """Where the run starts from. Built once by preflight, then read only."""

    lb_files: Mapping[str, str]  # every LB's managed file before any change of the run (its snapshot)
    live_pools: Mapping[str, tuple[Backend, ...]]  # the pools nginx routed to at preflight
    old_versions: Mapping[str, str | None]  # what each instance ran before the run
    versions: Mapping[str, str | None] = field(default_factory=dict)  # what it runs now (None: unknown)

    def original_pools(self, upstream: str) -> dict[str, tuple[Backend, ...]]:
        """The pools of the managed file before the run."""
        return parse_pools(next(iter(self.lb_files.values()), ""), upstream)


def live_pools(upstream: str, texts: Mapping[str, str]) -> dict[str, tuple[Backend, ...]]:
    """The pools nginx routes to now, from the LB files preflight read."""
    return parse_pools(next(iter(texts.values())), upstream) if texts else {}


def start_point(upstream: str, texts: Mapping[str, str], current: Mapping[str, str | None],
                resume: RunStatus | None) -> Origin:
    """The origin of a run from what preflight read: the LB files `texts`
    and each instance's version as its probe answered (`current`, None when
    it did not). A fresh run starts where the fleet is; a resumed one from
    the files and old versions of the session it resumes (its status)."""
    live = live_pools(upstream, texts)
    if resume is None:
        return Origin(lb_files=dict(texts), live_pools=live, old_versions=dict(current), versions=dict(current))
    versions = dict(current)
    for key in resume.changing():
        # Caught mid-change, it is changed again, watched, whatever it answers now
        # (reinstalled on the old version like an unhealthy one, then deployed as usual):
        # on the old version the new release may be installed under it (killed between
        # deploy and restart: its next restart would bring that up); on the new version
        # no session saw its start end within the deadline (soak seed 9 run 214: a slow
        # start the killed run began ended by the resume, which switched to it).
        versions[key] = None
    return Origin(lb_files=dict(resume.lb_snapshot), live_pools=live, old_versions=dict(resume.old_versions),
                  versions=versions)
