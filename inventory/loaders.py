"""The built-in loader: Ansible inventory files (YAML or INI) read exactly as
Ansible reads them, or refused in one line.

    load_inventory("hosts.yaml")   # all: {hosts, vars, children}
    load_inventory("hosts.ini")    # [group], [group:vars], [group:children]

What "exactly" covers: the format chosen by content, host patterns (ranges,
`host:port`), INI value typing, group and host order, `ungrouped`, the
`group_vars/` and `host_vars/` beside the file, and variable precedence:
`all` < groups by depth below `all` (deeper wins), then
``ansible_group_priority``, then name (later wins) < group_vars/all <
group_vars/<group> (same order) < host vars < host_vars/<host>. The corpus
test (tests/test_inventory_corpus.py) holds this against ansible-inventory.

All bad input raises ``InventoryError`` naming file, line and field.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable

from .ansible_values import GROUP_PRIORITY, INTERNAL, as_ansible, key_as_ansible, not_a_string, renamed
from .connection import connection_of
from .errors import InventoryError
from .host_patterns import parse_pattern
from .ini_source import parse_ini
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
    show,
)
from .vars_files import VarsDirs
from .yaml_source import PathKey, YamlDoc, format_path, parse_yaml, read_text

FLEETS_DIR = Path(__file__).resolve().parent / "fleets"
_FLEET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_GROUP_KEYS = ("hosts", "vars", "children")
_YAML_EXT = {".yaml", ".yml", ".json", ""}


def embedded_fleet_path(name: str = "default") -> Path:
    """Path of an inventory shipped with the console: inventory/fleets/<name>.yaml."""
    if not isinstance(name, str) or not _FLEET_NAME.fullmatch(name):
        raise InventoryError(str(FLEETS_DIR), None, "fleet", f"bad fleet name {show(name)}")
    return FLEETS_DIR / f"{name}.yaml"


@dataclass
class _Var:
    value: Any
    line: int | None
    field: str
    file: str | None = None  # None: the inventory file itself


@dataclass
class _Group:
    name: str
    line: int | None
    field: str
    # dc_field: `field` is also an attribute name here
    hosts: list[str] = dc_field(default_factory=list)  # direct members, in listing order
    children: list[str] = dc_field(default_factory=list)
    vars: dict[str, _Var] = dc_field(default_factory=dict)


def _valid_host_name(name: str) -> bool:
    if HOST_NAME.fullmatch(name):
        return True
    try:
        check_address(name)
    except ValueError:
        return False
    return ":" in name  # an IPv6 address


class _Collector:
    """Format-independent inventory being built the way Ansible's
    InventoryData builds it: `all` and `ungrouped` exist from the start
    (`ungrouped` first child of `all`), groups and hosts are kept in the order
    they are first seen."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.groups: dict[str, _Group] = {}
        self.parents: dict[str, list[str]] = {}
        self.host_order: list[str] = []
        self.host_vars: dict[str, dict[str, _Var]] = {}
        self.host_origin: dict[str, tuple[int | None, str]] = {}
        self.group("all", None, "all")
        self.group("ungrouped", None, "ungrouped")
        self.add_child("all", "ungrouped")

    def fail(self, line: int | None, fld: str, message: str, file: str | None = None) -> InventoryError:
        return InventoryError(file or self.file, line, fld, message)

    def group(self, name: Any, line: int | None, fld: str) -> _Group:
        if not isinstance(name, str) or not GROUP_NAME.fullmatch(name):
            raise self.fail(line, fld, f"bad group name {show(name)} (letters, digits, '_', '-', '.')")
        if name not in self.groups:
            self.groups[name] = _Group(name, line, fld)
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

    def host(self, group: _Group, pattern: Any, line: int | None, fld: str, ini: bool = False) -> list[str]:
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
                    self.host_vars[name]["ansible_port"] = _Var(port, line, fld)
            if name not in group.hosts:
                group.hosts.append(name)
        return names

    def set_var(self, target: dict[str, _Var], key: Any, value: Any, line: int | None, fld: str) -> None:
        if not isinstance(key, str) or not VAR_NAME.fullmatch(key):
            raise self.fail(line, fld, f"bad variable name {show(key)} (letters, digits and '_', not starting with a digit)")
        try:
            target[key] = _Var(as_ansible(value), line, fld)
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
                if isinstance(v.value, bool):
                    raise ValueError
                return int(v.value)
            except (TypeError, ValueError):
                raise self.fail(v.line, v.field, f"expected an integer, got {show(v.value)}") from None

        order = sorted((g for g in self.groups if g != "all"), key=lambda n: (depth_of(n), priority(n), n))
        groups = {g: self._members(g) for g in self.groups}
        member_sets = {g: set(hs) for g, hs in groups.items()}

        def file_vars(found: dict[str, Any]) -> dict[str, _Var]:
            return {k: _Var(v.value, v.line, v.field, v.file) for k, v in found.items()}

        hosts: dict[str, Host] = {}
        secrets: set[str] = set()
        for name in groups["all"]:
            in_groups = [g for g in order if name in member_sets[g]]
            # Ansible's precedence: inventory vars of all, then of each group
            # (depth, priority, name); then group_vars/all, group_vars/<group>
            # files in that order; then the host's inventory vars, host_vars/.
            merged: dict[str, _Var] = {}
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

    def _secrets(self, v: _Var | None) -> set[str]:
        if v is None:
            return set()
        items = v.value
        if isinstance(items, str):
            items = [s.strip() for s in items.split(",") if s.strip()]
        if not isinstance(items, list):
            raise self.fail(v.line, v.field, f"expected a list of variable names, got {show(v.value)}", v.file)
        for item in items:
            if not isinstance(item, str) or not VAR_NAME.fullmatch(item):
                raise self.fail(v.line, v.field, f"expected a variable name, got {show(item)}", v.file)
        return set(items)

    def _make_host(self, name: str, merged: dict[str, _Var], groups: tuple[str, ...]) -> Host:
        def get(keys: tuple[str, ...], check: Callable[[Any], Any], default: Any) -> Any:
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


