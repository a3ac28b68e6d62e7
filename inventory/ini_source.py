"""The INI inventory format, read line by line as Ansible's `ini` plugin does.

Rules kept (each differs from a naive INI reader):
- lines before the first section are hosts of `ungrouped`;
- a section header is exactly `[name]` or `[name:kind]` (kind hosts, vars or
  children) with an optional `#` comment; any other line that starts with
  `[` is a host line unless it also ends with `]` (then it is an error), so
  `[A:F][0:9].example.org` is a host;
- a value (host line `k=v` or `:vars` line) is a Python literal when
  `ast.literal_eval` reads it (`False` -> bool, `22` -> int, `"x"` -> x),
  otherwise the text as written: in `:vars` everything after the first `=`,
  inline `#` comments included (`ansible_user=homelab # SSH user` is the
  user "homelab # SSH user", as Ansible reads it);
- a `[g:children]` entry naming a group declared later joins when that group
  is declared (so it is ordered there); one never declared is an error.
"""
from __future__ import annotations

import ast
import re
import shlex
import warnings
from typing import Any

from .collector import Collector, Group, Var
from .validate import did_you_mean, show

_SECTION = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?$")
_GROUP_LINE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
_KINDS = ("hosts", "vars", "children")


def _coerce(value: Any) -> Any:
    if isinstance(value, (list, tuple, set)):
        return [_coerce(v) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _coerce(k)
            if isinstance(key, list):  # a tuple: ansible-inventory fails on it too
                raise ValueError(f"a tuple as a mapping key ({show(k)}): ansible-inventory cannot list it")
            out[key] = _coerce(v)
        return out
    if value is Ellipsis:
        return "..."
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="surrogateescape")
    return value


def ini_value(text: str) -> object:
    """A value as Ansible's INI plugin types it; ValueError for one that
    ansible-inventory cannot list."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return _coerce(value)


def parse_ini(text: str, c: Collector) -> None:
    group = c.group("ungrouped", None, "ungrouped")
    section, kind = "ungrouped", "hosts"
    pending: dict[str, dict[str, Any]] = {}  # group -> {"kind", "line", "parents"}

    def add_pending_children(name: str) -> None:
        for parent in pending[name]["parents"]:
            c.add_child(parent, name)
            if parent in pending and pending[parent]["kind"] == "children":
                add_pending_children(parent)
        del pending[name]

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = _SECTION.match(line)
        if m:
            name, kind = m.group(1), m.group(2) or "hosts"
            header = line.split("]")[0] + "]"
            if kind not in _KINDS:
                raise c.fail(lineno, header, f"unknown section kind {show(kind)}{did_you_mean(kind, _KINDS)}")
            if name not in c.groups and kind == "vars" and name not in pending:
                pending[name] = {"kind": "vars", "line": lineno, "parents": []}
            group = c.group(name, lineno, header)
            section = group.name
            if name in pending and kind != "vars":
                if pending[name]["kind"] == "children":
                    add_pending_children(name)
                else:
                    del pending[name]
            continue
        if line.startswith("[") and line.endswith("]"):
            raise c.fail(lineno, "", f"bad section header {show(line)}; expected [group], [group:vars] or "
                                     "[group:children] with no spaces")
        if kind == "hosts":
            _host_line(c, group, section, line, lineno)
        elif kind == "vars":
            key, eq, value = line.partition("=")
            key = key.strip()
            if not eq:
                raise c.fail(lineno, f"{section}:vars", f"expected key=value, got {show(line)}")
            _set_var(c, group.vars, key, value.strip(), lineno, f"{section}:vars.{key}")
        else:
            gm = _GROUP_LINE.match(line)
            if not gm:
                raise c.fail(lineno, f"{section}:children", f"expected one group name per line, got {show(line)}")
            child = gm.group(1)
            if child == "all":
                raise c.fail(lineno, f"{section}:children", '"all" cannot be a child group')
            if child in c.groups:
                c.add_child(section, child)
            elif child in pending:
                pending[child]["parents"].append(section)
            else:
                pending[child] = {"kind": "children", "line": lineno, "parents": [section]}
    for name, decl in pending.items():
        if decl["kind"] == "vars":
            raise c.fail(decl["line"], f"[{name}:vars]", f"section for undefined group {show(name)}")
        raise c.fail(decl["line"], f"{decl['parents'][-1]}:children",
                     f"includes undefined group {show(name)} (declare it with [{name}])")


def _set_var(c: Collector, target: dict[str, Var], key: str, text: str, lineno: int, fld: str) -> None:
    """`key=text` as Ansible's INI plugin types the value, or an error at its line."""
    try:
        value = ini_value(text)
    except ValueError as exc:
        raise c.fail(lineno, fld, str(exc)) from None
    c.set_var(target, key, value, lineno, fld)


def _host_line(c: Collector, group: Group, section: str, line: str, lineno: int) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise c.fail(lineno, section, f"cannot parse host line: {exc}") from None
    if not tokens:
        raise c.fail(lineno, section, f"expected a host name, got {show(line)}")
    pattern = tokens[0]
    field = f"{section}.hosts.{pattern}"
    names = c.host(group, pattern, lineno, field, ini=True)
    for tok in tokens[1:]:
        key, eq, value = tok.partition("=")
        if not eq:
            raise c.fail(lineno, field, f"expected key=value, got {show(tok)}")
        for n in names:
            _set_var(c, c.host_vars[n], key, value, lineno, f"{field}.{key}")
