"""One line describing a plan, for logs and the UI.
"""
from __future__ import annotations

from ..durations import format_duration
from .models import Plan


def summary(plan: Plan) -> str:
    """One line describing the plan."""
    version = plan.version or "(no version)"
    head = f"{plan.name}: {plan.strategy.replace('_', '-')} {plan.service} {version} on {plan.hosts} via {plan.load_balancers}"
    if plan.strategy == "rolling":
        b = plan.rolling.batch
        batches = ", ".join(map(str, b)) if isinstance(b, list) else str(b)
        detail = f"batch {batches}, interval {format_duration(plan.rolling.interval)}"
    elif plan.strategy == "canary":
        weights = [s.describe() for s in plan.canary.steps if s.kind == "set_weight"]
        if len(weights) > 6:
            weights = weights[:3] + ["..."] + weights[-2:]
        pauses = sum(1 for s in plan.canary.steps if s.kind != "set_weight")
        detail = f"weights {' > '.join(weights) or 'none'} ({len(plan.canary.steps)} steps, {pauses} waits)"
    else:
        bg = plan.blue_green
        active = bg.active if bg.active != "auto" else "read from live routing"
        detail = f"{bg.mode} {bg.blue}/{bg.green}, active {active}, rollback window {format_duration(bg.rollback_window)}"
    t = plan.thresholds
    return (
        f"{head}; {detail}; error_rate<={t.error_rate:g} p95<={format_duration(t.p95_latency)}; "
        f"on failure {plan.on_failure}"
    )
