"""The run's status as one typed record (console/status_record.py): read
back and checked field by field, refused with one line when malformed,
and rebuilt from a journal by `console replay --status [--at]` exactly as
the events before that time fold (real CLI processes, a recorded journal)."""
from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from console.journal import read_journal
from console.status_record import EndedRecord, MalformedRecord, ReplayStatus, StatusRecord, parse
from console.view_state import FleetView
from control_helpers import cli, control_env, status
from strategies.status import rebuild

RECORDED = Path(__file__).resolve().parents[1] / "bench/results/2026-12-01-f9b5469/cases/seed1-run45/run.journal.jsonl.gz"


def a_status(**over) -> dict:
    """A live run's status as a control server answers it (the state of a
    run that has seen no event, and what its process knows)."""
    return {**FleetView().state(), "run_id": "plan-1", "pid": 1, "user": "ops", "plan": "/p.yaml",
            "plan_name": "plan", "upstream": "agent", "journal": "/j.jsonl", "started": "2026-12-07T00:00:00+00:00",
            "time_scale": 1.0, "viewers": 0, **over}


def an_ended(**over) -> dict:
    return {**a_status(), "outcome": "succeeded", "exit_code": 0, "message": "done", "journal_hash": "ab",
            "versions": {"a": "2.0.0"}, "clients": {"requests": 3, "failed": 0}, **over}


def test_a_record_as_written_reads_back_as_it_is():
    record = an_ended()
    assert parse(EndedRecord, json.loads(json.dumps(record))) == record


@pytest.mark.parametrize("change, field", [
    ({"step": {"index": "2", "total": 3, "title": ""}}, "step.index: expected int, got str '2'"),
    ({"pid": True}, "pid: expected int, got bool"),
    ({"gate": {"name": "g", "verdict": "pass"}}, "gate.remaining: missing"),
    ({"instances": {"a": {"version": 2}}}, "instances.a.version: expected str, got int"),
    ({"out_of_nginx": ["a", None]}, "out_of_nginx[1]: expected str, got null"),
    ({"weights": []}, "weights: expected an object, got list"),
])
def test_a_malformed_record_is_refused_naming_its_field(change, field):
    with pytest.raises(MalformedRecord) as err:
        parse(StatusRecord, a_status(**change))
    assert str(err.value).startswith(field)


def test_a_missing_key_is_named():
    record = a_status()
    del record["phase"]
    with pytest.raises(MalformedRecord, match="^phase: missing$"):
        parse(StatusRecord, record)
    with pytest.raises(MalformedRecord, match="^the record: expected an object, got list"):
        parse(StatusRecord, [record])


def test_an_older_console_s_result_file_reads_with_the_keys_it_lacked_defaulted():
    """Result files are kept a day: one written before the status keys
    existed still lists, its new keys saying "nothing known"."""
    old = an_ended()
    for key in ("window", "out_of_nginx", "left_out", "reason", "instances", "clients"):
        del old[key]
    read = parse(EndedRecord, old)
    assert (read["window"], read["out_of_nginx"], read["left_out"], read["reason"], read["instances"],
            read["clients"]) == (None, [], [], None, {}, {})


