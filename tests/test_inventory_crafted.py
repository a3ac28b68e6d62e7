"""Crafted inventories that probe classes of difference from
`ansible-inventory --list` (ansible-core 2.19) the public corpus
(tests/test_inventory_corpus.py) met only once each: Ansible's magic and
internal variable names (`ansible_group_priority` on a group is its
priority, not a variable; `inventory_hostname`, `group_names`, ... never
reach a host), and YAML's richer types (timestamps as ISO 8601 with a "T",
dates, octal and sexagesimal integers, special floats, !!omap, !!pairs,
mapping keys YAML reads as bools, nulls or numbers).
Each file is compared with Ansible itself, as the corpus is."""
from __future__ import annotations

from pathlib import Path

import pytest

from inventory.errors import InventoryError
from inventory.loaders import load_inventory
from inventory_compare import builtin_listing, differences, normalise, run_ansible

CRAFTED = Path(__file__).parent / "inventory_crafted"
FILES = ["yaml_types/hosts.yaml", "magic_vars/hosts.yaml", "ini_magic/hosts.ini", "yaml_keys/hosts.yaml"]


@pytest.mark.parametrize("name", FILES)
def test_crafted_inventory_reads_as_ansible_reads_it(name, tmp_path):
    path = (CRAFTED / name).resolve()
    ansible, error = run_ansible(path, tmp_path)
    assert ansible is not None, error
    assert differences(ansible, normalise(builtin_listing(load_inventory(path)))) == []


def test_group_priority_orders_groups_and_is_no_variable():
    inv = load_inventory(CRAFTED / "magic_vars/hosts.yaml")
    web1, web2 = inv.hosts["web1"].vars, inv.hosts["web2"].vars
    assert web2["shared"] == "from-web"  # web's priority 10 beats db's 1, whatever their names
    assert web1["ansible_group_priority"] == 7  # set on the host: a plain variable
    assert web2["ansible_group_priority"] == 4  # from group_vars/db.yml: a plain variable too
    assert "ansible_group_priority" not in inv.hosts["web3"].vars  # set on web and all: priorities only
    assert "inventory_hostname" not in web1 and "group_names" not in inv.hosts["db1"].vars


def test_yaml_timestamps_render_as_ansible_renders_them():
    v = load_inventory(CRAFTED / "yaml_types/hosts.yaml").hosts["web1"].vars
    assert v["when_utc"] == "2017-03-07T10:20:49+00:00"
    assert v["when_naive"] == "2017-03-07T10:20:49"
    assert v["nested"]["l"][1] == {"t": "2017-03-07T10:20:49+01:00"}
    assert v["omap"] == [["a", 1], ["b", "2017-03-07"]]


@pytest.mark.parametrize("value, field, reason", [
    ("!!set {a, b}", "v", "!!set is not supported"),  # Ansible: members in a different order each run
    ("!!binary aGVsbG8=", "v", "binary (!!binary) values are not supported"),  # ansible-inventory fails
    ("!!omap [a]", "v[0]", "must be a one-key mapping"),
    ("{2017-03-07: x}", "v", "a date (2017-03-07) as a mapping key"),  # ansible-inventory fails
    ("{1: a, true: b}", "v.true", "duplicate key 'true': YAML reads it as True"),  # Ansible: one key, last wins
])
def test_yaml_types_ansible_cannot_list_are_refused_in_one_line(tmp_path, value, field, reason):
    path = tmp_path / "hosts.yaml"
    path.write_text(f"all:\n  hosts:\n    web1:\n      v: {value}\n")
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert reason in exc.value.message
    assert str(exc.value).startswith(f"{path}:4: all.hosts.web1.{field}: ") and "\n" not in str(exc.value)


@pytest.mark.parametrize("text, field, reason", [
    ("all:\n  children:\n    yes:\n      hosts: {web1: }\n", "all.children.yes", "group name yes is read by YAML as bool"),
    ("12:\n  hosts: {web1: }\n", "12", "group name 12 is read by YAML as int"),
    ("all:\n  hosts:\n    12:\n", "all.hosts.12", "host name 12 is read by YAML as int"),
])
def test_group_and_host_names_yaml_does_not_read_as_strings_are_refused_as_ansible_refuses_them(
        tmp_path, text, field, reason):
    path = tmp_path / "hosts.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as exc:
        load_inventory(path)
    assert exc.value.field == field and reason in exc.value.message and "quote it" in exc.value.message
