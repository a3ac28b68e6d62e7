"""Rollout plans: what to ship, where, and how (rolling, canary, blue-green).

    plan = load_plan("examples/canary.yaml", version_override="2.0.0")
    summary(plan)                       # one line for logs / the UI
    render_commands(plan, "2.0.0", "main", "agent-01")   # shell-quoted values

Plans are frozen pydantic models. The loader accepts the native form (fields
below) and the seed article's blocks (``rolling_deployment:``,
``canary_deployment:``, ``blue_green_deployment:``), see ``seed``.
Every bad input raises ``PlanError``: one line naming file, line and field.

The package's parts: `values` (parsers of durations, fractions, rules),
`fields` (value annotations, name rules, the `Section` base), `models` (the
sections and `Plan`), `metrics` (the `metrics:` section), `seed` (the
article's blocks translated), `positions` (errors mapped back to file lines),
`load` (files in), `commands` (templates rendered for a host), `summaries`.
What callers use is re-exported here.
"""
from .commands import UnsafeValue, check_template_values, render_commands, render_template
from .load import field_line, load_plan, load_thresholds
from .metrics import CustomMetric, InstanceMetric, MetricsPlan
from .models import (
    DEFAULT_CANARY_STEPS,
    Alerts,
    Analysis,
    BlueGreen,
    Canary,
    Deploy,
    Drain,
    Health,
    Nginx,
    Notify,
    NotifyTarget,
    Plan,
    Ports,
    Rolling,
    Rule,
    SecretRef,
    Step,
    Thresholds,
)
from .summaries import summary

__all__ = [
    "DEFAULT_CANARY_STEPS", "Alerts", "Analysis", "BlueGreen", "Canary", "CustomMetric", "Deploy", "Drain", "Health",
    "InstanceMetric", "MetricsPlan", "Nginx", "Notify", "NotifyTarget", "Plan", "Ports", "Rolling", "Rule", "SecretRef",
    "Step", "Thresholds", "UnsafeValue", "check_template_values", "field_line", "load_plan", "load_thresholds",
    "render_commands", "render_template", "summary",
]
