"""Translate the seed article's deployment blocks into native plan data.

    rolling_deployment:      -> strategy rolling
    canary_deployment:       -> strategy canary (steps computed)
    blue_green_deployment:   -> strategy blue_green

The blocks load verbatim; other top-level keys beside a block are native plan
keys and win over the translated values. ``translate`` returns the native
data plus an origin map (native path -> source path) so validation errors
point at the line the user wrote.
"""
from __future__ import annotations

import re
from typing import TypeAlias

from pydantic import BaseModel

from inventory.validate import check_bool, did_you_mean, show
from inventory.yaml_source import PathKey, YamlDoc, format_path

from ..errors import PlanError
from . import values as T
from .models import Canary, Health, Thresholds

SEED_KEYS = {
    "rolling_deployment": "rolling",
    "canary_deployment": "canary",
    "blue_green_deployment": "blue_green",
}
METRICS = ("error_rate", "latency", "instance_health", "quality_score", "cpu")
THRESHOLD_MAP = {"error_rate": "error_rate", "latency": "p95_latency", "quality_score": "quality_score", "cpu": "cpu"}

# The keys a block may hold: a nested block's own schema, None for a value
Schema: TypeAlias = "dict[str, Schema | None]"

_MONITORING: Schema = {"metrics": None, "thresholds": {k: None for k in THRESHOLD_MAP}}
_ROLLBACK: Schema = {"enabled": None, "delay": None}
SCHEMAS: dict[str, Schema] = {
    "rolling_deployment": {
        "strategy": None, "replacement_rate": None, "replacement_interval": None,
        "monitoring": _MONITORING, "rollback": _ROLLBACK,
    },
    "canary_deployment": {
        "strategy": None, "initial_traffic": None, "max_traffic": None, "step_size": None,
        "step_interval": None, "monitoring": _MONITORING, "rollback": _ROLLBACK,
    },
    "blue_green_deployment": {
        "strategy": None, "production_env": None, "staging_env": None,
        "traffic_switch": {"delay": None, "timeout": None},
        "rollback": _ROLLBACK,
        "monitoring": {"metrics": None, "threshold": None},
        "health_check": {"endpoint": None, "interval": None, "timeout": None},
    },
}
MAX_CANARY_STEPS = 500


