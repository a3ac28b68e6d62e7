"""A journal recorded by an older console still reads and replays: events
typed on the way in (an instance's phase an InstancePhase, RunStarted's
instances StartedInstance), written back with every recorded field as it was, and
the fleet view built from them as the operator saw it.

The journal is a real one, kept with the soak run that recorded it (real
sandbox hosts, commit f9b5469, before events were typed this far)."""
import gzip
import json
from pathlib import Path

from console.journal import read_journal
from console.view_state import FleetView
from strategies.events import InstanceChanged, InstancePhase, RunStarted, StartedInstance

RECORDED = Path(__file__).resolve().parents[1] / "bench/results/2026-12-01-f9b5469/cases/seed1-run45/run.journal.jsonl.gz"


def _journal(tmp_path: Path) -> Path:
    path = tmp_path / "run.journal.jsonl"
    path.write_bytes(gzip.decompress(RECORDED.read_bytes()))
    return path


def _recorded_events(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r["event"] for r in records if r.get("type") == "event"]


def test_an_old_journal_reads_into_typed_events_and_writes_back_as_recorded(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    journal = read_journal(path)
    recorded = _recorded_events(path)
    assert len(journal.events) == len(recorded) > 100
    for event, written in zip(journal.events, recorded):  # nothing lost or changed on the way through
        again = event.to_dict()
        assert {k: again[k] for k in written} == written  # (fields added since then come with their defaults)

    started = next(e for e in journal.events if isinstance(e, RunStarted))
    assert started.instances and all(isinstance(i, StartedInstance) for i in started.instances)
    first = next(r for r in recorded if r["kind"] == "run_started")["instances"][0]
    assert started.instances[0] == StartedInstance(**first)
    changes = [e for e in journal.events if isinstance(e, InstanceChanged)]
    assert changes and all(isinstance(e.phase, InstancePhase) for e in changes)


def test_an_old_journal_replays_into_the_fleet_view_the_operator_saw(tmp_path: Path) -> None:
    path = _journal(tmp_path)
    journal = read_journal(path)
    view = FleetView()
    view.apply_all(journal.events)
    recorded = _recorded_events(path)
    last_phase = {r["instance"]: r["phase"] for r in recorded if r["kind"] == "instance"}
    listed = {i["key"]: i for i in next(r for r in recorded if r["kind"] == "run_started")["instances"]}
    assert set(view.rows) == set(listed)
    for key, row in view.rows.items():
        assert (row.host, row.address, row.port, row.unit) == (
            listed[key]["host"], listed[key]["address"], listed[key]["port"], listed[key]["unit"])
        if key in last_phase:
            assert row.state == last_phase[key] and type(row.state) is str  # the words a view shows
