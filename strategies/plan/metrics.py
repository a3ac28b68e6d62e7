"""The plan's `metrics:` section: where the judge reads what it judges
besides nginx's log (docs/metrics.md).

    metrics:
      instance:                       # each instance's own /metrics
        quality_score: agent_quality_score
      prometheus:
        url: http://prometheus.internal:9090
      custom:
        - name: cost_per_request
          query: sum(rate(agent_cost_dollars_total{instance="{instance}"}[{window}]))
                 / sum(rate(agent_requests_total{instance="{instance}"}[{window}]))
          worse: higher
          tolerance: 25%
          tier: important

A query is refused here (file:line) when it cannot name one instance's
series: the judge compares the release's instances with their baseline's,
so every query needs {instance} or {host}.
"""
from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from inventory.exposition import Selector
from inventory.validate import did_you_mean, show

from ..metrics import METRICS
from . import values as T

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,99}$")
CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{0,60}$")
URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/%-]*)?$")
# What a query may name in braces; every other {word} is a mistake (PromQL's
# own braces hold label matchers, which always have an operator in them).
PLACEHOLDERS = ("instance", "host", "version", "window")
SIDES = ("instance", "host")  # a placeholder that names one instance's series
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_QUERY = 2000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _metric_name(value: object) -> object:
    if not isinstance(value, str) or not METRIC_NAME.match(value):
        raise ValueError(f"expected a Prometheus metric name like agent_quality_score, got {show(value)}")
    return value


def _labels(value: object) -> object:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of label names to values, got {show(value)}")
    for k, v in value.items():
        if not isinstance(k, str) or not LABEL_NAME.match(k):
            raise ValueError(f"bad label name {show(k)}")
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ValueError(f"label {k}: expected a string value, got {show(v)}")
    return {k: str(v) for k, v in value.items()}


def _selector_form(value: object) -> object:
    """`agent_quality_score` is short for `{metric: agent_quality_score}`."""
    return {"metric": value} if isinstance(value, str) else value


class InstanceMetric(_Model):
    """Samples on an instance's /metrics: a metric name and labels they must
    carry (matches are summed). With `per`, the value is how much the metric
    grew per unit the `per` counter grew since the previous sample (cost per
    request from two counters); without, the value as it is (a gauge)."""

    metric: Annotated[str, BeforeValidator(_metric_name)]
    labels: Annotated[dict[str, str], BeforeValidator(_labels)] = {}
    per: Annotated[str | None, BeforeValidator(lambda v: None if v is None else _metric_name(v))] = None

    @property
    def selector(self) -> Selector:
        return Selector(self.metric, self.labels)

    @property
    def per_selector(self) -> Selector | None:
        return None if self.per is None else Selector(self.per, self.labels)


InstanceMetricField = Annotated[InstanceMetric, BeforeValidator(_selector_form)]


class InstanceReadings(_Model):
    """Which samples of /metrics are the built-in readings."""

    quality_score: InstanceMetricField = InstanceMetric(metric="agent_quality_score")


def _url(value: object) -> object:
    if not isinstance(value, str) or not URL.match(value):
        raise ValueError(f"expected a server URL like http://prometheus:9090, got {show(value)}")
    return value.rstrip("/")


class Prometheus(_Model):
    url: Annotated[str, BeforeValidator(_url)]
    timeout: Annotated[float, BeforeValidator(T.positive_duration)] = 5.0
    # what {window} becomes; unset: the canary's sample interval, so each
    # sample judges only what happened since the previous one
    window: Annotated[float | None, BeforeValidator(lambda v: None if v is None else T.positive_duration(v))] = None


def _query(value: object) -> object:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a PromQL query, got {show(value)}")
    if len(value) > MAX_QUERY:
        raise ValueError(f"query longer than {MAX_QUERY} characters")
    named = _PLACEHOLDER.findall(value)
    for name in named:
        if name not in PLACEHOLDERS:
            hint = did_you_mean(name, list(PLACEHOLDERS))
            raise ValueError(f"unknown placeholder {{{name}}}{hint or '; allowed: {instance}, {host}, {version}, {window}'}")
    if not set(named) & set(SIDES):
        raise ValueError("query names neither {instance} nor {host}, so it cannot tell the release's series "
                         "from its baseline's; select one instance's series, e.g. {instance=\"{instance}\"}")
    return " ".join(value.split())


def _custom_name(value: object) -> object:
    if not isinstance(value, str) or not CUSTOM_NAME.match(value):
        raise ValueError(f"expected a metric name like cost_per_request, got {show(value)}")
    if value in METRICS:
        raise ValueError(f"{value} is a built-in metric; give the custom one another name")
    return value


def _number(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {show(value)}") from None
    if not T.is_number(value) or value != value:
        raise ValueError(f"expected a number, got {show(value)}")
    return float(value)


class CustomMetric(_Model):
    """A metric the plan adds to the judge: where its per-instance values
    come from, which way is worse, the limits, and the alert tier."""

    name: Annotated[str, BeforeValidator(_custom_name)]
    query: Annotated[str | None, BeforeValidator(lambda v: None if v is None else _query(v))] = None
    instance: Annotated[InstanceMetric | None, BeforeValidator(lambda v: None if v is None else _selector_form(v))] = None
    worse: Literal["higher", "lower"]
    threshold: Annotated[float | None, BeforeValidator(_number)] = None  # a limit on the release's value
    tolerance: Annotated[float | None, BeforeValidator(lambda v: None if v is None else T.fraction(v))] = None
    tier: Literal["critical", "important", "warning"] = "important"

    @model_validator(mode="after")
    def _complete(self) -> CustomMetric:
        if (self.query is None) == (self.instance is None):
            raise ValueError(f"{self.name}: give exactly one of query (Prometheus) or instance (/metrics)")
        if self.threshold is None and self.tolerance is None:
            raise ValueError(f"{self.name}: give a threshold (a limit on the release), a tolerance "
                             "(how much worse than its baseline), or both")
        if self.tier == "critical" and self.threshold is None:
            raise ValueError(f"{self.name}: a critical metric fails on one sample, so it needs a threshold")
        return self


class MetricsPlan(_Model):
    instance: InstanceReadings = InstanceReadings()
    prometheus: Prometheus | None = None
    custom: list[CustomMetric] = []

    @model_validator(mode="after")
    def _consistent(self) -> MetricsPlan:
        names = [c.name for c in self.custom]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"custom metric {name} is defined twice")
        if self.prometheus is None and any(c.query for c in self.custom):
            raise ValueError("a custom metric has a query but metrics.prometheus names no server")
        return self
