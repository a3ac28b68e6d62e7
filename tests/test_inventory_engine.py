"""The inventory engine: the built-in loader where it vouches for the file
and nothing configures Ansible, else Ansible (ansible-inventory as a
separate program) when ansible-core is installed; which one read the
inventory is shown in the header and recorded in the journal."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from console.journal import read_journal
from console.journal_header import Header
from inventory.ansible_engine import ansible_inventory_bin
from inventory.errors import InventoryError
from inventory.loaders import load_inventory, read_inventory
from simfleet import write_inventory, write_plan

ROOT = Path(__file__).resolve().parent.parent

# tests/run.sh installs the test extra, which pins ansible-core: a missing
# ansible-inventory is a failure here, never a skip
assert ansible_inventory_bin(), "ansible-core is not installed: run tests/run.sh (it installs the test extra)"


def run_cli(*args, env=None):
    plain = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}  # see ansible_configured
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**plain, **(env or {})})


def test_ansible_engine_reads_what_the_builtin_loader_reads(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "web.yml").write_text("ansible_user: first.last\nv: file\n")
    p = tmp_path / "hosts"
    p.write_text(textwrap.dedent("""
        top
        [web]
        web[1:3]:2222 flag=False
        [all:vars]
        v=inv
        """))
    via_ansible = read_inventory(p, "ansible")
    builtin = read_inventory(p, "built-in")
    assert via_ansible.engine.startswith("ansible-core 2.") and builtin.engine == "built-in"
    assert via_ansible.hosts == builtin.hosts == load_inventory(p).hosts
    assert via_ansible.groups == builtin.groups
    assert via_ansible.hosts["web2"].port == 2222 and via_ansible.hosts["web2"].user == "first.last"


def test_auto_reads_a_plain_file_built_in_unless_ansible_is_configured(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("ANSIBLE_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ansible.cfg
    p = tmp_path / "hosts"
    p.write_text("[web]\nweb1\nweb2\n")
    assert read_inventory(p).engine == "built-in"
    # a setting that may change what Ansible reads: Ansible reads it
    monkeypatch.setenv("ANSIBLE_HASH_BEHAVIOUR", "merge")
    assert read_inventory(p).engine.startswith("ansible-core 2.")
    monkeypatch.delenv("ANSIBLE_HASH_BEHAVIOUR")
    (tmp_path / "ansible.cfg").write_text("[defaults]\nhash_behaviour = merge\n")
    assert read_inventory(p).engine.startswith("ansible-core 2.")
    (tmp_path / "ansible.cfg").unlink()
    (tmp_path / ".ansible.cfg").write_text("[defaults]\n")
    assert read_inventory(p).engine.startswith("ansible-core 2.")


def test_ansible_engine_reads_sources_the_builtin_loader_refuses(tmp_path):
    d = tmp_path / "inv"
    d.mkdir()
    (d / "a.ini").write_text("[web]\nweb1\n")
    (d / "b.yml").write_text("all:\n  children:\n    db:\n      hosts: {db1: }\n")
    with pytest.raises(InventoryError, match="inventory directories need the Ansible engine"):
        read_inventory(d, "built-in")
    inv = read_inventory(d)
    assert set(inv.hosts) == {"web1", "db1"} and inv.groups["db"] == ("db1",)


def test_refusals_keep_their_line_when_ansible_reads_the_file(tmp_path):
    p = tmp_path / "hosts.yml"
    p.write_text("all:\n  hosts:\n    h1:\n      ansible_connection: docker\n")
    with pytest.raises(InventoryError) as info:
        read_inventory(p, "ansible")
    assert str(info.value).startswith(f"{p}:4: all.hosts.h1.ansible_connection: connection \"docker\"")
    p.write_text("[web\nh1\n")
    with pytest.raises(InventoryError) as info:
        read_inventory(p.rename(tmp_path / "hosts.ini"), "ansible")
    assert info.value.field == "ansible-inventory" and "\n" not in str(info.value)


def test_engine_named_in_dry_run_header_and_journal(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=2)
    plan = write_plan(tmp_path / "plan.yaml", rolling={"batch": 1})
    dry = run_cli("--plan", str(plan), "--inventory", str(inv), "--dry-run", env={"ROLLOUT_INVENTORY_ENGINE": "ansible"})
    assert dry.returncode == 0, dry.stderr
    assert "read by ansible-core 2." in dry.stdout
    journal = tmp_path / "j.jsonl"
    run = run_cli("--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                  "--record", str(journal))
    assert run.returncode == 0, run.stderr
    assert f"inventory {inv} read by built-in" in run.stdout.splitlines()[:3]
    assert (read_journal(journal).header or Header()).inventory_engine == "built-in"
    bad = run_cli("--plan", str(plan), "--inventory", str(inv), "--dry-run", env={"ROLLOUT_INVENTORY_ENGINE": "nope"})
    assert bad.returncode == 2 and "unknown inventory engine" in bad.stderr
