"""Read an inventory through Ansible itself, when ansible-core is installed.

`ansible-inventory -i SOURCE --list` then reads every source Ansible reads
(INI, YAML, directories, group_vars/host_vars, inventory plugins such as
aws_ec2 or netbox, inventory scripts) and prints groups, their hosts and
subgroups, and every host's merged variables as JSON; `ansible all
--list-hosts` gives the order of `all`. Both run as separate programs:
ansible-core is GPL-3, and its command-line JSON is a stable interface, so
the console neither imports nor ships it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .collector import Collector
from .errors import InventoryError
from .model import Inventory
from .validate import show

TIMEOUT = 300.0


def ansible_inventory_bin() -> str | None:
    """ansible-inventory beside this Python (a venv), else on PATH."""
    beside = Path(sys.executable).parent / "ansible-inventory"
    return str(beside) if beside.exists() else shutil.which("ansible-inventory")


def _run(argv: list[str], file: str) -> str:
    try:
        # A source Ansible cannot parse is an error, not an empty inventory
        # (Ansible's default is a warning and no hosts).
        env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_FAILED="true", ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL,
                              env=env)
    except subprocess.TimeoutExpired:
        raise InventoryError(file, None, "ansible-inventory", f"no answer within {TIMEOUT:g} s") from None
    except OSError as exc:
        raise InventoryError(file, None, "ansible-inventory", f"cannot run {argv[0]}: {exc}") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        # the plugin's own reason ("Failed to parse ... with 'ini' plugin: WHY")
        # says more than the final "[ERROR]: No inventory was parsed"
        errors = ([ln for ln in lines if "Failed to parse" in ln] + [ln for ln in lines if "ERROR" in ln]
                  + lines + [f"exit status {proc.returncode}"])
        raise InventoryError(file, None, "ansible-inventory", errors[0].removeprefix("[WARNING]: "))
    return proc.stdout


def engine_version(binary: str) -> str:
    """"ansible-core 2.19.14" from `ansible-inventory --version`."""
    first = _run([binary, "--version"], binary).splitlines()[0]
    core = first.split("[core ", 1)[1].split("]", 1)[0] if "[core " in first else first
    return f"ansible-core {core.strip()}"


def all_order(binary: str, path: str) -> list[str]:
    ansible = str(Path(binary).with_name("ansible"))
    out = _run([ansible, "all", "-i", path, "--list-hosts"], path)
    return [ln.strip() for ln in out.splitlines()[1:] if ln.strip()]


def load_with_ansible(path: str | Path, binary: str | None = None) -> Inventory:
    """The inventory as Ansible reads it; errors name the source and
    Ansible's own first error line (Ansible's JSON carries no line numbers,
    so a bad value is named by its variable)."""
    file = str(path)
    binary = binary or ansible_inventory_bin()
    if binary is None:
        raise InventoryError(file, None, "", "ansible-core is not installed (pip install rollout-console[ansible])")
    # Three programs, each about 0.5 s of Python start-up: run side by side
    # (they only read), and report --list's error first, as Ansible would.
    with ThreadPoolExecutor(3) as pool:
        listed = pool.submit(_run, [binary, "-i", file, "--list"], file)
        order = pool.submit(all_order, binary, file)
        version = pool.submit(engine_version, binary)
        try:
            listing = json.loads(listed.result())
        except json.JSONDecodeError as exc:
            raise InventoryError(file, None, "ansible-inventory", f"output is not JSON: {exc}") from None
        return from_listing(listing, file, order.result(), version.result())


def from_listing(listing: object, file: str, all_hosts: list[str], engine: str) -> Inventory:
    """An Inventory from `ansible-inventory --list` JSON: groups, their own
    hosts and subgroups as Ansible printed them, variables already merged by
    Ansible; `all_hosts` is Ansible's order of `all`."""
    c = Collector(file)
    if not isinstance(listing, dict):
        raise c.fail(None, "ansible-inventory", f"expected a JSON object, got {show(listing)}")
    hostvars = (listing.get("_meta") or {}).get("hostvars") or {}
    for name, body in listing.items():
        if name == "_meta":
            continue
        g = c.group(name, None, name)
        body = body if isinstance(body, dict) else {}
        for h in body.get("hosts") or ():
            c.host(g, h, None, f"{name}.hosts.{h}")
        for child in body.get("children") or ():
            c.group(child, None, f"{name}.children.{child}")
            c.add_child(name, child)
    for h in all_hosts:  # hosts only in `all` (not printed under any group)
        if h not in c.host_vars:
            c.host(c.groups["all"], h, None, f"all.hosts.{h}")
    for h, hv in hostvars.items():
        if h not in c.host_vars or not isinstance(hv, dict):
            continue
        for k, v in hv.items():
            c.set_var(c.host_vars[h], k, v, None, f"_meta.hostvars.{h}.{k}")
    inv = c.build()
    order = [h for h in all_hosts if h in inv.hosts] + [h for h in inv.groups["all"] if h not in all_hosts]
    groups = dict(inv.groups)
    groups["all"] = tuple(order)
    return Inventory(source=file, hosts={h: inv.hosts[h] for h in order}, groups=groups, secrets=inv.secrets,
                     direct=inv.direct, children=inv.children, engine=engine)
