"""A journal that cannot be forged unseen, and a resume that trusts only
a verified one (issue 23, finding 3; docs/threat-model.md, "the journal").

Forgeries here do what an attacker with write access to the journal (but
not to the operator's state directory) can: edit records and recompute the
whole hash chain, cut the tail, add a closing record."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from console.journal import GENESIS, verify
from console.resume import JournalRejected, check_snapshot
from console.session import load_inputs
from inventory.nginx_config import Backend, ConfigError, LbState, check_managed_text, render
from simfleet import write_inventory, write_plan
from test_journal_and_cli import run_cli, run_to_the_pause


def rechain(records: list[dict]) -> bytes:
    """Serialise records with a freshly computed chain, as the writer does."""
    prev, out = GENESIS, []
    for seq, record in enumerate(records):
        record = {**record, "seq": seq, "prev": prev}
        record.pop("hash", None)
        body = json.dumps(record, separators=(",", ":")).encode()
        prev = hashlib.sha256(prev.encode() + body).hexdigest()
        out.append(body[:-1] + f',"hash":"{prev}"}}\n'.encode())
    return b"".join(out)


def records_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sealed")
    inv = write_inventory(tmp / "inv.yaml", hosts=4)
    plan = write_plan(tmp / "plan.yaml", rolling={"batch": 2},
                      deploy={"commands": ["/opt/agent/bin/install-release {version}"]})
    done = run_cli("--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                   "--record", str(tmp / "j.jsonl"), "--output", "json")
    assert done.returncode == 0, done.stderr
    return tmp / "j.jsonl", json.loads(done.stdout.splitlines()[-1])["journal_hash"]


def test_an_honest_journal_verifies_against_its_sealed_head(finished):
    journal, head = finished
    check = verify(journal)
    assert check.ok and check.final_hash == head and "sealed head matches" in check.message


def test_rewriting_every_command_and_recomputing_the_chain_is_caught(finished, tmp_path):
    journal, _ = finished
    records = records_of(journal)
    for r in records:
        if r.get("type") == "event" and "command" in r["event"]:
            r["event"]["command"] = "echo harmless"
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(records))
    check = verify(forged)
    assert not check.ok and "does not match its sealed head: the journal was rewritten" in check.message


def test_a_cut_tail_with_a_new_succeeded_closing_record_is_caught(finished, tmp_path):
    journal, _ = finished
    records = records_of(journal)[:6]
    records.append({"type": "close", "outcome": "succeeded", "exit_code": 0, "records": 6})
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(records))
    check = verify(forged)
    assert not check.ok and f"{forged}:8: cut: the sealed head says {len(records_of(journal))} records" \
        in check.message
    assert not check.resumable


def test_a_cut_tail_is_told_from_a_crash(finished, tmp_path):
    journal, _ = finished
    lines = journal.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:-3]))
    assert "cut: the sealed head says" in verify(cut).message and not verify(cut).resumable
    crashed = tmp_path / "crashed.jsonl"  # the head is written first: a crash leaves it one record ahead
    crashed.write_bytes(b"".join(lines[:-1]))
    check = verify(crashed)
    assert not check.ok and check.resumable and "a crash, not a cut" in check.message


def test_records_appended_after_the_head_are_named(finished, tmp_path):
    journal, _ = finished
    records = records_of(journal)
    records.insert(-1, {"type": "event", "event": records[-2]["event"]})
    records[-1]["records"] += 1
    extended = tmp_path / "extended.jsonl"
    extended.write_bytes(rechain(records))
    check = verify(extended)
    assert not check.ok and "is not covered by the sealed head" in check.message


def test_the_closing_records_count_is_checked(finished, tmp_path, monkeypatch):
    journal, _ = finished
    records = records_of(journal)
    records[-1]["records"] -= 2
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_bytes(rechain(records))
    check = verify(wrong)
    assert not check.ok and f"the closing record counts {len(records) - 3} records before it" in check.message


def test_elsewhere_the_expected_head_decides(finished, tmp_path, monkeypatch):
    journal, head = finished
    elsewhere = tmp_path / "other-machine"
    elsewhere.mkdir()
    monkeypatch.setenv("XDG_STATE_HOME", str(elsewhere))  # no key, no head here
    check = verify(journal)
    assert not check.ok and "no sealed head for this journal on this machine" in check.message
    assert verify(journal, expect=head).ok
    cut = tmp_path / "cut.jsonl"
    records = records_of(journal)[:-3]
    records.append({"type": "close", "outcome": "succeeded", "exit_code": 0, "records": len(records)})
    cut.write_bytes(rechain(records))
    assert "not at the expected" in verify(cut, expect=head).message


def test_audit_verify_expect_on_the_command_line(finished):
    journal, head = finished
    assert run_cli("audit", "verify", str(journal), "--expect", head).returncode == 0
    bad = run_cli("audit", "verify", str(journal), "--expect", "0" * 64)
    assert bad.returncode == 4 and "BROKEN" in bad.stdout


@pytest.fixture
def paused(tmp_path):
    return run_to_the_pause(tmp_path)


def test_resume_refuses_an_edited_journal_with_exit_2_naming_the_record(paused, tmp_path):
    journal, _, _ = paused
    lines = journal.read_bytes().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if b'"kind":"run_started"' in line)
    lines[at] = lines[at].replace(b'"1.0.0"', b'"0.0.1"')  # the edit: one record, chain not recomputed
    journal.write_bytes(b"".join(lines))
    done = run_cli("resume", str(journal), "--rollback", "--headless", "--record", str(tmp_path / "b.jsonl"))
    assert done.returncode == 2, done.stderr
    assert f"fails verification: {journal}:{at + 1}: hash mismatch: record {at} was altered" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "b.jsonl").exists()  # nothing touched, not even a journal
    records = records_of(journal)  # the same edit with the chain recomputed
    journal.write_bytes(rechain(records))
    done = run_cli("resume", str(journal), "--rollback", "--headless", "--record", str(tmp_path / "b.jsonl"))
    assert done.returncode == 2 and "does not match its sealed head" in done.stderr, done.stderr


def test_resume_refuses_an_lb_snapshot_the_console_would_not_write(paused):
    _, plan, inv = paused
    inputs = load_inputs(str(plan), str(inv), None)
    lb = next(iter(inputs.inventory.group(inputs.plan.load_balancers))).name
    good = render(LbState(inputs.plan.nginx.upstream, {"stable": (Backend("10.0.0.1", 8080),)}, "stable"))
    check_snapshot({lb: good}, inputs)
    evil = good.replace("    keepalive 16;\n", "    keepalive 16;\n}\ninclude /root/.ssh/*;\nupstream x {\n")
    with pytest.raises(JournalRejected, match=r"lb_snapshot of .*: line \d+: 'include /root/.ssh/\*;'"):
        check_snapshot({lb: evil}, inputs)
    with pytest.raises(JournalRejected, match="not a load balancer of the plan"):
        check_snapshot({"elsewhere": good}, inputs)


@pytest.mark.parametrize("bad", ["", "server { listen 80; }\n", "# Managed by rollout-console: do not edit. "
                                 "generation 1\nload_module /tmp/x.so;\n"])
def test_managed_text_check_refuses_foreign_text(bad):
    with pytest.raises(ConfigError):
        check_managed_text(bad, "agent")


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    """An operator key (ed25519, no passphrase) and an allowed-signers file naming it."""
    import subprocess

    tmp = tmp_path_factory.mktemp("signer")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(tmp / "key")], check=True)
    pub = (tmp / "key.pub").read_text().split()
    (tmp / "allowed").write_text(f'ops@example.com namespaces="rollout-console-journal" {pub[0]} {pub[1]}\n')
    return tmp / "key", tmp / "allowed"


def test_a_journal_signed_with_the_operators_ssh_key_verifies_anywhere(finished, signer, tmp_path, monkeypatch):
    journal, _ = finished
    key, allowed = signer
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(journal.read_bytes())
    done = run_cli("audit", "sign", str(copy), "--key", str(key))
    assert done.returncode == 0 and (tmp_path / "copy.jsonl.sig").is_file(), done.stderr
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "elsewhere"))  # no sealed head on the reviewer's machine
    (tmp_path / "elsewhere").mkdir()
    check = verify(copy, allowed_signers=str(allowed))
    assert check.ok and "signed by ops@example.com" in check.message
    records = records_of(copy)  # rewritten after signing: the signature no longer covers it
    records[3]["utc"] = "2000-01-01T00:00:00.000+00:00"
    copy.write_bytes(rechain(records))
    check = verify(copy, allowed_signers=str(allowed))
    assert not check.ok and "does not cover this journal's head" in check.message
    cli = run_cli("audit", "verify", str(copy), "--allowed-signers", str(allowed))
    assert cli.returncode == 4 and "BROKEN" in cli.stdout


def test_an_unsigned_or_unverified_journal(finished, signer, tmp_path):
    journal, _ = finished
    key, allowed = signer
    copy = tmp_path / "copy.jsonl"
    records = records_of(journal)
    records[2]["utc"] = "2000-01-01T00:00:00.000+00:00"
    copy.write_bytes(rechain(records))
    assert "no signature" in verify(copy, allowed_signers=str(allowed)).message
    refused = run_cli("audit", "sign", str(copy), "--key", str(key))
    assert refused.returncode == 4 and "not signing a journal that does not verify" in refused.stderr
    assert not (tmp_path / "copy.jsonl.sig").exists()
