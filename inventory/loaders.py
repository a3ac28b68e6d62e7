"""Load Ansible-style inventories (YAML or INI) into an ``Inventory``.

    load_inventory("hosts.yaml")   # all: {hosts, vars, children}
    load_inventory("hosts.ini")    # [group], [group:vars], [group:children]

Variable precedence follows Ansible: ``all`` vars < parent group vars < child
group vars < host vars. Groups are ordered by depth below ``all`` (deeper
wins), then ``ansible_group_priority``, then name (alphabetical, later wins).

All bad input raises ``InventoryError`` naming file, line and field.
"""
from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from .errors import InventoryError
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
    did_you_mean,
    expand_range,
    show,
)
from .yaml_source import PathKey, YamlDoc, format_path, load_yaml, parse_yaml, read_text

FLEETS_DIR = Path(__file__).resolve().parent / "fleets"
_FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GROUP_KEYS = ("hosts", "vars", "children")
_INI_KINDS = ("vars", "children", "hosts")
_YAML_EXT = {".yaml", ".yml", ".json"}
_INI_EXT = {".ini", ".cfg", ".hosts", ".inventory", ""}


def embedded_fleet_path(name: str = "default") -> Path:
    """Path of an inventory shipped with the console: inventory/fleets/<name>.yaml."""
    if not isinstance(name, str) or not _FLEET_NAME.match(name):
        raise InventoryError(str(FLEETS_DIR), None, "fleet", f"bad fleet name {show(name)}")
    return FLEETS_DIR / f"{name}.yaml"


@dataclass
class _Var:
    value: Any
    line: int | None
    field: str


@dataclass
class _Group:
    name: str
    line: int | None
    field: str
    # dc_field: `field` is also an attribute name here
    hosts: list[str] = dc_field(default_factory=list)
    children: list[str] = dc_field(default_factory=list)
    vars: dict[str, _Var] = dc_field(default_factory=dict)