def test_console_status_lists_the_good_result_files_and_skips_a_malformed_one_with_one_line(tmp_path):
    env = control_env(tmp_path)
    where = Path(env["XDG_RUNTIME_DIR"]) / "rollout-console"
    where.mkdir(mode=0o700)
    (where / "good-1.result.json").write_text(json.dumps(an_ended(run_id="good-1")))
    (where / "bad-2.result.json").write_text(json.dumps(an_ended(run_id="bad-2", step={"index": "x"})))
    (where / "torn-3.result.json").write_text('{"run_id": "torn-3", ')
    for f in where.iterdir():
        os.chmod(f, 0o600)
    proc = cli(env, "status", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    assert [s["run_id"] for s in json.loads(proc.stdout)["ended"]] == ["good-1"]
    lines = proc.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in proc.stderr
    bad = next(line for line in lines if "bad-2" in line)
    assert bad.startswith("console: skipped: ") and "not a run's result: step.index: expected int" in bad
    assert any("torn-3.result.json: not a run's result" in line for line in lines)
    assert "good-1" in cli(env, "status", "--all").stdout


# -- console replay JOURNAL --status [--at SECONDS] ---------------------------------------------
@pytest.fixture
def recorded(tmp_path) -> Path:
    path = tmp_path / "run.journal.jsonl"
    path.write_bytes(gzip.decompress(RECORDED.read_bytes()))
    return path


def replayed(journal: Path, *args: str) -> dict:
    proc = cli(control_env(journal.parent), "replay", str(journal), "--status", *args, "--output", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_replay_status_at_a_time_is_the_fold_of_the_events_up_to_it(recorded):
    events = read_journal(recorded).events
    at = 10.0
    before = [e for e in events if e.at <= at]
    fold = rebuild(before)
    s = replayed(recorded, "--at", str(at))
    assert (s["at"], s["events"], s["phase"], s["step"]["index"], s["outcome"]) == (
        at, len(before), fold.phase.value, fold.position.index, None)
    assert {k: (i["in_nginx"], i["version"], i["healthy_at"]) for k, i in s["instances"].items()} == {
        k: (i.in_nginx, i.version, i.healthy_at) for k, i in fold.instances.items()}
    assert s["plan"].endswith(".yaml") and s["journal"] == str(recorded)
    parse(ReplayStatus, s)  # the record's declared form


def test_replay_status_with_no_time_is_the_run_as_it_ended(recorded):
    events = read_journal(recorded).events
    s = replayed(recorded)
    fold = rebuild(events)
    assert s["events"] == len(events) and s["outcome"] == fold.outcome.value and s["at"] == round(events[-1].at, 1)
    assert s["applies"] == {c: False for c in s["applies"]}  # an ended run takes no command


def test_replay_status_as_text_names_the_time_the_phase_and_each_instance(recorded):
    proc = cli(control_env(recorded.parent), "replay", str(recorded), "--status", "--at", "10")
    assert proc.returncode == 0, proc.stderr
    fold = rebuild([e for e in read_journal(recorded).events if e.at <= 10])
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("REPLAY status at 10.0s (")  # real hosts: not SIMULATED
    assert f"phase {fold.phase.value}" in proc.stdout
    assert sum(1 for line in lines if line.startswith("    ")) == len(fold.instances)


@pytest.mark.parametrize("args, said", [
    (["--at", "10"], "--at applies only with --status"),
    (["--status", "--at", "-1"], "must be between 0"),
    (["--status", "--headless"], "--status prints the status alone"),
])
def test_replay_status_flags_out_of_place_are_a_usage_error(recorded, args, said):
    proc = cli(control_env(recorded.parent), "replay", str(recorded), *args)
    assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.splitlines()) <= 3, proc.stderr


def test_no_run_status_is_still_exit_0(tmp_path):
    assert status(control_env(tmp_path)) == {"live": [], "ended": []}


async def test_replay_status_at_any_time_is_the_record_the_live_run_held_then(tmp_path):
    """A SIMULATED run's live view, recorded after each event, against the
    journal replayed up to each event's time."""
    import copy

    from console.replay import replay_status
    from console.session import Session, load_inputs
    from console.status_record import RunState
    from simfleet import write_inventory, write_plan

    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"fail_start": True}})
    plan = write_plan(tmp_path / "plan.yaml", "rolling", rolling={"batch": 1})
    session = Session(load_inputs(str(plan), str(inv), None), argv=["test"], record=str(tmp_path / "j.jsonl"),
                      time_scale=100.0)
    live, states = FleetView(), []
    session.bus.subscribe(lambda e: (live.apply(e), states.append(copy.deepcopy(live.state()))))
    record = session.finish(await session.run())
    journal = read_journal(Path(record["journal"]))
    times = [e.at for e in journal.events]
    assert len(times) == len(states)
    for t in sorted(set(times)):
        last = max(n for n, at in enumerate(times) if at <= t)
        rebuilt = replay_status(journal, record["journal"], t)
        assert {k: rebuilt[k] for k in RunState.__annotations__ if k != "simulated"} == {
            k: v for k, v in states[last].items() if k != "simulated"}, f"status differs at {t} s"
        assert rebuilt["simulated"] is True  # from the journal's header, before the run_started event too
    assert states[-1]["outcome"] == "rolled_back" and states[-1]["reason"] == "rolled_back"


def test_a_live_run_answering_a_malformed_status_is_skipped_with_one_line(tmp_path):
    """A socket in the control directory that answers `status` with a
    record of the wrong shape (a console of another version, a bug)."""
    import socket
    import threading

    env = control_env(tmp_path)
    where = Path(env["XDG_RUNTIME_DIR"]) / "rollout-console"
    where.mkdir(mode=0o700)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(where / "odd-7.sock"))
    server.listen(4)

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                if conn.makefile("rb").readline():  # the stale probe connects and says nothing
                    conn.sendall(json.dumps({"type": "status", **a_status(run_id=7)}).encode() + b"\n")

    threading.Thread(target=answer, daemon=True).start()
    try:
        proc = cli(env, "status", "--output", "json")
    finally:
        server.close()
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"live": [], "ended": []}
    assert proc.stderr.splitlines() == [f"console: skipped: {where / 'odd-7.sock'}: malformed reply: run_id: "
                                        "expected str, got int '7'"]


def test_a_malformed_file_is_told_once_however_often_watch_asks(capsys, tmp_path):
    from console.control.errors import report_malformed

    for _ in range(3):
        report_malformed(tmp_path / "x.result.json", f"{tmp_path}/x.result.json: not a run's result: pid: missing")
    assert capsys.readouterr().err.count("skipped") == 1


def test_replay_status_of_a_torn_journal_says_so_after_the_status(recorded):
    lines = recorded.read_bytes().splitlines(keepends=True)
    recorded.write_bytes(b"".join(lines[:-2]) + lines[-2][:-40])  # run_finished torn, no closing record
    env = control_env(recorded.parent)
    text = cli(env, "replay", str(recorded), "--status")
    assert text.returncode == 0 and text.stdout.splitlines()[-1].startswith("warning: the journal's last record is torn")
    as_json = cli(env, "replay", str(recorded), "--status", "--output", "json")
    assert json.loads(as_json.stdout)["outcome"] is None  # the closing events are in the torn tail
