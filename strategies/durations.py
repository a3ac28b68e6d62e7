"""Durations: "30s", "5m", "1h", "250ms", "1m30s", or plain numbers (seconds)."""
from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|sec|min|s|m|h|d)")
_WHOLE = re.compile(r"^(?:(?:\d+(?:\.\d+)?|\.\d+)\s*(?:ms|sec|min|s|m|h|d)\s*)+$")


def parse_duration(value: object) -> float:
    """Seconds as a float; ValueError with a clear message otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 250ms or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        try:
            seconds = float(text)
        except ValueError:
            if not text or not _WHOLE.fullmatch(text):
                raise ValueError(
                    f'expected a duration like 30s, 5m, 1h, 250ms or a number of seconds, got "{value}"'
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    else:
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 250ms or a number of seconds, got {type(value).__name__}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ValueError(f"duration must not be negative, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    if seconds < 1 and seconds > 0:
        return f"{seconds * 1000:g}ms"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
