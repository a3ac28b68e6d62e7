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
- `!!omap` and `!!pairs` are lists of [key, value] pairs (yaml_source builds
  them so); `!!set` is refused there, because Ansible lists a set's members
  in an order that changes from run to run; `!!binary` is refused here,
  because ansible-inventory itself fails on it.
"""
from __future__ import annotations

import datetime
from typing import Any

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


def as_ansible(value: Any) -> Any:
    """`value` (from YAML or INI) as Ansible lists it; ValueError for a
    value Ansible cannot list."""
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise ValueError("binary (!!binary) values are not supported: ansible-inventory cannot list them either")
    if isinstance(value, list):
        return [as_ansible(v) for v in value]
    if isinstance(value, dict):
        return {k: as_ansible(v) for k, v in value.items()}
    return value
