"""Compare the built-in loader with `ansible-inventory --list` on one file.

Both sides are put in the shape `ansible-inventory --list` prints: per group
its own hosts and its subgroups in order (empty groups left out, as Ansible
leaves them out), `_meta.hostvars` with every host's merged variables, and
the host order of `all` and of every group (what `serial` batches follow).
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from inventory.ansible_engine import ansible_inventory_bin
from inventory.model import Inventory

__all__ = [
    "ansible_fixes_order",
    "ansible_inventory_bin",
    "builtin_listing",
    "differences",
    "normalise",
    "run_ansible",
    "run_ansible_group_order",
]


def _ansible_env(cwd: Path) -> dict[str, str]:
    """Ansible with default settings (an empty ansible.cfg in `cwd`), an
    unparsable source an error, and its files kept in `cwd`."""
    (cwd / "ansible.cfg").write_text("[defaults]\n")
    return dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ANSIBLE_NOCOLOR="1",
                ANSIBLE_CONFIG=str(cwd / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(cwd / ".tmp"),
                ANSIBLE_HOME=str(cwd / ".ansible"))


def run_ansible(path: Path, cwd: Path) -> tuple[dict | None, str]:
    """(JSON, "") or (None, Ansible's error text). Runs in `cwd` (an empty
    directory) so no playbook-adjacent group_vars are picked up."""
    proc = subprocess.run([ansible_inventory_bin(), "-i", str(path), "--list"], capture_output=True,
                          text=True, cwd=cwd, env=_ansible_env(cwd), timeout=120)
    if proc.returncode != 0:
        return None, " ".join(proc.stderr.split())
    return json.loads(proc.stdout), ""


def builtin_listing(inv: Inventory) -> dict:
    out: dict = {}

    def fmt(name: str, available: set[str]) -> None:
        entry: dict = {}
        if name != "all":
            entry["hosts"] = [h for h in inv.direct.get(name, ()) if h in available]
        entry["children"] = []
        out[name] = entry
        for sub in inv.children.get(name, ()):
            entry["children"].append(sub)
            if sub not in out:
                fmt(sub, available)
        for key in ("hosts", "children"):
            if key in entry and not entry[key]:
                del entry[key]
        if not entry:
            del out[name]

    fmt("all", set(inv.hosts))
    out["_meta"] = {"hostvars": {h: dict(inv.hosts[h].vars) for h in inv.groups["all"] if inv.hosts[h].vars}}
    return out


def normalise(listing: dict) -> dict:
    """JSON round trip (tuples -> lists, keys -> strings) and hostvars in order."""
    data = json.loads(json.dumps(listing, sort_keys=False, default=str))
    data.setdefault("_meta", {}).setdefault("hostvars", {})
    return data


def run_ansible_group_order(path: Path, cwd: Path) -> dict[str, list[str]]:
    """Every group's hosts in the order plays (and `serial`) see them: the
    `groups` variable, printed by an ad-hoc `debug` on the controller."""
    ansible = str(Path(ansible_inventory_bin()).with_name("ansible"))
    proc = subprocess.run([ansible, "localhost", "-i", str(path), "-m", "debug", "-a", "var=groups", "-o"],
                          capture_output=True, text=True, cwd=cwd, env=_ansible_env(cwd), timeout=120)
    out = proc.stdout
    if proc.returncode != 0 or "=>" not in out:
        raise AssertionError(f"ansible debug failed: {proc.stderr.strip()[:300]}")
    return json.loads(out.split("=>", 1)[1])["groups"]


def differences(ansible: dict, builtin: dict) -> list[str]:
    """Human-readable differences between two listings (empty: identical)."""
    out = []
    for k in sorted(set(ansible) | set(builtin)):
        if k != "_meta" and ansible.get(k) != builtin.get(k):
            out.append(f"group {k}: ansible {ansible.get(k)} built-in {builtin.get(k)}")
    ha, hb = ansible["_meta"]["hostvars"], builtin["_meta"]["hostvars"]
    for h in sorted(set(ha) | set(hb)):
        if ha.get(h) != hb.get(h):
            out.append(f"hostvars {h}: ansible {ha.get(h)} built-in {hb.get(h)}")
    return out


def ansible_fixes_order(inv: Inventory, group: str) -> bool:
    """Whether Ansible's own host order for `group` is fixed. Ansible walks a
    group's subgroups level by level, but each level below the first as a
    Python set of Group objects (hashed by address): when two groups on a
    level bring new subgroups, their order changes from run to run (seen on
    kolla-ansible's multinode: three runs, three orders of `all`)."""
    seen = {group, *inv.children.get(group, ())}
    level = list(inv.children.get(group, ()))
    while level:
        contributing = [g for g in level if set(inv.children.get(g, ())) - seen]
        if len(contributing) > 1:
            return False
        nxt = [c for g in contributing for c in inv.children.get(g, ()) if c not in seen]
        seen |= set(nxt)
        level = nxt
    return True
