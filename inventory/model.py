"""Hosts and inventories as immutable values.

Everything above this layer (plans, engine, UI) sees hosts only through these
types, so a simulated fleet and a real SSH fleet are interchangeable.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Mapping

from .connection import Connection


@dataclass(frozen=True)
class Host:
    """One machine from an inventory, with its variables already merged
    (Ansible precedence: all < parent group < child group < host)."""

    name: str
    address: str
    port: int | None = None  # None: not set by the inventory (~/.ssh/config Port, else 22)
    user: str | None = None
    key_file: str | None = None
    become: bool = False
    groups: tuple[str, ...] = ()
    vars: Mapping[str, object] = field(default_factory=dict, hash=False)  # as Ansible lists them, unchecked
    connection: Connection = Connection()  # how Ansible would reach it (local, jump hosts, become user)

    def var(self, key: str, default: object = None) -> object:
        return self.vars.get(key, default)


class Colour(enum.StrEnum):
    """A side of a blue-green pair (its pool in nginx has this name)."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Colour:
        return Colour.GREEN if self is Colour.BLUE else Colour.BLUE


@dataclass(frozen=True)
class Instance:
    """One running copy of the service: a host, the slot it runs in, the
    systemd unit that runs it and the port nginx sends traffic to.

    Rolling and canary use one slot per host ("main"); the single-group form
    of blue-green runs two slots ("blue", "green") on one host."""

    host: Host
    slot: str
    unit: str
    port: int
    colour: Colour | None = None  # its blue-green side; None in rolling and canary

    @property
    def key(self) -> str:
        """Unique name: the host, plus the slot when a host runs several."""
        return self.host.name if self.slot == "main" else f"{self.host.name}/{self.slot}"


@dataclass(frozen=True)
class Inventory:
    """A loaded inventory: hosts by name and group membership (children
    resolved, so `groups["all"]` lists every host), in Ansible's order.

    `direct` and `children` keep the structure as written (each group's own
    hosts and subgroups), which is what `ansible-inventory --list` shows;
    `engine` names what read it ("built-in" or "ansible-core X.Y.Z")."""

    source: str
    hosts: Mapping[str, Host]
    groups: Mapping[str, tuple[str, ...]]
    secrets: frozenset[str] = frozenset()
    direct: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    children: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    engine: str = "built-in"

    def group(self, name: str) -> list[Host]:
        """Hosts of a group in inventory order; KeyError names the group."""
        if name not in self.groups:
            raise KeyError(name)
        return [self.hosts[h] for h in self.groups[name]]

    @property
    def simulated(self) -> bool:
        """Every host declares `rollout_simulated` true. Read as Ansible's
        `| bool` filter reads it, so the INI string "false" is false."""
        return bool(self.groups.get("all")) and all(
            _truthy(h.var("rollout_simulated")) for h in self.hosts.values()
        )


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true", "y", "t")
    return value is True or (isinstance(value, (int, float)) and value == 1)
