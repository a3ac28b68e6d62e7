"""The pre-deployment checklist: pure evaluation, the engine refusing on a
failed item (simulated fleet), and the journal surviving a full disk."""
from __future__ import annotations

import json
from pathlib import Path

from console.cli import main
from console.journal import verify
from inventory.driver import CommandRecord, HealthSample, UnitStatus
from inventory.model import Host, Instance
from strategies.checklist import (
    evaluate_disk,
    evaluate_health,
    evaluate_lb,
    evaluate_release,
    evaluate_thresholds,
    evaluate_unit,
    render_check,
)
from strategies.engine import Outcome
from strategies.plan import load_plan
from test_engine_sim import make_session

HOST = Host("agent-01", "10.0.0.1")
INST = Instance(HOST, "main", "agent@main.service", 8080)


def plan(tmp_path, **extra):
    p = tmp_path / "p.yaml"
    doc = {"strategy": "rolling", "version": "2.0.0", **extra}
    p.write_text(json.dumps(doc))
    return load_plan(str(p))


def test_thresholds_sane_and_not(tmp_path):
    assert evaluate_thresholds(plan(tmp_path))[0].ok
    bad = evaluate_thresholds(plan(tmp_path, health={"interval": "10s", "passes": 5, "deadline": "20s"}))[0]
    assert not bad.ok and "deadline" in bad.reason


def test_items():
    assert evaluate_unit(INST, UnitStatus("loaded", "inactive")).ok
    assert "LoadState=not-found" in evaluate_unit(INST, UnitStatus("not-found", "inactive")).reason
    assert not evaluate_disk(HOST, {"/": 10 * 2**20, "/opt": None}).ok
    assert evaluate_disk(HOST, {"/": 10 * 2**30}).ok
    assert not evaluate_disk(HOST, {"/": None}).ok
    ok, dead = HealthSample("a", True, "1.0.0", 0.01), HealthSample("a", False, None, 0.01, "refused")
    assert all(i.ok for i in evaluate_health(INST, ok, True))
    assert [i.ok for i in evaluate_health(INST, dead, True)] == [False, False]
    assert all(i.ok for i in evaluate_health(INST, dead, False))  # idle: reported, not failed
    rec = CommandRecord("lb", "nginx -t", 1, 0.1, "", "nginx: [emerg] unknown directive \"x\" in /etc/nginx/a.conf:1\nfailed")
    items = evaluate_lb(HOST, "", rec, "/etc/nginx/conf.d/rollout-agent.conf")
    assert not items[0].ok and "[emerg]" in items[0].reason and not items[1].ok
    assert not evaluate_release(HOST, "2.0.0", CommandRecord("a", "test", 1, 0.1)).ok
    assert all("\n" not in i.line() for i in items)


def test_check_template_quotes_values(tmp_path):
    p = plan(tmp_path, deploy={"check": "test -d /opt/agent/releases/{version} # {host}"})
    assert render_check(p, p.deploy.check, "2.0.0", "main", "h; touch /tmp/x") == \
        "test -d /opt/agent/releases/2.0.0 # 'h; touch /tmp/x'"


async def test_failed_check_refuses_the_run_with_nothing_changed(tmp_path):
    session, events = make_session(tmp_path, version="9.9.9",
                                   deploy={"check": "test -d /opt/agent/releases/{version}"})
    result = await session.run()
    assert result.outcome == Outcome.REFUSED and "release" in result.message
    assert not [e for e in events if e.kind == "traffic"]
    assert session.finish(result)["exit_code"] == 6


def test_console_check_cli(tmp_path, capsys):
    from simfleet import write_inventory, write_plan
    inv = write_inventory(tmp_path / "inv.yaml", hosts=3)
    good = write_plan(tmp_path / "plan.yaml", "rolling")
    assert main(["check", "--plan", str(good), "--inventory", str(inv)]) == 0
    # all passed, and it says what that does not cover: here the release itself (no deploy.check)
    said = capsys.readouterr().out.splitlines()
    count = next(i for i, line in enumerate(said) if "checks passed" in line)
    assert said[count].endswith("checks passed [SIMULATED]")
    assert said[count + 1].startswith("not checked: that release 2.0.0 exists (the plan has no deploy.check")
    assert any(line.startswith("not checked: how 2.0.0 behaves") for line in said[count + 1:])
    bad = write_plan(tmp_path / "bad.yaml", "rolling", version="9.9.9",
                     deploy={"check": "test -d /opt/agent/releases/{version}"})
    assert main(["check", "--plan", str(bad), "--inventory", str(inv)]) == 6
    out = capsys.readouterr().out
    assert "FAIL release agent-01" in out
    assert "not checked: that release" not in out  # it was checked (and failed)


class _FullDisk:
    """A file handle that accepts `room` bytes, then ENOSPC (a partial write first)."""

    def __init__(self, path: Path, room: int):
        self.f = open(path, "r+b", buffering=0)
        self.room = room
        self.reserve = path.with_name(f".{path.name}.reserve")
        self.freed = False

    def write(self, data):
        if self.room <= 0 and not self.freed and not self.reserve.exists():
            self.room, self.freed = 32 * 1024, True  # the released reserve is free space again
        if self.room <= 0:
            raise OSError(28, "No space left on device")
        n = min(len(data), self.room)
        self.room -= n
        return self.f.write(bytes(data[:n]))

    def fileno(self):
        return self.f.fileno()

    def seek(self, pos):
        return self.f.seek(pos)

    def close(self):
        self.f.close()


async def test_journal_disk_full_stops_at_a_safe_point_and_stays_verifiable(tmp_path):
    session, events = make_session(tmp_path)
    j = session.journal
    j._fh.close()
    j._fh = _FullDisk(j.path, 6000)
    j._fh.seek(j._good)
    result = await session.run()
    record = session.finish(result)
    assert result.outcome == Outcome.FAILED and "cannot write the journal" in result.message
    assert record["exit_code"] == 4
    v = verify(j.path)
    assert v.ok, v.message
    close = json.loads(j.path.read_bytes().splitlines()[-1])
    assert close["lost_events"] >= 1 and close["exit_code"] == 4
    assert not list(tmp_path.glob(".*.reserve"))
