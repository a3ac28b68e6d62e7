"""What a window has not judged yet, and why it extends (pure).

Missing data is never a pass. The judge's tests fail a release only on
evidence, so a test that saw nothing never fails, and before this module a
window could close as a PASS with one of them blind: the median and tail
comparisons wait until the release's instances are twice `latency_warm_up`
past their own restart (analysis.SETTLED), so a rolling window of 30 s
after a batch restarted 10 s earlier never compared the release's latency
with anything and passed. Here the window's end asks which tests had no
data; while any had, the window extends (sample by sample, up to
`max_window`) and then ends INCONCLUSIVE, as for too little evidence.

`Why` is the typed fact a GateEvaluated event carries (`why`): every reason
a window did not pass at its end, the missing data and the older reasons
(too few requests for the pass test, a breach outstanding, a custom metric
not yet sure) alike, so a view never parses a sentence to tell them apart.

`min_requests: 0` is the plan's explicit opt-out of the traffic tests
(judge on health and quality alone): then no traffic test is required.
"""
from __future__ import annotations

import enum
from dataclasses import replace
from typing import Sequence

from .analysis import MIN_LATENCY_SAMPLES, MIN_TAIL_SCALE, Judgement, Policy, Verdict, Window, tail_told
from .custom_metrics import CustomWindow, unsettled
from .plan.metrics import CustomMetric


class Why(enum.StrEnum):
    """Why a window did not pass at its planned end."""

    EVIDENCE = "evidence"  # the pass test needs more of the release's requests
    BREACH = "breach"  # a per-sample breach (health, quality, CPU) is outstanding
    CUSTOM_UNSURE = "custom_unsure"  # a custom metric has data but is not yet sure
    NO_RELEASE_REQUESTS = "no_release_requests"  # the release answered no request: no error test ran
    NO_BASELINE_REQUESTS = "no_baseline_requests"  # its baseline answered none: errors were never compared
    LATENCY_NOT_JUDGED = "latency_not_judged"  # too few settled latencies for the median comparison
    TAIL_NOT_JUDGED = "tail_not_judged"  # the tail comparison has not yet told the release's tail from a heavier one
    CUSTOM_NO_DATA = "custom_no_data"  # a custom metric's latest sample had no data


# Reasons that are data the window never had (the rest are evidence not yet enough).
MISSING = frozenset({Why.NO_RELEASE_REQUESTS, Why.NO_BASELINE_REQUESTS, Why.LATENCY_NOT_JUDGED,
                     Why.TAIL_NOT_JUDGED, Why.CUSTOM_NO_DATA})


def unjudged(window: Window, policy: Policy) -> list[tuple[Why, str]]:
    """The traffic tests that had no data in `window`, each with a line for
    a human: no release request (no error test), a baseline with no request
    (no comparison), too few latencies on either side for the median
    comparison, which judges only instances twice `latency_warm_up` past
    their restart (`Window.settled`), or a tail comparison that has not yet
    told the release's tail from a heavier one (`analysis.tail_told`; it
    starts once the release has 200 warm latencies, and a window that
    closed on the error evidence alone left it at a few hundred or none:
    a tail-only regression passed 19 % of its releases on the benchmark).
    A rolling batch's window is not held for its tail (`Policy.hold_for_tail`):
    the tail test starts at 200 warm latencies, so a one-host batch of a
    large fleet (1 of 1,000 at 200 req/s) would wait out `max_window` for
    requests that never come, and end inconclusive; each later batch is
    judged again on a larger share. Without a baseline (blue-green after
    its switch) or with `compare_to_stable: false`, the comparisons are not
    asked for: the plan has none, nothing is missing."""
    if policy.min_requests == 0:
        return []
    if window.judged.requests == 0:
        return [(Why.NO_RELEASE_REQUESTS, "no data: the release answered no request")]
    base = window.baseline
    if not policy.compare_to_stable or base is None:
        return []
    if base.requests == 0:
        return [(Why.NO_BASELINE_REQUESTS, "no data: the baseline answered no request")]
    settled, theirs = len(window.settled), len(base.latencies)
    out = []
    if settled < MIN_LATENCY_SAMPLES or theirs < MIN_LATENCY_SAMPLES:
        out.append((Why.LATENCY_NOT_JUDGED, f"latency not judged yet: {settled} settled latencies of the release "
                    f"(instances {policy.warm_up * 2:g}s past their restart) and {theirs} of the baseline; "
                    f"the comparison needs {MIN_LATENCY_SAMPLES} a side"))
    if policy.hold_for_tail and not tail_told(window, policy.beta):
        out.append((Why.TAIL_NOT_JUDGED, f"tail not judged yet: {window.tail_slow} of {window.tail_seen} release "
                    f"latencies over the baseline's p95 (scaled to the release, from {MIN_TAIL_SCALE} warm "
                    "latencies on)"))
    return out


def hold(verdict: Judgement, window: Window, policy: Policy, custom: CustomWindow,
         metrics: Sequence[CustomMetric], *, final: bool) -> tuple[Judgement, tuple[Why, ...]]:
    """A window's closing verdict (analysis.close, then custom_metrics.settle)
    with missing data held against it: a PASS with a test that had no data
    becomes PENDING (extend), or INCONCLUSIVE at the window's maximum.
    Returns it with every reason it did not pass (empty for a PASS; a FAIL
    is decided on what was seen and keeps its own findings)."""
    if verdict.verdict == Verdict.FAIL:
        return verdict, ()
    missing = unjudged(window, policy)
    held, no_data = unsettled(custom, metrics, policy.beta)
    if verdict.verdict == Verdict.PASS and missing:
        verdict = replace(verdict, verdict=Verdict.INCONCLUSIVE if final else Verdict.PENDING,
                          notes=(*verdict.notes, *(line for _, line in missing)))
    if verdict.verdict == Verdict.PASS:
        return verdict, ()
    why = [w for w, _ in missing]
    if verdict.needed > verdict.seen:
        why.append(Why.EVIDENCE)
    if window.outstanding:
        why.append(Why.BREACH)
    if held:
        why.append(Why.CUSTOM_UNSURE)
    if no_data:
        why.append(Why.CUSTOM_NO_DATA)
    return verdict, tuple(why)
