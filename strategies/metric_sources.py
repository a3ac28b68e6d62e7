"""Where a plan's custom metrics are read, one sample at a time: a PromQL
query per instance on the plan's Prometheus server, or a sample of each
instance's own /metrics. The judging is custom_metrics.py's (pure); this
module does the I/O and turns every failure into a "no data" reading.

Placeholders in a query (strategies/plan/metrics.py checks them at load):
{instance} the target as Prometheus labels it, "address:port";
{host} the inventory host name; {version} the version the instance runs;
{window} the plan's window (default: the sample interval) as a PromQL
duration.
"""
from __future__ import annotations

import asyncio
from typing import Callable, Mapping, Sequence

from inventory import prometheus
from inventory.exposition import Series
from inventory.model import Instance

from .custom_metrics import Reading
from .plan.metrics import CustomMetric, InstanceMetric, MetricsPlan


def _label_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def render_query(query: str, *, instance: str, host: str, version: str, window: str) -> str:
    """The query with its placeholders filled in; only the four names are
    replaced, so PromQL's own braces (label matchers) stay as written."""
    for name, value in (("instance", instance), ("host", host), ("version", version)):
        query = query.replace("{" + name + "}", _label_value(value))
    return query.replace("{window}", window)


def instance_value(metric: InstanceMetric, now: Series | None, before: Series | None) -> float | None:
    """A sample's value on /metrics: the gauge as it is, or with `per` the
    growth of the metric per unit growth of `per` since `before` (None
    until there is a `before`, and when `per` did not grow)."""
    if now is None:
        return None
    value = now.value(metric.selector)
    per = metric.per_selector
    if per is None or value is None:
        return value
    if before is None:
        return None
    was, count, was_count = before.value(metric.selector), now.value(per), before.value(per)
    if was is None or count is None or was_count is None or count <= was_count:
        return None
    return (value - was) / (count - was_count)


class CustomReader:
    """Reads every custom metric of a plan for one sample of both sides."""

    def __init__(self, metrics: MetricsPlan, window: float, version_of: Callable[[Instance], str | None]):
        self.metrics = metrics
        self.window = prometheus.duration(metrics.prometheus.window if metrics.prometheus and metrics.prometheus.window
                                      else window)
        self.version_of = version_of
        self._before: dict[str, Series] = {}  # instance key -> its previous /metrics

    @property
    def wants_series(self) -> bool:
        """Whether a sample must read the baseline's /metrics too."""
        return any(c.instance is not None for c in self.metrics.custom)

    async def read(self, judged: Sequence[Instance], baseline: Sequence[Instance],
                   series: Mapping[str, Series | None]) -> dict[str, Reading]:
        """`series`: this sample's /metrics of the instances read (None: the
        read failed)."""
        customs = self.metrics.custom
        readings = await asyncio.gather(*(self._one(c, judged, baseline, series) for c in customs))
        self._before.update({k: s for k, s in series.items() if s is not None})
        return {c.name: r for c, r in zip(customs, readings)}

    async def _one(self, metric: CustomMetric, judged: Sequence[Instance], baseline: Sequence[Instance],
                   series: Mapping[str, Series | None]) -> Reading:
        if metric.instance is not None:
            sel = metric.instance

            def side(insts: Sequence[Instance]) -> tuple[float, ...]:
                found = (instance_value(sel, series.get(i.key), self._before.get(i.key)) for i in insts)
                return tuple(v for v in found if v is not None)

            release = side(judged)
            missing = "" if release else f"{sel.metric} not on /metrics" + (
                f" or {sel.per} did not grow" if sel.per else "")
            return Reading(release, side(baseline), missing)
        values, failures = await self._query_side(metric, judged)
        base, _ = await self._query_side(metric, baseline)
        return Reading(values, base, "" if values else (failures[0] if failures else "no release instance"))

    async def _query_side(self, metric: CustomMetric, insts: Sequence[Instance]) -> tuple[tuple[float, ...], list[str]]:
        server = self.metrics.prometheus
        assert server is not None and metric.query is not None  # the plan refuses a query without a server
        async with prometheus.client() as http:
            results = await asyncio.gather(*(
                prometheus.query(http, server.url, render_query(
                    metric.query, instance=f"{i.host.address}:{i.port}", host=i.host.name,
                    version=self.version_of(i) or "", window=self.window), server.timeout)
                for i in insts), return_exceptions=True)
        values = tuple(r for r in results if isinstance(r, float))
        failures = [str(r) for r in results if isinstance(r, prometheus.NoData)]
        for r in results:  # anything else is a bug, not "no data"
            if isinstance(r, BaseException) and not isinstance(r, prometheus.NoData):
                raise r
        return values, failures