# -- YAML ----------------------------------------------------------------------

def ansible_var(doc: YamlDoc, c: _Collector, path: PathKey, value: Any) -> tuple[str, Any, int | None, str]:
    """(name, value, line, field) of the variable at `path`, its name and
    nested keys as Ansible names them (`yes:` is "true")."""
    line, fld = doc.line_of(path), format_path(path)
    try:
        name = key_as_ansible(doc.typed_keys[path]) if path in doc.typed_keys else path[-1]
        return str(name), renamed(value, doc.typed_keys, path), line, fld
    except ValueError as exc:
        raise c.fail(line, fld, str(exc)) from None


def _as_mapping(value: Any) -> Any:
    """Ansible reads `hosts: web1` (a plain string) as `hosts: {web1: }`."""
    return {value: None} if isinstance(value, str) else value


def _from_yaml(doc: YamlDoc, c: _Collector) -> None:
    data = doc.data
    if data is None:
        raise c.fail(None, "", "inventory has no hosts (empty file)")
    if not isinstance(data, dict):
        raise c.fail(doc.line_of(()), "", f"expected a mapping of groups like `all: {{hosts: ...}}`, got {show(data)}")
    if "plugin" in data:
        raise c.fail(doc.line_of(("plugin",)), "plugin",
                     "inventory plugin configuration: only Ansible can run inventory plugins "
                     "(install rollout-console[ansible])")

    def group(name: Any, body: Any, path: PathKey) -> str:
        line = doc.line_of(path)
        if path in doc.typed_keys:
            raise c.fail(line, format_path(path), not_a_string("group", name, doc.typed_keys[path]))
        g = c.group(name, line, format_path(path))
        if body is None:
            return g.name
        if not isinstance(body, dict):
            raise c.fail(line, format_path(path), f"expected a group mapping with hosts/vars/children, got {show(body)}")
        for key in body:
            if key not in _GROUP_KEYS:
                sub = path + (key,)
                raise c.fail(doc.line_of(sub), format_path(sub), f"unknown key{did_you_mean(key, _GROUP_KEYS)}")
        for key in body:  # in written order, as Ansible reads them
            value = _as_mapping(body[key])
            kp = path + (key,)
            if value is None:
                continue
            if not isinstance(value, dict):
                raise c.fail(doc.line_of(kp), format_path(kp), f"expected a mapping, got {show(value)}")
            if key == "hosts":
                for hname, hvars in value.items():
                    sub = kp + (hname,)
                    if sub in doc.typed_keys:
                        raise c.fail(doc.line_of(sub), format_path(sub), not_a_string("host", hname, doc.typed_keys[sub]))
                    names = c.host(g, hname, doc.line_of(sub), format_path(sub))
                    if hvars is None:
                        continue
                    if not isinstance(hvars, dict):
                        raise c.fail(doc.line_of(sub), format_path(sub),
                                     f"expected a mapping of host variables, got {show(hvars)}")
                    for n in names:
                        for k, v in hvars.items():
                            vp = sub + (k,)
                            c.set_var(c.host_vars[n], *ansible_var(doc, c, vp, v))
            elif key == "vars":
                for k, v in value.items():
                    c.set_var(g.vars, *ansible_var(doc, c, kp + (k,), v))
            else:
                for cname, cbody in value.items():
                    sub = kp + (cname,)
                    if cname == "all":
                        raise c.fail(doc.line_of(sub), format_path(sub), '"all" cannot be a child group')
                    c.add_child(g.name, group(cname, cbody, sub))
        return g.name

    for name, body in data.items():
        group(name, body, (name,))


# -- entry point ---------------------------------------------------------------

