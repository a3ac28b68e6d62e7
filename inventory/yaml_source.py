"""Load YAML into plain Python data plus a line locator.

Safe construction only (no tags beyond the YAML core schema), duplicate keys
rejected, syntax errors turned into one-line ``InputError``s with the line.

    doc = load_yaml(path)            # or parse_yaml(text, file=...)
    doc.data                         # dicts, lists, str, int, float, bool, None
    doc.line_of(("all", "hosts", "web1"))   # 1-based line, nearest parent fallback
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import InputError

PathKey = tuple["str | int", ...]

SEQ, MAP, SET = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "tag:yaml.org,2002:set"
PAIRS = ("tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs")
MAX_NODES = 200_000  # guards against alias bombs ("billion laughs")
MAX_BYTES = 5_000_000


@dataclass
class YamlDoc:
    file: str
    data: object  # what the file holds, unchecked: a reader narrows it (isinstance) before use
    lines: dict[PathKey, int] = field(default_factory=dict)
    texts: dict[PathKey, str] = field(default_factory=dict)
    # keys YAML reads as something other than a string (`yes:` a bool, `12:`
    # an int), by path: the data keeps them as written, a reader that must
    # know (inventories: Ansible refuses or renames them) looks here
    typed_keys: dict[PathKey, object] = field(default_factory=dict)

    def line_of(self, path: PathKey) -> int | None:
        """Line of the key / item at ``path``, else of its nearest parent."""
        path = tuple(path)
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def text_of(self, path: PathKey) -> str | None:
        """The source text of the scalar at ``path`` (e.g. "2.10" for a float)."""
        return self.texts.get(tuple(path))


def format_path(path: PathKey) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _error(file: str, mark: yaml.Mark | None, path: PathKey, message: str, cls: type[InputError]) -> InputError:
    line = mark.line + 1 if mark is not None else None
    return cls(file, line, format_path(path), message)


def read_text(path: str | Path, *, error_cls: type[InputError] = InputError) -> str:
    """The file's text (UTF-8); missing/unreadable files become one-line errors."""
    file = str(path)
    p = Path(path)
    try:
        if p.is_dir():
            raise error_cls(file, None, "", "is a directory, expected a file")
        if p.stat().st_size > MAX_BYTES:
            raise error_cls(file, None, "", f"file is larger than {MAX_BYTES} bytes")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise error_cls(file, None, "", "file not found") from None
    except InputError:
        raise
    except OSError as exc:
        raise error_cls(file, None, "", f"cannot read: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise error_cls(file, line, "", "file is not valid UTF-8") from None


def load_yaml(path: str | Path, *, error_cls: type[InputError] = InputError) -> YamlDoc:
    return parse_yaml(read_text(path, error_cls=error_cls), file=str(path), error_cls=error_cls)


def parse_yaml(text: str, *, file: str = "<string>", error_cls: type[InputError] = InputError) -> YamlDoc:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        msg = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            msg = f"{exc.context}, {exc.problem}"
        line = None
        if mark is not None:  # "<stream end>" sits past the last line
            line = max(1, min(mark.line + 1, len(text.splitlines())))
        raise error_cls(file, line, "", f"YAML syntax error: {msg}") from None
    except yaml.YAMLError as exc:
        raise error_cls(file, None, "", f"YAML error: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. odd control characters
        raise error_cls(file, None, "", f"YAML error: {exc}") from None
    doc = YamlDoc(file=file, data=None)
    if root is None:
        return doc
    builder = _Builder(doc, error_cls)
    try:
        doc.data = builder.build(root, ())
    except RecursionError:
        raise error_cls(file, root.start_mark.line + 1, "", "document is nested too deeply") from None
    doc.lines.setdefault((), root.start_mark.line + 1)
    return doc


class _Builder:
    def __init__(self, doc: YamlDoc, error_cls: type[InputError]) -> None:
        self.doc = doc
        self.error_cls = error_cls
        self.constructor = SafeConstructor()
        self.active: set[int] = set()
        self.count = 0

    def fail(self, node: Node, path: PathKey, message: str) -> InputError:
        return _error(self.doc.file, node.start_mark, path, message, self.error_cls)

    def scalar(self, node: ScalarNode, path: PathKey) -> object:
        try:
            value = self.constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise self.fail(node, path, exc.problem or "cannot construct value") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise self.fail(node, path, f"bad value {node.value!r}: {exc}") from None
        finally:
            self.constructor.constructed_objects.clear()
        return value

    def pair(self, node: Node, path: PathKey) -> list[object]:
        """One item of an !!omap or !!pairs: a one-key mapping, kept as
        [key, value] (what PyYAML's safe loader and Ansible make of it)."""
        if not isinstance(node, MappingNode) or node.tag != MAP or len(node.value) != 1:
            raise self.fail(node, path, "each item of !!omap / !!pairs must be a one-key mapping")
        built = self.build(node, path)
        assert isinstance(built, dict)  # a MAP node builds a dict
        ((key, value),) = built.items()
        return [key, value]

    def build(self, node: Node, path: PathKey) -> object:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, path, f"document too large (more than {MAX_NODES} values after alias expansion)")
        if isinstance(node, ScalarNode):
            value = self.scalar(node, path)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.doc.texts[tuple(path)] = node.value
            return value
        if id(node) in self.active:
            raise self.fail(node, path, "recursive YAML alias")
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag not in (SEQ, *PAIRS):
                    raise self.fail(node, path, f"unsupported tag {node.tag}")
                out = []
                for i, item in enumerate(node.value):
                    sub = path + (i,)
                    self.doc.lines.setdefault(sub, item.start_mark.line + 1)
                    out.append(self.pair(item, sub) if node.tag in PAIRS else self.build(item, sub))
                return out
            if isinstance(node, MappingNode):
                if node.tag == SET:
                    raise self.fail(node, path, "!!set is not supported (Ansible lists a set's members in an order "
                                    "that changes from run to run): write a list")
                if node.tag != MAP:
                    raise self.fail(node, path, f"unsupported tag {node.tag}")
                result: dict[Any, Any] = {}
                as_typed: dict[Any, int] = {}  # keys YAML typed, by value: `1:` and `true:` are one key
                for knode, vnode in node.value:
                    if not isinstance(knode, ScalarNode):
                        raise self.fail(knode, path, "mapping keys must be plain scalars")
                    if knode.tag == "tag:yaml.org,2002:merge":
                        raise self.fail(knode, path, "YAML merge keys (<<) are not supported")
                    key = typed = self.scalar(knode, path)
                    if key is None:
                        key = "null" if knode.value else ""
                    if not isinstance(key, (str, int, float, bool)):
                        key = knode.value
                    if isinstance(key, (bool, float)):
                        key = knode.value  # `yes:` / `1.5:` keys stay as written
                    if isinstance(key, int):
                        key = str(key) if not isinstance(key, bool) else knode.value
                    sub = path + (key,)
                    if not isinstance(typed, str):
                        self.doc.typed_keys[sub] = typed
                        if typed in as_typed and typed == typed:  # NaN never equals itself
                            raise self.fail(knode, sub, f"duplicate key {knode.value!r}: YAML reads it as {typed!r}, "
                                            f"like the key on line {as_typed[typed]}")
                        as_typed[typed] = knode.start_mark.line + 1
                    if key in result:
                        first = self.doc.lines.get(sub)
                        raise self.fail(knode, sub, f"duplicate key {key!r} (first defined on line {first})")
                    self.doc.lines[sub] = knode.start_mark.line + 1
                    result[key] = self.build(vnode, sub)
                return result
            raise self.fail(node, path, "unsupported YAML node")  # pragma: no cover
        finally:
            self.active.discard(id(node))
