"""The one metric table (strategies/metrics.py): plans read limits with it,
the judge's findings and every view print values with it."""
import pytest

from strategies.metrics import METRICS, PLAN_METRICS, format_value
from strategies.plan.values import metric_name, parse_rule


@pytest.mark.parametrize("metric,value,shown", [
    ("error_rate", 0.01234, "1.23%"), ("health_pass_rate", 0.5, "50.00%"), ("health_check_failed", 3.0, "3"),
    ("cpu", 0.456, "46%"), ("cpu_vs_stable", 0.456, "46%"), ("p95_latency", 0.2504, "250ms"),
    ("median_latency_vs_stable", 0.012, "12ms"), ("quality_score", 0.95, "0.950"), ("error_rate", None, "-"),
    ("not_a_metric", 3.0, "3"),
])
def test_every_view_prints_a_value_from_the_table(metric, value, shown):
    assert format_value(metric, value) == shown


@pytest.mark.parametrize("rule,parsed", [
    ("error_rate > 5%", 0.05), ("cpu > 80%", 0.8), ("p95_latency > 2s", 2.0), ("latency > 500ms", 0.5),
    ("quality_score < 0.9", 0.9), ("health_check_failed > 2", 2.0),
])
def test_plans_write_limits_in_the_tables_units(rule, parsed):
    assert parse_rule(rule)["value"] == pytest.approx(parsed)


def test_only_plan_metrics_may_be_named_by_a_plan():
    assert set(PLAN_METRICS) < set(METRICS)
    for derived in set(METRICS) - set(PLAN_METRICS):
        with pytest.raises(ValueError, match="unknown metric"):
            metric_name(derived)
    assert metric_name("cpu_usage") == "cpu"
