"""Release history, read from the session journals: which release each run
shipped, from which, and how it ended. `console releases` prints it;
`console rollback` of a finished run takes its target from it.

A fleet's history is keyed by service and inventory path (the same service
on the simulated fleet and on real hosts are two histories). The fleet's
current release is the one its last *succeeded* run shipped; the previous
release is what that run replaced (the version most of its instances ran
before), so a second rollback toggles back, as Argo's `undo` does.
Journals are streamed record by record; only the header, the first
`run_started` event and the closing record are kept.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from strategies.events import RunStarted, from_dict

from .journal import default_dir, read_records
from .journal_header import Close, Header


@dataclass(frozen=True)
class Release:
    started: str        # the session's start, UTC ISO 8601
    service: str
    version: str
    previous: str | None  # what most instances ran before (None: nothing was installed)
    outcome: str        # the closing record's outcome, or "unfinished"
    plan: str
    inventory: str
    journal: str
    simulated: bool

    def line(self) -> str:
        return (f"{self.started}  {self.service}  {self.previous or '-'} -> {self.version}  {self.outcome:<12}"
                f"  {self.journal}" + ("  [SIMULATED]" if self.simulated else ""))


def read_release(path: Path) -> Release | None:
    """The release one journal records, or None (not a journal, no run)."""
    header: Header | None = None
    started: RunStarted | None = None
    outcome = "unfinished"
    try:
        for _n, record, _raw in read_records(path):
            if not isinstance(record, dict):
                continue
            kind = record.get("type")
            if kind == "header":
                header = Header.of(record)
            elif kind == "event" and started is None:
                started = _run_started(record.get("event"))
            elif kind == "close":
                outcome = Close.of(record).outcome or outcome
    except OSError:
        return None
    if header is None or started is None:
        return None
    olds = Counter(v for v in started.old_versions.values() if v)
    return Release(started=header.started, service=started.service, version=started.version,
                   previous=olds.most_common(1)[0][0] if olds else None, outcome=outcome,
                   plan=header.plan.path, inventory=header.inventory.path, journal=str(path),
                   simulated=header.simulated)


def _run_started(event: object) -> RunStarted | None:
    """The record's event if it is a readable RunStarted (a journal edited
    into something else is not a release)."""
    if not isinstance(event, dict) or event.get("kind") != "run_started":
        return None
    try:
        started = from_dict(event)
    except (TypeError, ValueError):
        return None
    return started if isinstance(started, RunStarted) else None


def history(directory: Path | None = None) -> list[Release]:
    """Every release recorded in a journal directory, oldest first."""
    where = (directory or default_dir()).resolve()
    if not where.is_dir():
        return []
    found = (read_release(p) for p in where.glob("*.jsonl"))
    return sorted((r for r in found if r is not None), key=lambda r: (r.started, r.journal))


def of_fleet(releases: Iterable[Release], service: str, inventory: str) -> list[Release]:
    want = str(Path(inventory).resolve())
    return [r for r in releases if r.service == service and str(Path(r.inventory).resolve()) == want]


def last_success(releases: Iterable[Release]) -> Release | None:
    done = [r for r in releases if r.outcome == "succeeded"]
    return done[-1] if done else None


def shipped(releases: Iterable[Release]) -> set[str]:
    """Every release that once served this fleet: shipped by a succeeded
    run, or found installed before one."""
    out: set[str] = set()
    for r in releases:
        if r.outcome == "succeeded":
            out.add(r.version)
        if r.previous:
            out.add(r.previous)
    return out
