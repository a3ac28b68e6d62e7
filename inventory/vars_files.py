"""`group_vars/` and `host_vars/` beside an inventory, found as Ansible finds them.

For a group or host NAME under `<inventory dir>/group_vars` (or `host_vars`):
the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that exists; when
it is a directory, every file below it (sorted, recursively; hidden files,
`~` backups, files with other extensions and directories with an extension
skipped), later files overriding earlier ones key by key. Files are YAML
(JSON is YAML); an empty file adds nothing; anything but a mapping is an
error naming the file. Vault-encrypted files (`!vault`, `$ANSIBLE_VAULT`)
are refused: the built-in loader holds no vault password.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .ansible_values import as_ansible, key_as_ansible, renamed
from .errors import InventoryError
from .validate import VAR_NAME, show
from .yaml_source import format_path, parse_yaml, read_text

_EXTENSIONS = ("", ".yml", ".yaml", ".json")


@dataclass(frozen=True)
class FileVar:
    value: object  # as Ansible lists it (ansible_values.as_ansible), unchecked
    file: str
    line: int | None
    field: str


def _dir_files(path: Path) -> list[Path]:
    found: list[Path] = []
    for child in sorted(path.iterdir(), key=lambda p: p.name):
        name = child.name
        if name.startswith(".") or name.endswith("~"):
            continue
        ext = child.suffix
        if child.is_dir() and not ext:
            found.extend(_dir_files(child))
        elif child.is_file() and ext in _EXTENSIONS:
            found.append(child)
    return found


def find_files(base: Path, name: str) -> list[Path]:
    """Files holding NAME's variables under `base` (group_vars or host_vars)."""
    if not base.is_dir() or name.startswith("/"):
        return []
    for ext in _EXTENSIONS:
        path = base / (name + ext)
        if path.exists():
            return _dir_files(path) if path.is_dir() else [path]
    return []


def _load(path: Path) -> dict[str, FileVar]:
    file = str(path)
    text = read_text(path, error_cls=InventoryError)
    if text.lstrip().startswith("$ANSIBLE_VAULT"):
        raise InventoryError(file, 1, "", "vault-encrypted file: the built-in loader cannot decrypt it "
                                          "(install rollout-console[ansible] to read it through Ansible)")
    doc = parse_yaml(text, file=file, error_cls=InventoryError)
    if not doc.data:
        return {}
    if not isinstance(doc.data, dict):
        raise InventoryError(file, doc.line_of(()), "", f"expected a mapping of variables, got {show(doc.data)}")
    out: dict[str, FileVar] = {}
    for written, value in doc.data.items():
        at, line = (written,), doc.line_of((written,))
        try:
            key = key_as_ansible(doc.typed_keys[at]) if at in doc.typed_keys else written
            if not VAR_NAME.fullmatch(key):
                raise ValueError(f"bad variable name {show(key)} (letters, digits and '_', not starting with a digit)")
            out[key] = FileVar(as_ansible(renamed(value, doc.typed_keys, at)), file, line, format_path(at))
        except ValueError as exc:
            raise InventoryError(file, line, format_path(at), str(exc)) from None
    return out


class VarsDirs:
    """Variables from the `group_vars/` and `host_vars/` beside an inventory
    (each file read once)."""

    def __init__(self, inventory_dir: Path) -> None:
        self.group_dir = inventory_dir / "group_vars"
        self.host_dir = inventory_dir / "host_vars"
        self._cache: dict[tuple[str, str], dict[str, FileVar]] = {}

    def _vars(self, base: Path, name: str) -> dict[str, FileVar]:
        key = (str(base), name)
        if key not in self._cache:
            merged: dict[str, FileVar] = {}
            for path in find_files(base, name):
                merged.update(_load(path))
            self._cache[key] = merged
        return self._cache[key]

    def group(self, name: str) -> dict[str, FileVar]:
        return self._vars(self.group_dir, name)

    def host(self, name: str) -> dict[str, FileVar]:
        return self._vars(self.host_dir, name)