def _refuse_source(p: Path, file: str) -> None:
    if p.is_dir():
        raise InventoryError(file, None, "", "inventory directories need the Ansible engine "
                                             "(install rollout-console[ansible]); give one inventory file")
    if p.suffix.lower() == ".toml":
        raise InventoryError(file, None, "", "TOML inventories need the Ansible engine (install rollout-console[ansible])")
    if p.is_file() and os.access(p, os.X_OK):
        raise InventoryError(file, None, "", "executable file: Ansible would run it as an inventory script, "
                                             "which needs the Ansible engine (install rollout-console[ansible]); "
                                             "clear its executable bit if it is a plain inventory")


def load_inventory(path: str | Path) -> Inventory:
    """Load an Ansible inventory file with the built-in loader.

    The format comes from the content, as Ansible decides it: a file named
    `*.yaml`, `*.yml`, `*.json` or without extension that parses as a YAML
    mapping is a YAML inventory; anything else is read as INI
    (`hosts.example`, `inventory.handlers`). `group_vars/` and `host_vars/`
    beside the file are read too."""
    file = str(path)
    p = Path(path)
    _refuse_source(p, file)
    text = read_text(p, error_cls=InventoryError)
    c = _Collector(file)
    yaml_error: InventoryError | None = None
    doc = None
    if p.suffix.lower() in _YAML_EXT:
        try:
            doc = parse_yaml(text, file=file, error_cls=InventoryError)
        except InventoryError as exc:
            yaml_error = exc
    if doc is not None and isinstance(doc.data, dict) and doc.data:
        _from_yaml(doc, c)
    else:
        try:
            parse_ini(text, c)
        except InventoryError:
            if yaml_error is not None and p.suffix.lower() in {".yaml", ".yml", ".json"}:
                raise yaml_error from None
            raise
    return c.build(VarsDirs(p.resolve().parent))


# -- Ansible's own reading ------------------------------------------------------

def from_listing(listing: Any, file: str, all_hosts: list[str], engine: str) -> Inventory:
    """An Inventory from `ansible-inventory --list` JSON: groups, their own
    hosts and subgroups as Ansible printed them, variables already merged by
    Ansible; `all_hosts` is Ansible's order of `all`."""
    c = _Collector(file)
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


ENGINES = ("auto", "ansible", "built-in")

# Where ansible-core finds its configuration (ansible.cfg), in its own order:
# a setting there (hash_behaviour, precedence, enabled vars or inventory
# plugins, vault) can change what Ansible reads from the same file.
_CFG_PLACES = ("ansible.cfg", "~/.ansible.cfg", "/etc/ansible/ansible.cfg")


def ansible_configured() -> bool:
    """Could something make Ansible read a plain inventory file differently
    from stock ansible-core: an ANSIBLE_* variable in the environment, or
    an ansible.cfg where Ansible looks for one?"""
    return any(k.startswith("ANSIBLE_") for k in os.environ) or any(
        Path(place).expanduser().is_file() for place in _CFG_PLACES)


def read_inventory(path: str | Path, engine: str = "auto") -> Inventory:
    """The inventory behind `--inventory`.

    "built-in" and "ansible" are what they say. "auto" (the default) uses
    the built-in loader when it reads the file and nothing configures
    Ansible (no ANSIBLE_* variable, no ansible.cfg): the built-in loader then
    reads exactly what stock ansible-core reads (the corpus test holds it to
    that) and saves the two seconds ansible-core's start-up costs. Anything
    else it cannot vouch for (a directory, a script, a plugin, a refused
    construct, an Ansible configuration) goes through ansible-core when it is
    installed; without it, the built-in loader's own one-line refusal stands."""
    from .ansible_engine import ansible_inventory_bin

    if engine not in ENGINES:
        raise InventoryError(str(path), None, "", f"unknown inventory engine {show(engine)}{did_you_mean(engine, ENGINES)}")
    if engine == "built-in":
        return load_inventory(path)
    binary = ansible_inventory_bin()
    if binary is None:
        if engine == "ansible":
            raise InventoryError(str(path), None, "", "ansible-core is not installed (pip install rollout-console[ansible])")
        return load_inventory(path)
    if engine == "auto" and not ansible_configured():
        try:
            return load_inventory(path)
        except InventoryError:
            pass  # Ansible may read what the built-in loader refuses: ask it
    return _through_ansible(path, binary)


def _through_ansible(path: str | Path, binary: str) -> Inventory:
    from .ansible_engine import load_with_ansible

    try:
        return load_with_ansible(path, binary)
    except InventoryError as exc:
        if exc.field == "ansible-inventory":
            raise  # Ansible itself refused the source: its own message
        # A value the console refuses. Ansible's JSON has no line numbers:
        # where the built-in loader reads the file, its error names the line.
        try:
            load_inventory(path)
        except InventoryError as located:
            raise located from None
        raise
