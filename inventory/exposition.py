"""An instance's own /metrics: Prometheus's text format, read with
prometheus_client's parser (the format's maintained reference reader, no
parser of our own), or the stand-in agent's older JSON body.

    series = read_metrics(body)                    # ExpositionError if neither
    series.value(Selector("agent_quality_score"))  # None: no such sample

A `Selector` is a metric name and labels a sample must carry (others may
differ); the samples it matches are summed, so `agent_requests_total` with no
labels counts every status, and `{"status": "500"}` only those. A matched
sample that is not a finite number (NaN, +Inf) makes the value None
(unknown), never a number a judge could pass.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Mapping

from prometheus_client.parser import text_string_to_metric_families

# The older JSON body of the stand-in agent, read into the names its
# Prometheus form uses, so a plan's selectors work on both while a fleet
# still runs agents started before the change.
LEGACY_JSON = {
    "quality_score": "agent_quality_score",
    "inflight": "agent_inflight_requests",
    "requests": "agent_requests_total",
    "errors": "agent_errors_total",
}
Labels = tuple[tuple[str, str], ...]


class ExpositionError(ValueError):
    """The body is neither Prometheus's text format nor a JSON object."""


@dataclass(frozen=True)
class Selector:
    """A metric name and the labels its samples must carry."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}" if inner else self.name


@dataclass(frozen=True)
class Series:
    """Every sample of one scrape: (name, sorted labels) -> value."""

    samples: Mapping[tuple[str, Labels], float] = field(default_factory=dict)

    def value(self, sel: Selector) -> float | None:
        """The sum of the samples `sel` matches; None when none does, or
        one of them is not a finite number."""
        want = set(sel.labels.items())
        found = [v for (name, labels), v in self.samples.items() if name == sel.name and want <= set(labels)]
        if not found or not all(math.isfinite(v) for v in found):
            return None
        return sum(found)

    def label(self, name: str, label: str) -> str | None:
        """The value of `label` on the first sample of `name` (the agent's
        version, carried as a label)."""
        for (n, labels), _ in self.samples.items():
            if n == name:
                return dict(labels).get(label)
        return None


def read_metrics(body: bytes) -> Series:
    """A /metrics body: JSON when it is a JSON object (the older form; no
    line of the text format starts with "{"), else Prometheus's text format."""
    text = body.decode("utf-8", "replace")
    if text.lstrip().startswith("{"):
        return _from_json(text)
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # what the parser raises on bad input
        raise ExpositionError(f"not Prometheus text format: {exc}"[:200]) from None
    return Series({(s.name, tuple(sorted(s.labels.items()))): float(s.value)
                   for fam in families for s in fam.samples})


def _from_json(text: str) -> Series:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ExpositionError(f"neither JSON nor Prometheus text format: {exc}"[:200]) from None
    if not isinstance(body, dict):
        raise ExpositionError("a JSON body that is not an object")
    samples: dict[tuple[str, Labels], float] = {}
    version = body.get("version")
    labels: Labels = (("version", str(version)),) if version is not None else ()
    samples[("agent_info", labels)] = 1.0
    for key, value in body.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            samples[(LEGACY_JSON.get(key) or key, labels)] = float(value)
    return Series(samples)