class _Collector:
    """Format-independent inventory being built: groups, hosts, their vars."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[str, _Group] = {}
        self.parents: dict[str, list[str]] = {}
        self.host_order: list[str] = []
        self.host_vars: dict[str, dict[str, _Var]] = {}
        self.host_origin: dict[str, tuple[int | None, str]] = {}

    def fail(self, line: int | None, fld: str, message: str) -> InventoryError:
        return InventoryError(self.file, line, fld, message)

    def group(self, name: Any, line: int | None, fld: str) -> _Group:
        if not isinstance(name, str) or not GROUP_NAME.match(name):
            raise self.fail(line, fld, f"bad group name {show(name)} (letters, digits, '_', '-', '.')")
        if name not in self.groups:
            self.groups[name] = _Group(name, line, fld)
        return self.groups[name]

    def add_child(self, parent: str, child: str) -> None:
        g = self.groups[parent]
        if child not in g.children:
            g.children.append(child)
        ps = self.parents.setdefault(child, [])
        if parent not in ps:
            ps.append(parent)

    def host(self, group: _Group, pattern: Any, line: int | None, fld: str) -> list[str]:
        if not isinstance(pattern, str):
            pattern = str(pattern)
        try:
            names = expand_range(pattern)
        except ValueError as exc:
            raise self.fail(line, fld, str(exc)) from None
        for name in names:
            if not HOST_NAME.match(name):
                raise self.fail(
                    line, fld, f"bad host name {show(name)} (letters, digits, '.', '_', '-'; must start with a letter or digit)"
                )
            if name not in self.host_vars:
                self.host_order.append(name)
                self.host_vars[name] = {}
                self.host_origin[name] = (line, fld)
            if name not in group.hosts:
                group.hosts.append(name)
        return names

    def set_var(self, target: dict[str, _Var], key: Any, value: Any, line: int | None, fld: str) -> None:
        if not isinstance(key, str) or not VAR_NAME.match(key):
            raise self.fail(line, fld, f"bad variable name {show(key)} (letters, digits and '_', not starting with a digit)")
        target[key] = _Var(value, line, fld)

    # -- resolution -------------------------------------------------------

    def build(self) -> Inventory:
        if "all" not in self.groups:
            self.groups["all"] = _Group("all", None, "all")
        for name in self.groups:
            if name != "all" and not self.parents.get(name):
                self.add_child("all", name)
        if "all" in self.parents:
            p = self.parents["all"][0]
            g = self.groups[p]
            raise self.fail(g.line, g.field, '"all" cannot be a child of another group')
        if not self.host_order:
            raise self.fail(None, "", "inventory has no hosts")

        members: dict[str, set[str]] = {}
        depth: dict[str, int] = {}
        state: dict[str, int] = {}

        def visit(name: str, trail: tuple[str, ...]) -> set[str]:
            if state.get(name) == 2:
                return members[name]
            if state.get(name) == 1:
                g = self.groups[name]
                cycle = " -> ".join(trail[trail.index(name):] + (name,))
                raise self.fail(g.line, g.field, f"group cycle: {cycle}")
            state[name] = 1
            out = set(self.groups[name].hosts)
            for child in self.groups[name].children:
                out |= visit(child, trail + (name,))
            state[name] = 2
            members[name] = out
            return out

        for name in list(self.groups):
            visit(name, ())
        members["all"] = set(self.host_order)

        def depth_of(name: str) -> int:
            if name in depth:
                return depth[name]
            if name == "all":
                depth[name] = 0
            else:
                depth[name] = 1 + max((depth_of(p) for p in self.parents.get(name, ["all"])), default=0)
            return depth[name]

        def priority(name: str) -> int:
            v = self.groups[name].vars.get("ansible_group_priority")
            if v is None:
                return 1
            try:
                if isinstance(v.value, bool):
                    raise ValueError
                return int(v.value)
            except (TypeError, ValueError):
                raise self.fail(v.line, v.field, f"expected an integer, got {show(v.value)}") from None

        order = sorted(self.groups, key=lambda n: (depth_of(n), priority(n), n))
        index = {h: i for i, h in enumerate(self.host_order)}

        secrets: set[str] = set()

        def collect_secrets(vars_: dict[str, _Var]) -> None:
            v = vars_.get("rollout_secrets")
            if v is None:
                return
            items = v.value
            if isinstance(items, str):
                items = [s.strip() for s in items.split(",") if s.strip()]
            if not isinstance(items, list):
                raise self.fail(v.line, v.field, f"expected a list of variable names, got {show(v.value)}")
            for item in items:
                if not isinstance(item, str) or not VAR_NAME.match(item):
                    raise self.fail(v.line, v.field, f"expected a variable name, got {show(item)}")
                secrets.add(item)

        for g in self.groups.values():
            collect_secrets(g.vars)
        for hv in self.host_vars.values():
            collect_secrets(hv)

        hosts: dict[str, Host] = {}
        for name in self.host_order:
            merged: dict[str, _Var] = {}
            in_groups = [g for g in order if name in members[g]]
            for group_name in in_groups:
                merged.update(self.groups[group_name].vars)
            merged.update(self.host_vars[name])
            hosts[name] = self._make_host(name, merged, tuple(g for g in in_groups if g != "all"))

        groups = {g: tuple(sorted(members[g], key=index.__getitem__)) for g in self.groups}
        groups["all"] = tuple(self.host_order)
        return Inventory(source=self.file, hosts=hosts, groups=groups, secrets=frozenset(secrets))

    def _make_host(self, name: str, merged: dict[str, _Var], groups: tuple[str, ...]) -> Host:
        def get(keys: tuple[str, ...], check: Callable[[Any], Any], default: Any) -> Any:
            for key in keys:
                v = merged.get(key)
                if v is not None:
                    try:
                        return check(v.value)
                    except ValueError as exc:
                        raise self.fail(v.line, v.field, str(exc)) from None
            return default

        address = get(("ansible_host", "ansible_ssh_host"), check_address, None)
        if address is None:
            line, fld = self.host_origin[name]
            try:
                address = check_address(name)
            except ValueError as exc:  # pragma: no cover - host names are valid addresses
                raise self.fail(line, fld, str(exc)) from None
        return Host(
            name=name,
            address=address,
            port=get(("ansible_port", "ansible_ssh_port"), check_port, 22),
            user=get(("ansible_user", "ansible_ssh_user"), check_user, None),
            key_file=get(("ansible_ssh_private_key_file", "ansible_private_key_file"), check_key_file, None),
            become=get(("ansible_become",), check_bool, False),
            groups=groups,
            vars=MappingProxyType({k: v.value for k, v in merged.items()}),
        )


# -- YAML ----------------------------------------------------------------------

def _from_yaml(doc: YamlDoc, file: str) -> Inventory:
    c = _Collector(file)
    data = doc.data
    if data is None:
        raise c.fail(None, "", "inventory has no hosts (empty file)")
    if not isinstance(data, dict):
        raise c.fail(doc.line_of(()), "", f"expected a mapping of groups like `all: {{hosts: ...}}`, got {show(data)}")

    def group(name: Any, body: Any, path: PathKey, parent: str | None) -> None:
        line = doc.line_of(path)
        g = c.group(name, line, format_path(path))
        if parent is not None:
            c.add_child(parent, g.name)
        if body is None:
            return
        if not isinstance(body, dict):
            raise c.fail(line, format_path(path), f"expected a group mapping with hosts/vars/children, got {show(body)}")
        for key in body:
            if key not in _GROUP_KEYS:
                sub = path + (key,)
                raise c.fail(doc.line_of(sub), format_path(sub), f"unknown key{did_you_mean(key, _GROUP_KEYS)}")
        hosts = body.get("hosts")
        if hosts is not None:
            hp = path + ("hosts",)
            if not isinstance(hosts, dict):
                raise c.fail(doc.line_of(hp), format_path(hp), f"expected a mapping of host names, got {show(hosts)}")
            for hname, hvars in hosts.items():
                sub = hp + (hname,)
                names = c.host(g, hname, doc.line_of(sub), format_path(sub))
                if hvars is None:
                    continue
                if not isinstance(hvars, dict):
                    raise c.fail(doc.line_of(sub), format_path(sub), f"expected a mapping of host variables, got {show(hvars)}")
                for n in names:
                    for k, v in hvars.items():
                        vp = sub + (k,)
                        c.set_var(c.host_vars[n], k, v, doc.line_of(vp), format_path(vp))
        vars_ = body.get("vars")
        if vars_ is not None:
            vp = path + ("vars",)
            if not isinstance(vars_, dict):
                raise c.fail(doc.line_of(vp), format_path(vp), f"expected a mapping of variables, got {show(vars_)}")
            for k, v in vars_.items():
                sub = vp + (k,)
                c.set_var(g.vars, k, v, doc.line_of(sub), format_path(sub))
        children = body.get("children")
        if children is not None:
            cp = path + ("children",)
            if not isinstance(children, dict):
                raise c.fail(doc.line_of(cp), format_path(cp), f"expected a mapping of child groups, got {show(children)}")
            for cname, cbody in children.items():
                if cname == "all":
                    sub = cp + (cname,)
                    raise c.fail(doc.line_of(sub), format_path(sub), '"all" cannot be a child group')
                group(cname, cbody, cp + (cname,), g.name)

    for name, body in data.items():
        group(name, body, (name,), None)
    return c.build()


# -- INI -----------------------------------------------------------------------

_SECTION = re.compile(r"^\[([^\[\]]*)\]\s*(?:[#;].*)?$")


def _ini_value(text: str, literal: bool) -> Any:
    if literal and len(text) < 1000:
        try:
            return ast.literal_eval(text)
        except Exception:  # noqa: BLE001 - anything unparsable stays a string
            return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _from_ini(text: str, file: str) -> Inventory:
    c = _Collector(file)
    group = c.group("ungrouped", None, "ungrouped")
    section, kind = "ungrouped", "hosts"
    explicit_ungrouped = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            m = _SECTION.match(line)
            if not m:
                raise c.fail(lineno, "", f"bad section header {show(line)}; expected [group], [group:vars] or [group:children]")
            name, _, kind = m.group(1).strip().partition(":")
            kind = kind.strip() or "hosts"
            if kind not in _INI_KINDS:
                raise c.fail(lineno, f"[{m.group(1)}]", f"unknown section kind {show(kind)}{did_you_mean(kind, _INI_KINDS)}")
            group = c.group(name.strip(), lineno, f"[{m.group(1).strip()}]")
            section = group.name
            if section == "ungrouped":
                explicit_ungrouped = True
            continue
        if kind == "hosts":
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise c.fail(lineno, section, f"cannot parse host line: {exc}") from None
            if not tokens:
                continue
            pattern = tokens[0]
            if "=" in pattern:
                raise c.fail(lineno, section, f"expected a host name before variables, got {show(pattern)}")
            if section == "ungrouped":
                explicit_ungrouped = True
            names = c.host(group, pattern, lineno, f"{section}.hosts.{pattern}")
            for tok in tokens[1:]:
                key, eq, value = tok.partition("=")
                fld = f"{section}.hosts.{pattern}.{key}"
                if not eq:
                    raise c.fail(lineno, fld, f"expected key=value, got {show(tok)}")
                for n in names:
                    c.set_var(c.host_vars[n], key, _ini_value(value, True), lineno, fld)
        elif kind == "vars":
            body = line.split(" #", 1)[0].strip() if " #" in line else line
            key, eq, value = body.partition("=")
            key = key.strip()
            fld = f"{section}:vars.{key}"
            if not eq:
                raise c.fail(lineno, f"{section}:vars", f"expected key=value, got {show(line)}")
            c.set_var(group.vars, key, _ini_value(value.strip(), False), lineno, fld)
        else:  # children
            child = line.split()[0]
            if len(line.split()) > 1 and not line.split()[1].startswith(("#", ";")):
                raise c.fail(lineno, f"{section}:children", f"expected one group name per line, got {show(line)}")
            if child == "all":
                raise c.fail(lineno, f"{section}:children", '"all" cannot be a child group')
            c.group(child, lineno, f"{section}:children.{child}")
            c.add_child(section, child)
    if not explicit_ungrouped and not c.groups["ungrouped"].hosts:
        del c.groups["ungrouped"]
    return c.build()


# -- entry point ---------------------------------------------------------------

def _looks_like_ini(text: str) -> bool:
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        return line.startswith("[") and _SECTION.match(line) is not None or "=" in line.split("#")[0]
    return False


def load_inventory(path: str | Path) -> Inventory:
    """Load an Ansible-style inventory; the format is chosen by extension."""
    file = str(path)
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in _YAML_EXT and suffix not in _INI_EXT:
        raise InventoryError(file, None, "", f"unknown inventory format {show(suffix)}; use .yaml, .yml or .ini")
    if suffix in _YAML_EXT:
        return _from_yaml(load_yaml(p, error_cls=InventoryError), file)
    text = read_text(p, error_cls=InventoryError)
    if suffix == "" and not _looks_like_ini(text):
        try:
            doc = parse_yaml(text, file=file, error_cls=InventoryError)
        except InventoryError:
            doc = None
        if doc is not None and isinstance(doc.data, dict):
            return _from_yaml(doc, file)
    return _from_ini(text, file)