class _Translation:
    def __init__(self, doc: YamlDoc, file: str, key: str) -> None:
        self.doc, self.file, self.key = doc, file, key
        self.data: dict[str, object] = {}
        self.origin: dict[PathKey, PathKey] = {}

    def fail(self, src: PathKey, message: str) -> PlanError:
        return PlanError(self.file, self.doc.line_of(src), format_path(src), message)

    def set(self, native: tuple[str, ...], value: object, src: PathKey) -> None:
        node = self.data
        for part in native[:-1]:
            child = node.setdefault(part, {})
            assert isinstance(child, dict)  # `set` builds every section it writes below as a mapping
            node = child
        node[native[-1]] = value
        self.origin[native] = src

    def check_schema(self, value: object, schema: Schema, src: PathKey) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            raise self.fail(src, f"expected a mapping, got {show(value)}")
        for k, v in value.items():
            if k not in schema:
                raise self.fail(src + (k,), f"unknown key{did_you_mean(str(k), schema)}")
            sub = schema[k]
            if isinstance(sub, dict):
                self.check_schema(v, sub, src + (k,))

    def get(self, block: dict[str, object], *path: str) -> object:
        node: object = block
        for p in path:
            if not isinstance(node, dict):
                return None
            node = node.get(p)
        return node

    def number(self, value: object, src: PathKey, what: str, low: float, high: float, low_open: bool = False) -> float:
        try:
            v = T.fraction(value) if isinstance(value, str) else value
        except ValueError:
            v = value
        if not T.is_number(v) or not (low < v if low_open else low <= v) or not v <= high:
            lo = f"above {low:g}" if low_open else f"at least {low:g}"
            raise self.fail(src, f"expected {what} {lo} and at most {high:g}, got {show(value)}")
        return float(v)

    # -- common parts -----------------------------------------------------------

    def monitoring(self, block: dict[str, object], base: PathKey) -> list[str]:
        metrics = self.get(block, "monitoring", "metrics")
        src = base + ("monitoring", "metrics")
        names: list[str] = []
        if metrics is not None:
            if not isinstance(metrics, list):
                raise self.fail(src, f"expected a list of metric names, got {show(metrics)}")
            for i, m in enumerate(metrics):
                if m not in METRICS:
                    raise self.fail(src + (i,), f"unknown metric {show(m)}{did_you_mean(str(m), METRICS)}")
                names.append(m)
        thresholds = self.get(block, "monitoring", "thresholds")  # a mapping or None: check_schema saw to it
        for k, v in (thresholds.items() if isinstance(thresholds, dict) else ()):
            self.set(("thresholds", THRESHOLD_MAP[k]), v, base + ("monitoring", "thresholds", k))
        return names

    def rollback(self, block: dict[str, object], base: PathKey) -> None:
        enabled = self.get(block, "rollback", "enabled")
        if enabled is not None:
            src = base + ("rollback", "enabled")
            try:
                flag = check_bool(enabled)
            except ValueError as exc:
                raise self.fail(src, str(exc)) from None
            self.set(("on_failure",), "rollback" if flag else "pause", src)
        delay = self.get(block, "rollback", "delay")
        if delay is not None:
            self.set(("rollback_delay",), delay, base + ("rollback", "delay"))

    # -- the three blocks ---------------------------------------------------------

    def rolling(self, block: dict[str, object], base: PathKey) -> None:
        rate = block.get("replacement_rate")
        if rate is not None:
            src = base + ("replacement_rate",)
            r = self.number(rate, src, "a replacement rate (fraction of instances)", 0.0, 1.0, low_open=True)
            self.set(("rolling", "batch"), f"{round(r * 100, 4):g}%", src)
        if "replacement_interval" in block:
            self.set(("rolling", "interval"), block["replacement_interval"], base + ("replacement_interval",))
        self.monitoring(block, base)
        self.rollback(block, base)

    def canary(self, block: dict[str, object], base: PathKey) -> None:
        def frac(key: str, default: float, low_open: bool) -> float:
            if block.get(key) is None:
                return default
            return self.number(block[key], base + (key,), f"{key} (fraction of traffic)", 0.0, 1.0, low_open)

        initial = frac("initial_traffic", 0.01, False)
        maximum = frac("max_traffic", 1.0, True)
        step = frac("step_size", 0.04, True)
        units = {}
        for key, value in (("initial_traffic", initial), ("max_traffic", maximum), ("step_size", step)):
            u = round(value * 10000)
            if abs(u - value * 10000) > 1e-6:
                raise self.fail(base + (key,), f"nginx splits traffic in 0.01% steps, got {show(block.get(key))}")
            units[key] = u
        if units["initial_traffic"] > units["max_traffic"]:
            raise self.fail(base + ("initial_traffic",), f"initial_traffic {initial:g} is above max_traffic {maximum:g}")
        if (units["max_traffic"] - units["initial_traffic"]) / units["step_size"] > MAX_CANARY_STEPS:
            raise self.fail(base + ("step_size",), f"step_size {step:g} gives more than {MAX_CANARY_STEPS} steps")
        interval = block.get("step_interval", "30s")
        interval_src = base + ("step_interval",) if "step_interval" in block else base
        weights = []
        w = units["initial_traffic"]
        while w < units["max_traffic"]:
            weights.append(w)
            w += units["step_size"]
        weights.append(units["max_traffic"])
        steps: list[dict[str, object]] = []
        for w in weights:
            steps.append({"set_weight": w / 100})
            self.origin[("canary", "steps", len(steps) - 1)] = base + ("initial_traffic",)
            if w != 10000:
                steps.append({"analysis": interval})
                self.origin[("canary", "steps", len(steps) - 1)] = interval_src
        self.set(("canary", "steps"), steps, base)
        for i in range(len(steps)):  # `set` put the whole list at base; keep the per-step map
            self.origin.setdefault(("canary", "steps", i), base)
        self.monitoring(block, base)
        self.rollback(block, base)

    def blue_green(self, block: dict[str, object], base: PathKey) -> None:
        prod, staging = block.get("production_env"), block.get("staging_env")
        if prod is not None:
            self.set(("blue_green", "active"), prod, base + ("production_env",))
        if staging is not None:
            src = base + ("staging_env",)
            if staging not in ("blue", "green"):
                raise self.fail(src, f'expected "blue" or "green", got {show(staging)}'
                                     f'{did_you_mean(str(staging), ["blue", "green"])}')
            if prod is not None and staging == prod:
                raise self.fail(src, f"staging_env must be the other colour than production_env ({show(prod)})")
            if prod is None:
                self.set(("blue_green", "active"), "green" if staging == "blue" else "blue", src)
        ts = _section(block, "traffic_switch")
        if "delay" in ts:
            self.set(("blue_green", "pre_switch_delay"), ts["delay"], base + ("traffic_switch", "delay"))
        if "timeout" in ts:
            self.set(("blue_green", "rollback_window"), ts["timeout"], base + ("traffic_switch", "timeout"))
        self.rollback(block, base)
        metrics = self.monitoring(block, base)
        threshold = self.get(block, "monitoring", "threshold")
        if threshold is not None:
            src = base + ("monitoring", "threshold")
            self.set(("thresholds", "health_pass_rate"), threshold, src)
            if "quality_score" in metrics:
                self.set(("thresholds", "quality_score"), threshold, src)
        hc = _section(block, "health_check")
        for key, native in (("endpoint", "path"), ("interval", "interval"), ("timeout", "timeout")):
            if key in hc:
                self.set(("health", native), hc[key], base + ("health_check", key))


