"""Metric sources without a server: the /metrics body as the console reads
it (Prometheus's text format through prometheus_client's parser, or the
older JSON), the plan's `metrics:` section refused at load with file:line,
query templating, and the Prometheus API's answers reduced to one number
or "no data". The provider against a real Prometheus server is
tests/sandbox/test_prometheus_real.py."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from inventory import prometheus
from inventory.exposition import ExpositionError, Selector, Series, read_metrics
from strategies.errors import PlanError
from strategies.metric_sources import instance_value, render_query
from strategies.plan import load_plan
from strategies.plan.metrics import InstanceMetric

TEXT = b"""# HELP agent_requests_total requests answered, by HTTP status
# TYPE agent_requests_total counter
agent_requests_total{slot="main",status="200",version="2.0.0"} 90.0
agent_requests_total{slot="main",status="500",version="2.0.0"} 10.0
# TYPE agent_quality_score gauge
agent_quality_score{slot="main",version="2.0.0"} 0.91
agent_info{slot="main",version="2.0.0"} 1.0
agent_cost_dollars_total{slot="main",version="2.0.0"} 0.5
weird{slot="main"} NaN
"""


def test_prometheus_text_is_read_by_name_and_labels():
    s = read_metrics(TEXT)
    assert s.value(Selector("agent_requests_total")) == 100  # every status summed
    assert s.value(Selector("agent_requests_total", {"status": "500"})) == 10
    assert s.value(Selector("agent_quality_score", {"version": "2.0.0"})) == 0.91
    assert s.value(Selector("agent_quality_score", {"version": "1.0.0"})) is None
    assert s.value(Selector("agent_missing")) is None
    assert s.value(Selector("weird")) is None  # NaN is not a number a judge may use
    assert s.label("agent_info", "version") == "2.0.0"


def test_the_older_json_body_keeps_working_under_the_new_names():
    s = read_metrics(b'{"version": "1.0.0", "requests": 7, "errors": 1, "inflight": 2, "quality_score": 0.97}')
    assert s.value(Selector("agent_quality_score")) == 0.97
    assert s.value(Selector("agent_inflight_requests")) == 2
    assert s.value(Selector("agent_requests_total")) == 7
    assert s.label("agent_info", "version") == "1.0.0"


@pytest.mark.parametrize("body", [b"agent_requests_total{status=200} abc\n", b"[1, 2]", b"{not json",
                                  b"metric{ 1\n"])
def test_a_body_in_neither_form_is_refused(body):
    with pytest.raises(ExpositionError):
        read_metrics(body)


def test_instance_value_is_a_gauge_or_growth_per_unit_of_another_counter():
    cost = InstanceMetric(metric="agent_cost_dollars_total", per="agent_requests_total")
    before = read_metrics(TEXT)
    now = Series({("agent_cost_dollars_total", ()): 1.5, ("agent_requests_total", (("status", "200"),)): 150.0})
    assert instance_value(cost, now, None) is None  # growth needs a previous sample
    assert instance_value(cost, now, before) == pytest.approx(1.0 / 50)
    assert instance_value(cost, before, before) is None  # no requests since: no data, not 0/0
    assert instance_value(InstanceMetric(metric="agent_quality_score"), before, None) == 0.91


def test_queries_fill_only_their_placeholders():
    q = 'sum(rate(agent_cost_dollars_total{instance="{instance}",version="{version}"}[{window}])) by (host)'
    assert render_query(q, instance="10.0.0.1:8080", host="a", version='2"x', window="5s") == (
        'sum(rate(agent_cost_dollars_total{instance="10.0.0.1:8080",version="2\\"x"}[5s])) by (host)')
    assert prometheus.duration(5.0) == "5s" and prometheus.duration(1.5) == "1500ms"


PLAN = """name: t
strategy: canary
metrics:
  prometheus:
    url: http://prometheus.internal:9090
  custom:
    - name: cost_per_request
      query: sum(rate(agent_cost_dollars_total{QUERY}[{window}]))
      worse: higher
      tolerance: 25%
