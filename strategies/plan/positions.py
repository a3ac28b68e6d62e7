"""Where a validation error stands in the file: pydantic's error paths in
the (possibly translated) plan data mapped back to the line and field the
user wrote, with one message in the plan's words.
"""
from __future__ import annotations

import re
import typing
from typing import Annotated, Mapping

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from inventory.validate import did_you_mean, show
from inventory.yaml_source import PathKey, YamlDoc, format_path

from ..errors import PlanError
from .models import Plan


def model_at(cls: object, loc: PathKey) -> type[BaseModel] | None:
    """The pydantic model class found at ``loc`` below ``cls`` (or None)."""
    for part in loc:
        while True:
            origin = typing.get_origin(cls)
            if origin is Annotated:
                cls = typing.get_args(cls)[0]
                continue
            if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
                models = [a for a in typing.get_args(cls) if isinstance(a, type) and issubclass(a, BaseModel)]
                lists = [a for a in typing.get_args(cls) if typing.get_origin(a) is list]
                cls = models[0] if models else (lists[0] if lists else None)
                continue
            break
        if cls is None:
            return None
        if typing.get_origin(cls) is list:
            if isinstance(part, int):
                cls = typing.get_args(cls)[0]
                continue
            return None
        if isinstance(cls, type) and issubclass(cls, BaseModel) and isinstance(part, str):
            f = cls.model_fields.get(part)
            if f is None:
                return None
            cls = f.annotation
            continue
        return None
    while typing.get_origin(cls) is Annotated:
        cls = typing.get_args(cls)[0]
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _existing(data: object, loc: PathKey) -> PathKey:
    """The longest prefix of ``loc`` that exists in ``data``."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        out.append(part)
    return tuple(out)


class Source:
    """Maps paths in the (possibly translated) plan data back to the file."""

    def __init__(self, doc: YamlDoc, origin: Mapping[PathKey, PathKey | str]) -> None:
        self.doc = doc
        self.origin = origin

    def locate(self, path: PathKey) -> tuple[int | None, str]:
        for n in range(len(path), -1, -1):
            head = path[:n]
            if head in self.origin:
                src = self.origin[head]
                if isinstance(src, str):  # e.g. "--version"
                    return None, src
                src = tuple(src) + tuple(path[n:])
                return self.doc.line_of(src), format_path(src)
        return self.doc.line_of(path), format_path(path)


def _message(err: ErrorDetails, known: list[str] | None) -> str:
    typ, msg, value = err["type"], err["msg"], err.get("input")
    if typ == "extra_forbidden":
        key = err["loc"][-1]
        return "unknown key" + (did_you_mean(str(key), known) if known else "")
    if typ == "missing":
        return "missing required field"
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    if typ == "literal_error" and isinstance(value, str):
        expected = re.findall(r"'([^']*)'", msg)
        hint = did_you_mean(value, expected)
        return f"expected one of {', '.join(expected)}, got {show(value)}{hint if hint.startswith('; did') else ''}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {show(value)}"
    if "got " in msg:
        return msg
    return f"{msg[0].lower() + msg[1:]}, got {show(value)}"


def raise_validation(exc: ValidationError, data: Mapping[str, object], src: Source, file: str) -> typing.NoReturn:
    best = None
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _existing(data, loc)
        missing_depth = 0 if err["type"] == "extra_forbidden" else 1
        if err["type"] in ("missing", "extra_forbidden") and len(loc) == len(path) + missing_depth:
            path = loc
        line, fld = src.locate(path)
        known = None
        if err["type"] == "extra_forbidden":
            model = model_at(Plan, loc[:-1])
            known = [k for k in model.model_fields if not (model is Plan and k == "source")] if model else None
        key = (line if line is not None else 10**9,)
        if best is None or key < best[0]:
            flag = fld.startswith("--") and line is None  # a value from the command line, not the file
            best = (key, PlanError(fld, None, "", _message(err, known)) if flag
                    else PlanError(file, line, fld, _message(err, known)))
    assert best is not None  # a ValidationError holds at least one error
    raise best[1]