def _section(block: dict[str, object], key: str) -> dict[str, object]:
    """A block's nested section, {} when absent (check_schema refused any other value)."""
    value = block.get(key)
    return value if isinstance(value, dict) else {}


def _merge(t: _Translation, native: dict[str, object], beside: dict[str, object], path: PathKey) -> None:
    """Beside keys win over translated values, leaf by leaf."""
    for k, v in beside.items():
        p = path + (k,)
        sub = native.get(k)
        if isinstance(v, dict) and isinstance(sub, dict):
            _merge(t, sub, v, p)
            continue
        native[k] = v
        for o in [o for o in t.origin if o[: len(p)] == p]:
            del t.origin[o]
        t.origin[p] = p


def translate(doc: YamlDoc, data: dict[str, object], file: str) -> tuple[dict[str, object], dict[PathKey, PathKey]]:
    """`data` (doc's own, a mapping with a seed block) as native plan data, and where each native path was written."""
    keys = [k for k in data if k in SEED_KEYS]
    if len(keys) > 1:
        raise PlanError(file, doc.line_of((keys[1],)), keys[1], f"only one deployment block per plan, {keys[0]} is already given")
    key = keys[0]
    t = _Translation(doc, file, key)
    block = data[key]
    base = (key,)
    if block is None or not isinstance(block, dict):
        raise t.fail(base, f"expected a mapping with the {key} settings, got {show(block)}")
    t.check_schema(block, SCHEMAS[key], base)
    strategy = SEED_KEYS[key]
    if "strategy" in block and block["strategy"] != strategy:
        raise t.fail(base + ("strategy",), f'expected "{strategy}" inside {key}, got {show(block["strategy"])}')
    t.set(("strategy",), strategy, base + ("strategy",) if "strategy" in block else base)
    getattr(t, strategy)(block, base)
    beside = {k: v for k, v in data.items() if k != key}
    if "strategy" in beside:
        raise PlanError(file, doc.line_of(("strategy",)), "strategy", f"the strategy is set by {key}; remove this key")
    _merge(t, t.data, beside, ())
    _derive(t)
    return t.data, t.origin


