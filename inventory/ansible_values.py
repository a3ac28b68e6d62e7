"""Variables as Ansible hands them over: which names it keeps out of a
host's variables, and how it renders YAML's richer types.

`ansible-inventory --list` is what the built-in loader is held to
(tests/test_inventory_corpus.py); each rule below was found by running
ansible-core 2.19 on crafted inventories (tests/inventory_crafted/):

- `ansible_group_priority` set on a group in the inventory is the group's
  priority (Group.set_variable), not a variable; set on a host, or in a
  group_vars/ file, it is an ordinary variable.
- Ansible's internal names (constants.INTERNAL_STATIC_VARS: inventory_hostname,
  group_names, groups, hostvars, inventory_dir, ...) are its own magic
  variables: whatever an inventory sets for them never reaches a host's
  variables.
- A YAML timestamp is an ISO 8601 string with a "T" (datetime.isoformat(),
  not str()), at any depth; a date is "2017-03-07".
- A mapping key YAML reads as another type is named as Ansible's JSON
  names it: `yes:` is "true", `~:` "null", `0x1F:` "31", `1.50:` "1.5" (in
  variables at any depth, and as a variable's own name); a date as a key
  is refused (ansible-inventory fails on it). A group or host name that is
  not a string is refused, as Ansible refuses it.
- `!!omap` and `!!pairs` are lists of [key, value] pairs (yaml_source builds
  them so); `!!set` is refused there, because Ansible lists a set's members
  in an order that changes from run to run; `!!binary` is refused here,
  because ansible-inventory itself fails on it.
"""
from __future__ import annotations

import datetime
import json
from typing import Mapping

from .yaml_source import PathKey

GROUP_PRIORITY = "ansible_group_priority"

# ansible.constants.INTERNAL_STATIC_VARS (ansible-core 2.19), which
# `ansible-inventory` removes from every host's variables.
INTERNAL = frozenset((
    "ansible_async_path", "ansible_collection_name", "ansible_config_file", "ansible_dependent_role_names",
    "ansible_diff_mode", "ansible_facts", "ansible_forks", "ansible_inventory_sources", "ansible_limit",
    "ansible_play_batch", "ansible_play_hosts", "ansible_play_hosts_all", "ansible_play_role_names",
    "ansible_playbook_python", "ansible_role_name", "ansible_role_names", "ansible_run_tags",
    "ansible_skip_tags", "ansible_verbosity", "ansible_version", "inventory_dir", "inventory_file",
    "inventory_hostname", "inventory_hostname_short", "groups", "group_names", "hostvars",
    "playbook_dir", "play_hosts", "role_name", "role_names", "role_path", "role_uuid",
))


def as_ansible(value: object) -> object:
    """`value` (from YAML, INI or a vars file) as Ansible lists it; ValueError
    for a value Ansible cannot list. Still object, not JSON: an INI literal's
    mapping keeps Python keys (`{1: 2}`), which only json.dumps names "1"."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise ValueError("binary (!!binary) values are not supported: ansible-inventory cannot list them either")
    if isinstance(value, list):
        return [as_ansible(v) for v in value]
    if isinstance(value, dict):
        return {k: as_ansible(v) for k, v in value.items()}
    return value


def key_as_ansible(typed: object) -> str:
    """The name Ansible's JSON gives a mapping key YAML read as `typed`."""
    if isinstance(typed, datetime.datetime | datetime.date):
        raise ValueError(f"a date ({typed.isoformat()}) as a mapping key: ansible-inventory fails on it; quote it")
    if isinstance(typed, float):
        return json.dumps(typed, allow_nan=True)
    return json.dumps(typed) if typed is None or isinstance(typed, bool) else str(typed)


def renamed(value: object, typed_keys: Mapping[PathKey, object], path: PathKey) -> object:
    """`value` (found at `path` of a YAML document) with every nested
    mapping key YAML typed renamed as Ansible names it."""
    if isinstance(value, dict):
        return {(key_as_ansible(typed_keys[path + (k,)]) if path + (k,) in typed_keys else k):
                renamed(v, typed_keys, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [renamed(v, typed_keys, path + (i,)) for i, v in enumerate(value)]
    return value


def not_a_string(what: str, written: str, typed: object) -> str:
    """The refusal of a group or host name YAML did not read as a string."""
    return (f"{what} name {written} is read by YAML as {type(typed).__name__} {typed!r}, which Ansible refuses; "
            f"quote it")
