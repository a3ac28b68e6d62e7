"""The built-in loader against `ansible-inventory --list` (the ansible-core
pinned in the test extra) on a corpus of public inventories.

tests/inventory_corpus/manifest.json names, for every file, the repository,
path and commit it came from, its licence, and what is expected:
- "identical": same groups, each group's own hosts and subgroups in order,
  the same merged variables for every host (group_vars/host_vars beside it
  included), and the same host order in every group where Ansible itself
  fixes one (see inventory_compare.ansible_fixes_order);
- "refused": Ansible reads the file, the built-in loader refuses it in one
  line naming the file, with the listed reason (a deliberate refusal);
- "both-refuse": neither reads it (e.g. vault-encrypted without a password).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from inventory_compare import (
    ansible_fixes_order,
    ansible_inventory_bin,
    builtin_listing,
    differences,
    normalise,
    run_ansible,
    run_ansible_group_order,
)

from inventory.errors import InventoryError
from inventory.loaders import load_inventory

CORPUS = Path(__file__).parent / "inventory_corpus"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())

assert ansible_inventory_bin(), "ansible-core is not installed: run tests/run.sh (it installs the test extra)"


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["id"] for e in MANIFEST])
def test_builtin_loader_matches_ansible_or_refuses(entry, tmp_path):
    path = (CORPUS / entry["id"] / entry["file"]).resolve()
    ansible, ansible_error = run_ansible(path, tmp_path)
    try:
        inv, refusal = load_inventory(path), None
    except InventoryError as exc:
        inv, refusal = None, exc
    expect = entry["expect"]
    if expect == "both-refuse":
        assert ansible is None and refusal is not None, (ansible_error, refusal)
        return
    assert ansible is not None, ansible_error
    if expect == "refused":
        assert refusal is not None, "the built-in loader read a file it is listed as refusing"
        assert entry["reason"] in refusal.message
        assert str(refusal).startswith(str(path.parent)) and "\n" not in str(refusal)
        return
    assert refusal is None, str(refusal)
    assert differences(ansible, normalise(builtin_listing(inv))) == []
    order = run_ansible_group_order(path, tmp_path)
    for group, hosts in inv.groups.items():
        if ansible_fixes_order(inv, group):
            assert order.get(group, []) == list(hosts), group
        else:
            assert sorted(order.get(group, [])) == sorted(hosts), group


def test_manifest_names_a_source_for_every_file():
    ids = {e["id"] for e in MANIFEST}
    assert ids == {p.name for p in CORPUS.iterdir() if p.is_dir()}
    for e in MANIFEST:
        assert e["repo"] and e["path"] and len(e["commit"]) == 40 and e["license"]
        assert e["expect"] in ("identical", "refused", "both-refuse")
        assert (e["expect"] == "refused") == bool(e.get("reason"))
