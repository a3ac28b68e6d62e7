"""The plain-text report for terminals (`console report JOURNAL`).

Sections in the order an auditor asks: can the journal be trusted, what
ran and how it ended, the timeline, the verdicts with their evidence,
alerts and who sent which command, what clients saw, the checklist. The
timeline's lines are the headless reporter's (`describe`), so a report
reads like the run did."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from strategies.metrics import format_value

from ..headless import describe
from .checklist import answer
from .extract import Report

RULE = "-" * 78


def integrity_line(report: Report) -> str:
    i = report.integrity
    if i.ok:
        return f"journal verified: {i.message}"
    return f"!!! JOURNAL FAILS VERIFICATION: {i.message}. {consequence(report)} !!!"


def consequence(report: Report) -> str:
    """What a failed verification means for the reader."""
    if report.integrity.chain_intact:
        return "Every record it has is intact: the session stopped writing before its end."
    return "What follows may not be what was recorded."


def evidence(values: dict[str, float | None]) -> str:
    """The window's pooled numbers, release against baseline."""
    parts = []
    if values.get("requests") is not None:
        parts.append(f"{int(values['requests'] or 0)} requests, {int(values.get('errors') or 0)} errors")
    for metric, base in (("error_rate", "baseline_error_rate"), ("p95_latency", "baseline_p95_latency"),
                         ("cpu", "baseline_cpu")):
        if values.get(metric) is not None:
            text = f"{metric} {format_value(metric, values[metric])}"
            if values.get(base) is not None:
                text += f" vs baseline {format_value(metric, values[base])}"
            parts.append(text)
    for metric in ("quality_score", "health_pass_rate"):
        if values.get(metric) is not None:
            parts.append(f"{metric} {format_value(metric, values[metric])}")
    return "; ".join(parts)


def lines(report: Report) -> Iterable[str]:
    yield integrity_line(report)
    run = report.run
    if run is None:
        yield "the journal records no run (it ended before the rollout started)"
        return
    yield RULE
    label = " [SIMULATED fleet]" if run.simulated else ""
    yield (f"{run.strategy} of {run.service}: {', '.join(run.old_versions) or '?'} -> {run.version} on "
           f"{run.instances} instance(s){label}")
    yield f"plan {run.plan}; started {run.started} by {run.operator.label()}"
    yield f"command: {' '.join(run.argv)}"
    exit_code = f" (exit {run.exit_code})" if run.exit_code is not None else ""
    yield f"outcome: {run.outcome or 'NOT FINISHED'}{exit_code} after {run.duration:.1f}s" + (
        f": {run.message}" if run.message else "")
    yield RULE
    yield "STEPS"
    for s in report.steps:
        split = ", ".join(f"{p} {w:g}%" for p, w in sorted(s.shares.items()))
        yield (f"  {s.index}/{s.total} {s.title:<28} {s.start:8.1f}s - {s.end:8.1f}s"
               + (f"  split {split}" if split else "") + (f"  verdict {s.verdict}" if s.verdict else ""))
    yield "TIMELINE"
    for e in report.timeline:
        text = describe(e)
        if text is not None:
            yield f"  [{e.at:8.2f}s] {text}"
    yield "VERDICTS"
    if not report.verdicts:
        yield "  none recorded"
    for v in report.verdicts:
        yield f"  [{v.at:8.2f}s] {v.name}: {v.verdict.upper()}" + (" (extended)" if v.extended else "") + (
            f", {v.seen} of {v.needed} requests needed" if v.needed else "")
        if v.values:
            yield f"      evidence: {evidence(v.values)}"
        for reason in v.reasons:
            yield f"      reason: {reason}"
    yield "ALERTS"
    if not report.alerts:
        yield "  none"
    for a in report.alerts:
        yield (f"  [{a.at:8.2f}s] {a.tier.upper():9} {a.metric} {format_value(a.metric, a.value)} "
               f"(threshold {format_value(a.metric, a.threshold)}) on {a.where}")
    yield "OPERATOR COMMANDS"
    if not report.commands:
        yield "  none"
    for c in report.commands:
        yield (f"  [{c.at:8.2f}s] {c.command} from {c.source} by {c.who}: "
               f"{'accepted' if c.accepted else 'refused'}" + (f" ({c.detail})" if c.detail else ""))
    yield "CLIENTS"
    if report.clients is None:
        yield "  not recorded (no load balancer change was made)"
    else:
        cl = report.clients
        rate = f" ({cl.failed / cl.requests * 100:.3f}%)" if cl.requests else ""
        yield f"  {cl.failed} of {cl.requests} requests failed{rate}" + (
            f"; {cl.hidden} more failed tries nginx retried away from clients" if cl.hidden else "")
        for pool, (n, errors) in cl.by_pool.items():
            yield f"  pool {pool}: {errors} errors in {n} requests sampled"
    final = Counter(s.version for s in report.versions if s.end >= report.end)
    if final:
        yield "VERSIONS AT THE END: " + ", ".join(f"{n} on {v}" for v, n in sorted(final.items(), key=str))
    yield RULE
    yield "POST-DEPLOYMENT CHECKLIST (the article's section 7.4, answered from the journal)"
    for checked in answer(report):
        yield f"  [{checked.status.value}] {checked.item}: {checked.answer}"


def render(report: Report) -> str:
    return "\n".join(lines(report)) + "\n"
