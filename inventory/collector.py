"""The inventory being built, format by format, the way Ansible's
InventoryData builds it: groups, hosts and variables with the file, line and
field each came from, then resolved (Ansible's reconcile, group order and
variable precedence) into an `Inventory`.

The YAML and INI readers (inventory/loaders.py, inventory/ini_source.py) and
Ansible's own listing (inventory/ansible_engine.py) all fill a `Collector`;
it lives apart from them so that none of them imports another.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from types import MappingProxyType
from typing import Callable, TypeVar

from .ansible_values import GROUP_PRIORITY, INTERNAL, as_ansible
from .connection import connection_of
from .errors import InventoryError
from .host_patterns import parse_pattern
from .model import Host, Inventory
from .validate import (
    GROUP_NAME,
    HOST_NAME,
    VAR_NAME,
    check_address,
    check_bool,
    check_key_file,
    check_port,
    check_user,
    show,
)
from .vars_files import FileVar, VarsDirs

_T = TypeVar("_T")
_D = TypeVar("_D")


@dataclass
class Var:
    value: object  # as Ansible lists it (ansible_values.as_ansible), unchecked: a reader narrows it
    line: int | None
    field: str
    file: str | None = None  # None: the inventory file itself


@dataclass
class Group:
    name: str
    line: int | None
    field: str
    # dc_field: `field` is also an attribute name here
    hosts: list[str] = dc_field(default_factory=list)  # direct members, in listing order
    children: list[str] = dc_field(default_factory=list)
    vars: dict[str, Var] = dc_field(default_factory=dict)


def _valid_host_name(name: str) -> bool:
    if HOST_NAME.fullmatch(name):
        return True
    try:
        check_address(name)
    except ValueError:
        return False
    return ":" in name  # an IPv6 address


class Collector:
    """Format-independent inventory being built the way Ansible's
    InventoryData builds it: `all` and `ungrouped` exist from the start
    (`ungrouped` first child of `all`), groups and hosts are kept in the order
    they are first seen."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[str, Group] = {}
        self.parents: dict[str, list[str]] = {}
        self.host_order: list[str] = []
        self.host_vars: dict[str, dict[str, Var]] = {}
        self.host_origin: dict[str, tuple[int | None, str]] = {}
        self.group("all", None, "all")
        self.group("ungrouped", None, "ungrouped")
        self.add_child("all", "ungrouped")

    def fail(self, line: int | None, fld: str, message: str, file: str | None = None) -> InventoryError:
        return InventoryError(file or self.file, line, fld, message)

    def group(self, name: object, line: int | None, fld: str) -> Group:
        if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
            raise self.fail(line, fld, f"bad group name {show(name)} (letters, digits, '_', '-', '.')")
        if name not in self.groups:
            self.groups[name] = Group(name, line, fld)
        elif self.groups[name].line is None and line is not None:
            self.groups[name].line, self.groups[name].field = line, fld
        return self.groups[name]

    def add_child(self, parent: str, child: str) -> None:
        g = self.groups[parent]
        if child not in g.children:
            g.children.append(child)
        ps = self.parents.setdefault(child, [])
        if parent not in ps:
            ps.append(parent)

    def host(self, group: Group, pattern: object, line: int | None, fld: str, ini: bool = False) -> list[str]:
        if not isinstance(pattern, str):
            raise self.fail(line, fld, f"host pattern {show(pattern)} must be a string (quote it)")
        try:
            names, port = parse_pattern(pattern)
        except ValueError as exc:
            raise self.fail(line, fld, str(exc)) from None
        if ini and pattern.strip().endswith(":") and port is None:
            raise self.fail(line, fld, f"host pattern {show(pattern)} ends in ':' (reserved for a port)")
        for name in names:
            if not _valid_host_name(name):
                raise self.fail(
                    line, fld, f"bad host name {show(name)} (letters, digits, '.', '_', '-'; must start with a letter or digit)"
                )
            if name not in self.host_vars:
                self.host_order.append(name)
                self.host_vars[name] = {}
                self.host_origin[name] = (line, fld)
                if port:  # Ansible sets the port only where a host first appears
                    self.host_vars[name]["ansible_port"] = Var(port, line, fld)
            if name not in group.hosts:
                group.hosts.append(name)
        return names

    def set_var(self, target: dict[str, Var], key: object, value: object, line: int | None, fld: str) -> None:
        if not isinstance(key, str) or not VAR_NAME.fullmatch(key):
            raise self.fail(line, fld, f"bad variable name {show(key)} (letters, digits and '_', not starting with a digit)")
        try:
            target[key] = Var(as_ansible(value), line, fld)
        except ValueError as exc:
            raise self.fail(line, fld, str(exc)) from None

    # -- resolution -------------------------------------------------------

    def _reconcile(self) -> None:
        """Ansible's reconcile_inventory: parentless groups join `all`; a host
        in `ungrouped` and in another group leaves `ungrouped`; a host in no
        group but `all` joins `ungrouped`."""
        for name in list(self.groups):
            if name != "all" and not self.parents.get(name):
                self.add_child("all", name)
        if "all" in self.parents:
            g = self.groups[self.parents["all"][0]]
            raise self.fail(g.line, g.field, '"all" cannot be a child of another group')
        ungrouped = self.groups["ungrouped"]
        for name in self.host_order:
            direct = [g for g in self.groups.values() if name in g.hosts]
            mine = set()
            for g in direct:
                mine.add(g.name)
                mine |= self._ancestors(g.name)
            if "ungrouped" in mine:
                if mine - {"all", "ungrouped"}:
                    ungrouped.hosts.remove(name)
            elif not mine or mine == {"all"}:
                ungrouped.hosts.append(name)

    def _ancestors(self, name: str) -> set[str]:
        out: set[str] = set()
        todo = list(self.parents.get(name, ()))
        while todo:
            p = todo.pop()
            if p not in out:
                out.add(p)
                todo.extend(self.parents.get(p, ()))
        return out

    def _check_cycles(self) -> None:
        state: dict[str, int] = {}

        def visit(name: str, trail: tuple[str, ...]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                g = self.groups[name]
                cycle = " -> ".join(trail[trail.index(name):] + (name,))
                raise self.fail(g.line, g.field, f"group cycle: {cycle}")
            state[name] = 1
            for child in self.groups[name].children:
                visit(child, trail + (name,))
            state[name] = 2

        for name in list(self.groups):
            visit(name, ())

    def _members(self, name: str) -> tuple[str, ...]:
        """Ansible's Group.get_hosts order: the group's own hosts, then its
        descendants level by level (each level in listing order; Ansible
        walks levels below the first as a set, so for two subgroups at the
        same depth that both have subgroups its own order is not fixed)."""
        ordered = [name] + list(self.groups[name].children)
        seen = {name} | set(self.groups[name].children)
        level = list(self.groups[name].children)
        while level:
            nxt: list[str] = []
            for g in level:
                for child in self.groups[g].children:
                    if child not in seen and child not in nxt:
                        nxt.append(child)
            ordered.extend(nxt)
            seen |= set(nxt)
            level = nxt
        out: list[str] = []
        taken: set[str] = set()
        for g in ordered:
            for h in self.groups[g].hosts:
                if h not in taken:
                    taken.add(h)
                    out.append(h)
        return tuple(out)

    def build(self, vars_dirs: VarsDirs | None = None) -> Inventory:
        self._reconcile()
        if not self.host_order:
            raise self.fail(None, "", "inventory has no hosts")
        self._check_cycles()

        depth: dict[str, int] = {}

        def depth_of(name: str) -> int:
            if name not in depth:
                depth[name] = 0 if name == "all" else 1 + max(depth_of(p) for p in self.parents[name])
            return depth[name]

        def priority(name: str) -> int:
            v = self.groups[name].vars.get(GROUP_PRIORITY)
            if v is None:
                return 1
            try:
                if isinstance(v.value, bool) or not isinstance(v.value, str | int | float):
                    raise ValueError
                return int(v.value)
            except (TypeError, ValueError):
                raise self.fail(v.line, v.field, f"expected an integer, got {show(v.value)}") from None

        order = sorted((g for g in self.groups if g != "all"), key=lambda n: (depth_of(n), priority(n), n))
        groups = {g: self._members(g) for g in self.groups}
        member_sets = {g: set(hs) for g, hs in groups.items()}

        def file_vars(found: dict[str, FileVar]) -> dict[str, Var]:
            return {k: Var(v.value, v.line, v.field, v.file) for k, v in found.items()}

        hosts: dict[str, Host] = {}
        secrets: set[str] = set()
        for name in groups["all"]:
            in_groups = [g for g in order if name in member_sets[g]]
            # Ansible's precedence: inventory vars of all, then of each group
            # (depth, priority, name); then group_vars/all, group_vars/<group>
            # files in that order; then the host's inventory vars, host_vars/.
            merged: dict[str, Var] = {}
            for g in ["all", *in_groups]:  # a group's own priority is not a variable
                merged.update((k, v) for k, v in self.groups[g].vars.items() if k != GROUP_PRIORITY)
            if vars_dirs is not None:
                for g in ["all", *in_groups]:
                    merged.update(file_vars(vars_dirs.group(g)))
            merged.update(self.host_vars[name])
            if vars_dirs is not None:
                merged.update(file_vars(vars_dirs.host(name)))
            for internal in INTERNAL & merged.keys():  # Ansible's own magic variables
                del merged[internal]
            secrets |= self._secrets(merged.get("rollout_secrets"))
            hosts[name] = self._make_host(name, merged, tuple(in_groups))

        return Inventory(source=self.file, hosts=hosts, groups=groups, secrets=frozenset(secrets),
                         direct={g: tuple(v.hosts) for g, v in self.groups.items()},
                         children={g: tuple(v.children) for g, v in self.groups.items()})

    def _secrets(self, v: Var | None) -> set[str]:
        if v is None:
            return set()
        items = v.value
        if isinstance(items, str):
            items = [s.strip() for s in items.split(",") if s.strip()]
        if not isinstance(items, list):
            raise self.fail(v.line, v.field, f"expected a list of variable names, got {show(v.value)}", v.file)
        names: set[str] = set()
        for item in items:
            if not isinstance(item, str) or not VAR_NAME.fullmatch(item):
                raise self.fail(v.line, v.field, f"expected a variable name, got {show(item)}", v.file)
            names.add(item)
        return names

    def _make_host(self, name: str, merged: dict[str, Var], groups: tuple[str, ...]) -> Host:
        def get(keys: tuple[str, ...], check: Callable[[object], _T], default: _D, /) -> _T | _D:
            for key in keys:
                v = merged.get(key)
                if v is not None:
                    try:
                        if isinstance(v.value, str) and ("{{" in v.value or "{%" in v.value):
                            raise ValueError(f"Jinja2 template {show(v.value)}: the console does not evaluate "
                                             "templates (neither does `ansible-inventory --list`)")
                        return check(v.value)
                    except ValueError as exc:
                        raise self.fail(v.line, v.field, str(exc), v.file) from None
            return default

        address = get(("ansible_host", "ansible_ssh_host"), check_address, None)
        if address is None:
            line, fld = self.host_origin[name]
            try:
                address = check_address(name)
            except ValueError as exc:  # pragma: no cover - host names are valid addresses
                raise self.fail(line, fld, str(exc)) from None
        become = get(("ansible_become",), check_bool, False)
        return Host(
            name=name,
            address=address,
            port=get(("ansible_port", "ansible_ssh_port"), check_port, None),
            user=get(("ansible_user", "ansible_ssh_user"), check_user, None),
            key_file=get(("ansible_ssh_private_key_file", "ansible_private_key_file"), check_key_file, None),
            become=become,
            groups=groups,
            vars=MappingProxyType({k: v.value for k, v in merged.items()}),
            connection=connection_of(get, lambda key: key in merged, become),
        )
