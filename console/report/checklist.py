"""The article's post-deployment checklist (its §7.4, with §8.3's "health
check after deployment"), answered from a journal, item by item.

Honest by construction: an item the journal cannot answer says so and
says what would answer it; an item it answers in part says which part.
Pure: a `Report` in, answers out.
"""
from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from strategies.metrics import format_value

from .extract import Report


class Status(enum.StrEnum):
    ANSWERED = "answered"
    PARTLY = "partly answered"
    NOT_ANSWERABLE = "not answerable from the journal"


@dataclass(frozen=True)
class Answer:
    item: str
    status: Status
    answer: str


def _regression(_: Report) -> Answer:
    return Answer("Regression testing", Status.NOT_ANSWERABLE,
                  "a rollout runs no regression suite: the journal holds the plan's deploy commands with their exit "
                  "status, health probes and live traffic, not test results. Keep the suite's result beside this report.")


def _performance(r: Report) -> Answer:
    judged = [v for v in r.verdicts if v.values.get("p95_latency") is not None]
    if not judged:
        return Answer("Performance testing", Status.NOT_ANSWERABLE,
                      "no judged window recorded latency; no load test runs in a rollout.")
    parts = []
    for v in judged:
        base = v.values.get("baseline_p95_latency")
        parts.append(f"{v.name}: release p95 {format_value('p95_latency', v.values['p95_latency'])}"
                     + (f" vs baseline {format_value('p95_latency', base)}" if base is not None else "")
                     + f" over {int(v.values.get('requests') or 0)} requests")
    return Answer("Performance testing", Status.PARTLY,
                  "latency under live traffic, judged against the baseline in each window (no load test): "
                  + "; ".join(parts) + ".")


def _monitoring(r: Report) -> Answer:
    verdicts = Counter(v.verdict for v in r.verdicts)
    tiers = Counter(a.tier for a in r.alerts)
    parts = [f"{len(r.verdicts)} window verdict(s)" + (
        f" ({', '.join(f'{n} {k}' for k, n in sorted(verdicts.items()))})" if verdicts else "")]
    parts.append(f"{len(r.alerts)} alert(s)" + (f" ({', '.join(f'{n} {k}' for k, n in sorted(tiers.items()))})"
                                                 if tiers else ""))
    if r.clients is not None:
        parts.append(f"clients: {r.clients.failed} of {r.clients.requests} requests failed")
    final = Counter(s.version for s in r.versions if s.end >= r.end)
    if final:
        parts.append("versions at the end: " + ", ".join(f"{n} on {v}" for v, n in sorted(final.items(), key=str)))
    outcome = r.run.outcome if r.run else None
    parts.append(f"outcome: {outcome}" if outcome else "the run did not finish (no result recorded)")
    return Answer("Monitoring and verification", Status.ANSWERED if r.verdicts or r.alerts else Status.PARTLY,
                  "; ".join(parts) + ".")


def _health(r: Report) -> Answer:
    if not r.health:
        return Answer("Health check after deployment", Status.NOT_ANSWERABLE, "no health probe was recorded.")
    failing = sorted(k for k, (_, bad) in r.health.items() if bad)
    text = (f"{len(r.health) - len(failing)} of {len(r.health)} instance(s) passed every probe since their last "
            "change")
    if failing:
        text += "; failed a probe: " + ", ".join(failing[:10]) + (" ..." if len(failing) > 10 else "")
    return Answer("Health check after deployment", Status.ANSWERED, text + ".")


def _documentation(_: Report) -> Answer:
    return Answer("Documentation update", Status.NOT_ANSWERABLE,
                  "documentation lives outside the rollout; the journal cannot say whether it was updated.")


def _summary(r: Report) -> Answer:
    if r.run is None:
        return Answer("Summary of experience", Status.NOT_ANSWERABLE, "the journal has no run in it.")
    accepted = sum(1 for c in r.commands if c.accepted)
    text = (f"the facts for one: {r.run.strategy} of {r.run.service} to {r.run.version}, "
            f"{r.run.outcome or 'not finished'} after {r.run.duration:.0f}s"
            + (f" ({r.run.message})" if r.run.message else "")
            + f"; {accepted} operator command(s) accepted, {len(r.commands) - accepted} refused. "
            "The lessons are for the people who ran it to write.")
    return Answer("Summary of experience", Status.PARTLY, text)


ITEMS = (_regression, _performance, _monitoring, _documentation, _summary, _health)


def answer(report: Report) -> list[Answer]:
    return [item(report) for item in ITEMS]
