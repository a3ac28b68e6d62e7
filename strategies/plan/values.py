"""Value parsers shared by the plan models and the seed translations.

Each raises ValueError with a message meant to follow ``file:line: field: ``.
"""
from __future__ import annotations

import math
import re
from typing import TypeGuard

from inventory.validate import did_you_mean, show

from ..durations import parse_duration
from ..metrics import ALIASES, METRICS, PLAN_METRICS

PERCENT = re.compile(r"^\s*(-?\d+(?:\.\d+)?|-?\.\d+)\s*%\s*$")


def is_number(value: object) -> TypeGuard[int | float]:
    """A number as YAML or JSON gives it (int or float), not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def duration(value: object) -> float:
    return parse_duration(value)


def positive_duration(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"expected a duration greater than zero, got {show(value)}")
    return seconds


def fraction(value: object) -> float:
    """0..1; "5%" -> 0.05. Errors echo the value as written ("200%", not 2.0)."""
    written = value
    if isinstance(value, str):
        m = PERCENT.fullmatch(value)
        if m:
            value = float(m.group(1)) / 100.0
        else:
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f'expected a fraction like 0.05 or a percentage like "5%", got {show(value)}') from None
    if not is_number(value) or math.isnan(value) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f'expected a fraction between 0 and 1 or a percentage like "5%" (0-100%), '
                         f'got {show(written)}')
    return float(value)


def quality(value: object) -> float:
    """Quality score as a fraction; values above 1 are points out of 100 (90 -> 0.90)."""
    if is_number(value) and 1.0 < float(value) <= 100.0:
        return float(value) / 100.0
    if isinstance(value, str) and not PERCENT.fullmatch(value):
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and 1.0 < number <= 100.0:
            return number / 100.0
    return fraction(value)


def integer(value: object, low: int, high: int | None = None, what: str = "an integer") -> int:
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,12}\s*", value):
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"{low}-{high}" if high is not None else f">= {low}"
        raise ValueError(f"expected {what} ({bounds}), got {show(value)}")
    return value


def port(value: object) -> int:
    return integer(value, 1, 65535, "a port number")


def percent_weight(value: object) -> float:
    """Canary traffic weight in percent, 0..100 in 0.01 steps ("5%" also accepted)."""
    written = value
    if isinstance(value, str):
        m = PERCENT.fullmatch(value)
        text = m.group(1) if m else value
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"expected a traffic percentage 0-100, got {show(value)}") from None
    if not is_number(value) or math.isnan(value) or not 0.0 <= value <= 100.0:
        raise ValueError(f"expected a traffic percentage 0-100, got {show(written)}")
    hundredths = round(value * 100)
    if abs(hundredths - value * 100) > 1e-6:
        raise ValueError(f"nginx splits traffic in 0.01% steps, got {show(written)}")
    return float(hundredths) / 100.0


# -- rolling batch --------------------------------------------------------------

_BATCH_MSG = 'expected a count, a percentage like "20%" or a list of them, got {}'


def _batch_item(value: object) -> int | str:
    if isinstance(value, str):
        m = PERCENT.fullmatch(value)
        if m:
            pct = float(m.group(1))
            if not 0 < pct <= 100:
                raise ValueError(f"batch percentage must be above 0% and at most 100%, got {show(value)}")
            return f"{pct:g}%"
        if re.fullmatch(r"\s*\d{1,9}\s*", value):
            value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ValueError(f"batch count must be at least 1, got {value}")
        return value
    raise ValueError(_BATCH_MSG.format(show(value)))


def batch(value: object) -> int | str | list[int | str]:
    if isinstance(value, list):
        if not value:
            raise ValueError(_BATCH_MSG.format("an empty list"))
        return [_batch_item(v) for v in value]
    return _batch_item(value)


# -- alert rules -----------------------------------------------------------------

_RULE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:(>=|<=|==|!=|=|>|<)\s*(.+?))?\s*$")


def rule_value(metric: str, value: object) -> float:
    unit = METRICS[metric].plan_unit
    if unit == "fraction":
        return fraction(value)
    if unit == "score":
        return quality(value)
    if unit == "seconds":
        return duration(value)
    count = integer(value, 0, None, "a count of failed health checks")
    return float(count)


def metric_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValueError(f"expected a metric name, got {show(name)}")
    name = ALIASES.get(name, name)
    if name not in PLAN_METRICS:
        raise ValueError(f"unknown metric {show(name)}{did_you_mean(name, list(PLAN_METRICS) + list(ALIASES))}")
    return str(name)


def parse_rule(value: object) -> dict[str, object]:
    """"error_rate > 5%" / {metric, op, value} -> {metric, op, value}."""
    if isinstance(value, dict):
        data = dict(value)
        if "metric" in data:
            data["metric"] = metric_name(data["metric"])
            if data["metric"] == "health_check_failed":
                data.setdefault("op", ">")
                data.setdefault("value", 0)
            if "value" in data and data.get("op") in (">", "<"):
                data["value"] = rule_value(data["metric"], data["value"])
        return data
    if not isinstance(value, str):
        raise ValueError(f'expected a rule like "error_rate > 5%", got {show(value)}')
    m = _RULE.fullmatch(value)
    if not m:
        raise ValueError(f'expected a rule like "error_rate > 5%", got {show(value)}')
    metric = metric_name(m.group(1))
    op, raw = m.group(2), m.group(3)
    if op is None:
        if metric != "health_check_failed":
            raise ValueError(f'rule needs a comparison like "{metric} > ...", got {show(value)}')
        return {"metric": metric, "op": ">", "value": 0.0}
    if op not in (">", "<"):
        raise ValueError(f'only ">" and "<" comparisons are supported, got {show(value)}')
    return {"metric": metric, "op": op, "value": rule_value(metric, raw.strip())}