"""


def _load(tmp_path: Path, text: str):
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    return load_plan(p)


def test_a_plan_maps_metrics_and_names_custom_ones(tmp_path):
    plan = _load(tmp_path, PLAN.replace("{QUERY}", '{instance="{instance}"}')
                 + "  instance:\n    quality_score: {metric: eval_score, labels: {judge: gpt}}\n")
    assert plan.metrics.instance.quality_score.selector == Selector("eval_score", {"judge": "gpt"})
    (c,) = plan.metrics.custom
    assert (c.name, c.worse, c.tolerance, c.tier) == ("cost_per_request", "higher", 0.25, "important")
    assert _load(tmp_path, "name: t\nstrategy: canary\n").metrics.instance.quality_score.metric == "agent_quality_score"


@pytest.mark.parametrize("change, line, field, message", [
    (('{QUERY}', '{job="agents"}'), 8, "metrics.custom[0].query", "names neither {instance} nor {host}"),
    (('{QUERY}', '{instance="{instanse}"}'), 8, "metrics.custom[0].query", 'did you mean "instance"'),
    (("      tolerance: 25%\n", ""), 7, "metrics.custom[0]", "give a threshold"),
    (("worse: higher", "worse: up"), 9, "metrics.custom[0].worse", "expected one of higher, lower"),
    (("url: http://prometheus.internal:9090", "url: prometheus:9090"), 5, "metrics.prometheus.url",
     "expected a server URL"),
    (("    url: http://prometheus.internal:9090\n", "    timeout: 0s\n    url: http://p:9090\n"), 5,
     "metrics.prometheus.timeout", "greater than zero"),
    (("name: cost_per_request", "name: error_rate"), 7, "metrics.custom[0].name", "built-in metric"),
])
def test_bad_metric_plans_are_refused_with_file_and_line(tmp_path, change, line, field, message):
    text = PLAN.replace("{QUERY}", '{instance="{instance}"}').replace(*change) if change[0] != "{QUERY}" \
        else PLAN.replace(*change)
    with pytest.raises(PlanError) as exc:
        _load(tmp_path, text)
    assert (exc.value.line, exc.value.field) == (line, field), str(exc.value)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_query_without_a_server_and_a_critical_metric_without_a_threshold_are_refused(tmp_path):
    no_server = PLAN.replace('{QUERY}', '{host="{host}"}').replace(
        "  prometheus:\n    url: http://prometheus.internal:9090\n", "")
    with pytest.raises(PlanError, match="names no server"):
        _load(tmp_path, no_server)
    with pytest.raises(PlanError, match="critical metric fails on one sample"):
        _load(tmp_path, PLAN.replace('{QUERY}', '{host="{host}"}') + "      tier: critical\n")


def _vector(*values):
    return {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, v]} for v in values]}


def test_an_instant_query_answer_is_one_number_or_says_why_not():
    assert prometheus.single_value(_vector("0.25")) == 0.25
    assert prometheus.single_value({"resultType": "scalar", "result": [1.0, "3"]}) == 3.0
    for data, kind in ((_vector(), prometheus.Kind.EMPTY), (_vector("1", "2"), prometheus.Kind.SEVERAL),
                       (_vector("NaN"), prometheus.Kind.NOT_NUMERIC), (_vector("+Inf"), prometheus.Kind.NOT_NUMERIC),
                       (_vector("x"), prometheus.Kind.NOT_NUMERIC),
                       ({"resultType": "matrix", "result": []}, prometheus.Kind.BAD_QUERY)):
        with pytest.raises(prometheus.NoData) as exc:
            prometheus.single_value(data)
        assert exc.value.kind == kind
    assert math.isfinite(prometheus.single_value(_vector("1e3")))
