"""Loading plan files (native or seed form) and `thresholds:` files; every
bad input raises PlanError naming file, line and field.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from inventory.validate import show
from inventory.yaml_source import PathKey, parse_yaml, read_text

from ..errors import PlanError
from . import values as T
from .commands import read_secret
from .fields import Section
from .models import Plan, SecretRef, Thresholds
from .positions import Source, raise_validation
from .seed import SEED_KEYS, reindent_flat, translate


def load_plan(path: str | Path, *, version_override: str | None = None) -> Plan:
    """Load and validate a plan file (native or seed form)."""
    file = str(path)
    text = read_text(path, error_cls=PlanError)
    doc = parse_yaml(reindent_flat(text), file=file, error_cls=PlanError)
    data = doc.data
    if data is None:
        raise PlanError(file, None, "", "plan is empty")
    if not isinstance(data, dict):
        raise PlanError(file, doc.line_of(()), "", f"expected a mapping of plan settings, got {show(data)}")
    if "source" in data:
        raise PlanError(file, doc.line_of(("source",)), "source", "is set by the loader, remove it")
    origin: dict[PathKey, PathKey | str] = {}  # a path as written, or the flag that gave the value
    if any(k in SEED_KEYS for k in data):
        data, native = translate(doc, data, file)
        origin.update(native)
    else:
        data = dict(data)
    if "alerting" in data and "alerts" not in data:
        data["alerts"] = data.pop("alerting")
        origin[("alerts",)] = origin.get(("alerting",), ("alerting",))
    if T.is_number(data.get("version")):
        # `version: 2.0` is a float to YAML; keep the text as written.
        src = origin.get(("version",), ("version",))
        data["version"] = doc.text_of(src) if not isinstance(src, str) else str(data["version"])
    if version_override is not None:
        data["version"] = version_override
        origin[("version",)] = "--version"
    data.setdefault("name", Path(file).stem or "plan")
    data["source"] = file
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise_validation(exc, data, Source(doc, origin), file)
    for i, ref in enumerate(plan.secrets):
        if isinstance(ref, SecretRef):
            line, fld = Source(doc, origin).locate(("secrets", i))
            try:
                plan._secret_values[ref.name] = read_secret(ref)
            except ValueError as exc:
                raise PlanError(file, line, fld, f"secret {ref.name}: {exc}") from None
    return plan


def field_line(path: str | Path, field: tuple[str, ...]) -> int | None:
    """The line of plan file `path` where `field` is written (for errors the
    plan's values meet later, e.g. a group the inventory lacks), or None when
    the plan leaves it to its default."""
    file = str(path)
    doc = parse_yaml(reindent_flat(read_text(path, error_cls=PlanError)), file=file, error_cls=PlanError)
    origin: dict[PathKey, PathKey] = {}
    if isinstance(doc.data, dict) and any(k in SEED_KEYS for k in doc.data):
        origin = translate(doc, doc.data, file)[1]
    src = origin.get(field, field)
    return None if isinstance(src, str) else doc.lines.get(tuple(src))


class _ThresholdsFile(Section):
    thresholds: Thresholds = Thresholds()


def load_thresholds(path: str | Path) -> Thresholds:
    """A file holding a `thresholds:` block (for what-if replays); errors
    name file, line and field like plan errors."""
    file = str(path)
    doc = parse_yaml(read_text(path, error_cls=PlanError), file=file, error_cls=PlanError)
    data = doc.data
    if not isinstance(data, dict):
        raise PlanError(file, doc.line_of(()), "", f"expected a mapping with a thresholds: block, got {show(data)}")
    try:
        return _ThresholdsFile.model_validate(data).thresholds
    except ValidationError as exc:
        raise_validation(exc, data, Source(doc, {}), file)
