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
from pathlib import Path

from .ansible_engine import ansible_inventory_bin, load_with_ansible
from .ansible_values import key_as_ansible, not_a_string, renamed
from .collector import Collector
from .errors import InventoryError
from .ini_source import parse_ini
from .model import Inventory
from .validate import did_you_mean, show
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


# -- YAML ----------------------------------------------------------------------

def ansible_var(doc: YamlDoc, c: Collector, path: PathKey, value: object) -> tuple[str, object, int | None, str]:
    """(name, value, line, field) of the variable at `path`, its name and
    nested keys as Ansible names them (`yes:` is "true")."""
    line, fld = doc.line_of(path), format_path(path)
    try:
        name = key_as_ansible(doc.typed_keys[path]) if path in doc.typed_keys else path[-1]
        return str(name), renamed(value, doc.typed_keys, path), line, fld
    except ValueError as exc:
        raise c.fail(line, fld, str(exc)) from None


def _as_mapping(value: object) -> object:
    """Ansible reads `hosts: web1` (a plain string) as `hosts: {web1: }`."""
    return {value: None} if isinstance(value, str) else value


def _from_yaml(doc: YamlDoc, c: Collector) -> None:
    data = doc.data
    if data is None:
        raise c.fail(None, "", "inventory has no hosts (empty file)")
    if not isinstance(data, dict):
        raise c.fail(doc.line_of(()), "", f"expected a mapping of groups like `all: {{hosts: ...}}`, got {show(data)}")
    if "plugin" in data:
        raise c.fail(doc.line_of(("plugin",)), "plugin",
                     "inventory plugin configuration: only Ansible can run inventory plugins "
                     "(install rollout-console[ansible])")

    def group(name: str, body: object, path: PathKey) -> str:  # a key: yaml_source makes every key a string
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
    c = Collector(file)
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