def _derive(t: _Translation) -> None:
    """Settings the article implies but does not write, so that the console
    never refuses its own translation. Keys written beside the block win.

    - health.deadline: the article probes every health_check.interval (30s)
      and our default asks for `passes` probes in a row, which cannot fit
      the 60s default deadline; the deadline becomes passes x interval plus
      one probe timeout.
    - thresholds.persistence: rollback.delay is the longest a failing check
      may stand before the rollback starts (the article's canary: "rollback
      trigger ... for 5 minutes"; blue-green "immediate", 5s). The gate fails
      after `persistence` failing samples `canary.sample_interval` apart,
      so persistence is lowered until (persistence - 1) x sample_interval
      fits the delay. The console never waits the delay out before rolling
      back; `Plan` refuses settings written beside the block that exceed it."""

    def setting(section: str, key: str, model: type[BaseModel]) -> object:
        written = t.data.get(section)
        value = written.get(key) if isinstance(written, dict) else None
        return model.model_fields[key].default if value is None else value

    try:
        health = t.data.get("health")  # a mapping whenever ("health", "interval") is in t.origin
        if ("health", "interval") in t.origin and isinstance(health, dict) and "deadline" not in health:
            deadline = (T.integer(setting("health", "passes", Health), 1, 1_000_000, "a count")
                        * T.positive_duration(health["interval"]) + T.positive_duration(setting("health", "timeout", Health)))
            t.set(("health", "deadline"), f"{deadline:g}s", t.origin[("health", "interval")])
        thresholds = t.data.get("thresholds", {})  # written beside the block as null or not a mapping: left to validation
        if ("rollback_delay",) in t.origin and isinstance(thresholds, dict) and "persistence" not in thresholds:
            delay = T.duration(t.data["rollback_delay"])
            interval = T.positive_duration(setting("canary", "sample_interval", Canary))
            persistence = min(Thresholds.model_fields["persistence"].default, 1 + int(delay // interval))
            t.set(("thresholds", "persistence"), persistence, t.origin[("rollback_delay",)])
    except (ValueError, TypeError):
        return  # a bad value: the plan's own validation names it with its line


# -- the article's flattened text --------------------------------------------------

_FLAT_SCHEMAS: dict[str, Schema] = dict(SCHEMAS, alerting={"critical": None, "important": None, "warning": None})
_KEY_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(.*)$")


def _empty(rest: str) -> bool:
    rest = rest.strip()
    return not rest or rest.startswith("#")


def reindent_flat(text: str) -> str:
    """Restore the nesting of seed blocks whose indentation was lost.

    The article prints its YAML flush left (``rolling_deployment:`` then
    ``strategy: rolling`` ... all at column 0). Such a block is re-indented
    from the known block schema; lines are only prefixed with spaces, so line
    numbers are unchanged. Properly indented files are returned unchanged."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stack: list[tuple[Schema, int]] | None = None
    list_depth: int | None = None
    for i, line in enumerate(lines):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if stack is not None:
            if not stripped or stripped.startswith("#"):
                out.append(line)
                continue
            if body[:1].isspace():
                stack = None
            elif body.startswith("-"):
                if list_depth is not None:
                    out.append("  " * list_depth + line)
                    continue
                stack = None
            else:
                m = _KEY_LINE.match(body)
                level = None
                if m:
                    for n in range(len(stack) - 1, -1, -1):
                        if m.group(1) in stack[n][0]:
                            level = n
                            break
                if m is None or level is None:
                    stack = None
                else:
                    del stack[level + 1:]
                    schema, depth = stack[level]
                    out.append("  " * depth + line)
                    sub = schema[m.group(1)]
                    list_depth = None
                    if _empty(m.group(2)):
                        if isinstance(sub, dict):
                            stack.append((sub, depth + 1))
                        else:
                            list_depth = depth + 1
                    continue
        m = _KEY_LINE.match(body)
        if m and m.group(1) in _FLAT_SCHEMAS and _empty(m.group(2)):
            nxt = next((ln for ln in lines[i + 1:] if ln.strip() and not ln.strip().startswith("#")), "")
            if nxt and not nxt[:1].isspace():
                km = _KEY_LINE.match(nxt.rstrip("\r\n"))
                if km and km.group(1) in _FLAT_SCHEMAS[m.group(1)]:
                    stack = [(_FLAT_SCHEMAS[m.group(1)], 1)]
                    list_depth = None
        out.append(line)
    return "".join(out)
