"""The judge: pooled evidence of one analysis window in, a verdict out.

Pure (no I/O, no clock): the engine folds each sample into a `Window` and
asks `close` when the window's time is up. Every rule here is unit-tested
directly (tests/test_analysis.py) and measured by bench/judge_power.py.

Why it is built this way:

- A window is judged on the *sum* of its samples. A 1 % canary at 100 req/s
  sees about 5 requests per 5 s sample; judging samples one by one, as the
  first version did, let a release with 20 % errors pass because no single
  sample was big enough to judge.
- Errors are judged by a sequential probability ratio test (Wald's SPRT):
  is the release's error rate like the baseline's (H0: p0), or a threshold
  worse (H1: p1)? The log-likelihood ratio of the pooled counts is a
  martingale under H0, so by Ville's inequality the chance that it *ever*
  reaches log(1/alpha) on a good release is at most alpha, however often the
  console looks. Likewise a bad release ever reaching log(beta) (a pass) has
  probability at most beta. Looking after every sample is therefore safe,
  and a clearly bad release stops after a handful of requests.
- A window passes only once the evidence says "good" (the ratio reached
  log(beta)) and at least `min_requests` were seen. Until then it is
  extended; at the plan's `max_window` it is inconclusive, and a human
  decides. Missing data is never a pass.
- Latency is compared on distributions: a one-sided Mann-Whitney U test of
  the release's per-request times against the baseline's in the same
  window, and only a material shift (the median `LATENCY_RATIO` times and
  `MIN_LATENCY_GAP` slower) counts. The absolute p95 ceiling is a binomial
  test too: "p95 above L" means "more than 5 % of requests slower than L".
- Critical alerts (the article's tier: a failed health check, error rate
  above 5 %, p95 above 5 s) fail the window at once. Traffic-based ones must
  be statistically clear (p < LOOK_ALPHA), so three requests with one error
  are not "33 % errors".
- CPU is the service's own (its unit's cgroup), and is judged against the
  baseline's in the same window, so load both share cancels out.
"""
from __future__ import annotations

import bisect
import enum
import functools
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from .metrics import format_value

if TYPE_CHECKING:
    from .plan import Alerts, Rule, Thresholds


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # not decided yet: keep watching
    INCONCLUSIVE = "inconclusive"  # not enough evidence by the window's maximum


# The error floor: a baseline with no errors at all is taken as 0.1 %, so a
# single error on the release is evidence, not an infinite surprise.
ERROR_FLOOR = 0.001
# Per-look significance of the fail-only tests (absolute ceilings, latency
# shift, critical alerts). Small because they are repeated every sample.
LOOK_ALPHA = 0.001
# The p95 ceiling as a proportion: p95 > L <=> more than 5 % slower than L.
P95_TAIL = 0.05
LATENCY_RATIO = 1.25  # a material slowdown: the median 25 % slower ...
MIN_LATENCY_GAP = 0.010  # ... and at least 10 ms slower
MIN_LATENCY_SAMPLES = 10
CPU_RATIO = 1.5  # the release's unit CPU 1.5 x the baseline's ...
MIN_CPU_GAP = 0.10  # ... and 10 points of a core more
# The gross error rate the second SPRT looks for (see Hypotheses). Both
# SPRTs share the false-alarm budget: each fails at log(2 / alpha).
GROSS_ERROR_RATE = 0.10
# Mann-Whitney on a very large baseline costs time and adds nothing: cap it.
MAX_LATENCIES = 5000


@dataclass(frozen=True)
class Evidence:
    """Pooled traffic of one side (the release, or its baseline) in a window.

    `errors` counts every try a backend of this side failed, including the
    ones nginx retried elsewhere and the client never saw."""

    requests: int = 0
    errors: int = 0
    latencies: tuple[float, ...] = ()  # kept sorted: percentiles are an index

    def __post_init__(self) -> None:
        object.__setattr__(self, "latencies", tuple(sorted(self.latencies)))

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(self.requests + other.requests, self.errors + other.errors,
                        self.latencies + other.latencies)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def slower_than(self, seconds: float) -> int:
        return len(self.latencies) - bisect.bisect_right(self.latencies, seconds)

    def p95(self) -> float | None:
        return ranked(self.latencies, 95.0)


@dataclass(frozen=True)
class Readings:
    """One sample's non-traffic readings of the judged side (None: unknown)."""

    health_pass_rate: float | None = None
    quality_score: float | None = None
    cpu: float | None = None  # mean unit CPU of the release's instances (cores)
    baseline_cpu: float | None = None  # the same for the baseline's instances


@dataclass(frozen=True)
class Finding:
    """One rule the evidence breaks. `tier` is "critical" (fails at once) or
    "gate" (fails once it persists, or is a pooled statistical verdict)."""

    metric: str
    value: float
    limit: float
    op: str = ">"  # ">", "<", or "~" for a likelihood verdict
    tier: str = "gate"
    note: str = ""  # how the limit was judged, when it is not a plain comparison

    def __str__(self) -> str:
        value = format_value(self.metric, self.value)
        if self.op == "~":  # a likelihood verdict: the note says what was weighed
            return f"{self.metric} {value} ({self.note})"
        text = f"{self.metric} {value} {self.op} {format_value(self.metric, self.limit)}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Hypotheses:
    """The two error rates the SPRT tells apart, and a gross rate a second
    SPRT watches for (it needs only two or three errors to be sure of a
    release that fails one request in five)."""

    good: float
    bad: float
    gross: float = 0.0

    def gross_llr(self, ev: Evidence) -> float:
        if self.gross <= self.bad:
            return float("-inf")
        ok = ev.requests - ev.errors
        return (ev.errors * math.log(self.gross / self.good)
                + ok * math.log((1 - self.gross) / (1 - self.good)))

    def llr(self, ev: Evidence) -> float:
        """Log-likelihood ratio (bad over good) of the pooled counts."""
        ok = ev.requests - ev.errors
        return (ev.errors * math.log(self.bad / self.good)
                + ok * math.log((1 - self.bad) / (1 - self.good)))

    def requests_to_pass(self, beta: float) -> int:
        """About how many requests of a good release the SPRT needs to
        reach its pass boundary (Wald's expected sample size under H0)."""
        per_request = (self.good * math.log(self.bad / self.good)
                       + (1 - self.good) * math.log((1 - self.bad) / (1 - self.good)))
        return math.ceil(math.log(beta) / per_request) if per_request < 0 else 0


@dataclass(frozen=True)
class Window:
    """Running state of one window; advanced only by `fold`."""

    judged: Evidence = Evidence()
    baseline: Evidence | None = None
    samples: int = 0
    consecutive: int = 0  # samples in a row with a per-sample breach
    outstanding: tuple[Finding, ...] = ()  # the last sample's per-sample breaches
    readings: Readings = Readings()


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    findings: tuple[Finding, ...] = ()
    needed: int = 0  # requests a pass needs (0 when not limited by traffic)
    seen: int = 0
    hypotheses: Hypotheses | None = None
    llr: float = 0.0
    values: dict[str, float | None] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what could not be read ("cost_per_request: no data (timeout)")

    @property
    def reasons(self) -> list[str]:
        out = [str(f) for f in self.findings] + list(self.notes)
        if self.verdict in (Verdict.PENDING, Verdict.INCONCLUSIVE) and self.needed > self.seen:
            out.append(evidence_reason(self))
        return out


def evidence_reason(j: Judgement) -> str:
    h = j.hypotheses
    if h is None:
        return f"needs {j.needed} requests; saw {j.seen}"
    return (f"needs about {j.needed} requests to tell {h.good * 100:.2f}% from {h.bad * 100:.2f}% errors; "
            f"saw {j.seen}")


@dataclass(frozen=True)
class Policy:
    """What the plan asks of the judge, in the judge's own terms."""

    error_rate: float  # the error-rate threshold (a fraction)
    p95_latency: float  # seconds
    quality_score: float
    health_pass_rate: float
    persistence: int
    min_requests: int
    compare_to_stable: bool
    alpha: float  # chance a good release is stopped
    beta: float  # chance a release at the bad rate passes
    critical: tuple[Rule, ...] = ()
    important: tuple[Rule, ...] = ()

    @classmethod
    def of(cls, thresholds: Thresholds, alerts: Alerts | None = None) -> Policy:
        risk = 1 - thresholds.confidence
        return cls(thresholds.error_rate, thresholds.p95_latency, thresholds.quality_score,
                   thresholds.health_pass_rate, max(1, int(thresholds.persistence)),
                   int(thresholds.min_requests), bool(thresholds.compare_to_stable), risk, risk,
                   tuple(alerts.critical) if alerts else (), tuple(alerts.important) if alerts else ())


def percentile(values: Sequence[float], pct: float = 95.0) -> float | None:
    """Nearest-rank percentile; None for no values."""
    return ranked(sorted(values), pct)


def ranked(ordered: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of values already in order."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]


def hypotheses(policy: Policy, baseline: Evidence | None) -> Hypotheses:
    """Good: the baseline's error rate (its upper 99 % bound, so noise in a
    small baseline cannot make a good release look worse), or half the
    threshold without a baseline. Bad: a full threshold worse than good,
    and at least twice the threshold."""
    if policy.compare_to_stable and baseline is not None and baseline.requests:
        good = max(ERROR_FLOOR, upper_bound(baseline.errors, baseline.requests, 0.99))
    else:
        good = max(ERROR_FLOOR, policy.error_rate / 2)
    bad = min(0.99, max(good + policy.error_rate, 2 * policy.error_rate))
    return Hypotheses(good, bad, min(0.99, max(GROSS_ERROR_RATE, 5 * good)))


@functools.lru_cache(maxsize=4096)
def upper_bound(errors: int, requests: int, confidence: float) -> float:
    """One-sided upper bound of a binomial rate (Jeffreys interval: the
    Beta(e + 1/2, n - e + 1/2) quantile)."""
    from scipy.special import betaincinv

    return float(betaincinv(errors + 0.5, requests - errors + 0.5, confidence))


def clearly_above(successes: int, trials: int, rate: float) -> bool:
    """An exact one-sided binomial test: is the true proportion above
    `rate`, with at most LOOK_ALPHA chance that luck alone explains it?"""
    if trials == 0 or successes <= rate * trials:
        return False
    from scipy.special import bdtrc

    # P(X >= successes) for X ~ Binomial(trials, rate): what
    # scipy.stats.binomtest(..., alternative="greater") computes
    return bool(bdtrc(successes - 1, trials, rate) < LOOK_ALPHA)


def slower(judged: Sequence[float], baseline: Sequence[float]) -> tuple[float, float] | None:
    """Both sorted. (judged median, baseline median) when the judged latencies are
    materially and significantly higher (Mann-Whitney U, one-sided), else None."""
    if len(judged) < MIN_LATENCY_SAMPLES or len(baseline) < MIN_LATENCY_SAMPLES:
        return None
    mj, mb = ranked(judged, 50.0), ranked(baseline, 50.0)
    assert mj is not None and mb is not None
    if mj < mb * LATENCY_RATIO or mj - mb < MIN_LATENCY_GAP:
        return None
    if len(baseline) > MAX_LATENCIES:  # deterministic thinning: same input, same verdict
        baseline = random.Random(len(baseline)).sample(list(baseline), MAX_LATENCIES)
    if mann_whitney_greater(judged, baseline) >= LOOK_ALPHA:
        return None
    return mj, mb


def mann_whitney_greater(judged: Sequence[float], baseline: Sequence[float]) -> float:
    """The one-sided p-value of Mann-Whitney U that `judged` tends to be
    larger than `baseline`, as scipy.stats.mannwhitneyu(judged, baseline,
    alternative="greater") computes it for samples of more than 8 each (its
    "asymptotic" method: average ranks for ties, the tie-corrected variance,
    the continuity correction, the normal tail from scipy.special).

    Written out because importing scipy.stats costs about 0.65 s of CPU (it
    parses its own docstrings at import), paid by every run's start-up for a
    test that runs only on a material slowdown; tests/test_analysis.py holds
    it equal to scipy.stats on random samples with and without ties."""
    from scipy.special import ndtr

    n1, n2 = len(judged), len(baseline)
    assert n1 > 8 and n2 > 8, "scipy uses the exact distribution below 9 samples"
    mine = sorted(judged)
    values = sorted([*judged, *baseline])
    rank_sum, tie_term, i = 0.0, 0.0, 0
    while i < len(values):
        j = bisect.bisect_right(values, values[i], i)
        t = j - i
        ours = bisect.bisect_right(mine, values[i]) - bisect.bisect_left(mine, values[i])
        rank_sum += ours * (i + 1 + j) / 2  # ranks i+1 .. j share their average
        tie_term += t ** 3 - t
        i = j
    u = rank_sum - n1 * (n1 + 1) / 2
    n = n1 + n2
    s = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    if s == 0:
        return 1.0  # every value equal: nothing is larger
    return float(ndtr(-(u - n1 * n2 / 2 - 0.5) / s))


def per_sample(readings: Readings, policy: Policy) -> list[Finding]:
    """Breaches of one sample's readings (health, quality, CPU): these count
    towards persistence."""
    out: list[Finding] = []
    if readings.quality_score is not None and readings.quality_score < policy.quality_score:
        out.append(Finding("quality_score", readings.quality_score, policy.quality_score, "<"))
    if readings.health_pass_rate is not None and readings.health_pass_rate < policy.health_pass_rate:
        out.append(Finding("health_pass_rate", readings.health_pass_rate, policy.health_pass_rate, "<"))
    if (policy.compare_to_stable and readings.cpu is not None and readings.baseline_cpu is not None
            and readings.cpu > readings.baseline_cpu * CPU_RATIO
            and readings.cpu - readings.baseline_cpu >= MIN_CPU_GAP):
        out.append(Finding("cpu_vs_stable", readings.cpu, readings.baseline_cpu * CPU_RATIO))
    for rule in policy.important:  # the article's important tier counts towards the gate
        value = {"quality_score": readings.quality_score,
                 "health_pass_rate": readings.health_pass_rate}.get(rule.metric)
        if value is not None and rule.matches(value) and not any(f.metric == rule.metric for f in out):
            out.append(Finding(rule.metric, value, rule.value, rule.op))
    return out


def critical(window: Window, policy: Policy) -> list[Finding]:
    """The article's critical tier: on_failure at once, no persistence.
    Traffic-based rules must be statistically clear."""
    out: list[Finding] = []
    ev, r = window.judged, window.readings
    for rule in policy.critical:
        if rule.metric == "health_check_failed":
            if r.health_pass_rate is not None and r.health_pass_rate < 1.0:
                out.append(Finding("health_check_failed", 1 - r.health_pass_rate, 0.0, ">", "critical"))
        elif rule.metric == "error_rate" and rule.op == ">":
            if clearly_above(ev.errors, ev.requests, rule.value):
                out.append(Finding("error_rate", ev.errors / ev.requests, rule.value, ">", "critical"))
        elif rule.metric == "p95_latency" and rule.op == ">":
            slow = ev.slower_than(rule.value)
            if clearly_above(slow, len(ev.latencies), P95_TAIL):
                out.append(Finding("p95_latency", ev.p95() or 0.0, rule.value, ">", "critical"))
    return out


def pooled(window: Window, policy: Policy, hyp: Hypotheses, llr: float) -> list[Finding]:
    """Statistical verdicts on the pooled window (each fails the gate)."""
    out: list[Finding] = []
    ev, base = window.judged, window.baseline
    gross = hyp.gross_llr(ev)
    if ev.requests and max(llr, gross) >= math.log(2 / policy.alpha):
        worse, ratio = (hyp.gross, gross) if gross > llr else (hyp.bad, llr)
        out.append(Finding("error_rate", ev.errors / ev.requests, worse, "~", note=(
            f"{ev.errors} of {ev.requests}; {worse * 100:.2f}% is {math.exp(min(ratio, 700)):.0f}x likelier than "
            f"{hyp.good * 100:.2f}%")))
    elif clearly_above(ev.errors, ev.requests, policy.error_rate):
        out.append(Finding("error_rate", ev.errors / ev.requests, policy.error_rate,
                           note=f"{ev.errors} of {ev.requests}; p < {LOOK_ALPHA:g}"))
    slow = ev.slower_than(policy.p95_latency)
    if clearly_above(slow, len(ev.latencies), P95_TAIL):
        out.append(Finding("p95_latency", ev.p95() or 0.0, policy.p95_latency))
    if policy.compare_to_stable and base is not None:
        shift = slower(ev.latencies, base.latencies)
        if shift is not None:
            out.append(Finding("median_latency_vs_stable", shift[0], shift[1] * LATENCY_RATIO))
    return out


def fold(window: Window, judged: Evidence, baseline: Evidence | None, readings: Readings,
         policy: Policy) -> tuple[Window, Judgement]:
    """Add one sample and judge the window so far: FAIL as soon as the
    evidence is clear, else PENDING (the window's end decides)."""
    base = baseline if window.baseline is None else (window.baseline + baseline if baseline else window.baseline)
    sampled = per_sample(readings, policy)
    window = Window(window.judged + judged, base, window.samples + 1,
                    window.consecutive + 1 if sampled else 0, tuple(sampled), readings)
    hyp = hypotheses(policy, window.baseline)
    llr = hyp.llr(window.judged)
    values = window_values(window, hyp, llr)
    now_critical = critical(window, policy)
    if now_critical:
        return window, Judgement(Verdict.FAIL, tuple(now_critical), seen=window.judged.requests,
                                 hypotheses=hyp, llr=llr, values=values)
    found = pooled(window, policy, hyp, llr)
    if window.consecutive >= policy.persistence:
        found += sampled
    verdict = Verdict.FAIL if found else Verdict.PENDING
    return window, Judgement(verdict, tuple(found or sampled), needed=_needed(policy, hyp),
                             seen=window.judged.requests, hypotheses=hyp, llr=llr, values=values)


def close(window: Window, policy: Policy, *, final: bool) -> Judgement:
    """The window's time is up (or, with `final`, its maximum): PASS when the
    evidence says good and no breach is outstanding; otherwise PENDING
    (extend), or INCONCLUSIVE when `final`."""
    hyp = hypotheses(policy, window.baseline)
    llr = hyp.llr(window.judged)
    values = window_values(window, hyp, llr)
    seen = window.judged.requests
    traffic_ok = policy.min_requests == 0 or (seen >= policy.min_requests and llr <= math.log(policy.beta))
    if traffic_ok and not window.outstanding:
        return Judgement(Verdict.PASS, (), seen=seen, hypotheses=hyp, llr=llr, values=values)
    verdict = Verdict.INCONCLUSIVE if final else Verdict.PENDING
    return Judgement(verdict, window.outstanding, needed=0 if traffic_ok else _needed(policy, hyp),
                     seen=seen, hypotheses=hyp, llr=llr, values=values)


def _needed(policy: Policy, hyp: Hypotheses) -> int:
    if policy.min_requests == 0:
        return 0
    return max(policy.min_requests, hyp.requests_to_pass(policy.beta))


def window_values(window: Window, hyp: Hypotheses, llr: float) -> dict[str, float | None]:
    """What an event shows of the window: typed numbers, no sentences."""
    ev, base, r = window.judged, window.baseline, window.readings
    return {
        "requests": float(ev.requests), "errors": float(ev.errors), "error_rate": ev.error_rate,
        "p95_latency": ev.p95(),
        "baseline_requests": float(base.requests) if base else None,
        "baseline_error_rate": base.error_rate if base else None,
        "baseline_p95_latency": base.p95() if base else None,
        "good_error_rate": hyp.good, "bad_error_rate": hyp.bad, "llr": round(llr, 4),
        "quality_score": r.quality_score, "health_pass_rate": r.health_pass_rate, "cpu": r.cpu,
        "baseline_cpu": r.baseline_cpu,
    }


TIERS = ("critical", "important", "warning")


@dataclass(frozen=True)
class Alert:
    tier: str
    metric: str
    value: float
    threshold: float


def alerts_for(window: Window, rules: Alerts) -> list[Alert]:
    """The most severe alert tier per metric the window raises now. Traffic
    metrics alert only when statistically clear (a handful of requests with
    one error is not "33 % errors"); readings alert on their value."""
    ev, r = window.judged, window.readings

    def hit(rule: Rule) -> float | None:
        if rule.metric == "error_rate":
            ok = rule.op == ">" and clearly_above(ev.errors, ev.requests, rule.value)
            return ev.errors / ev.requests if ok else None
        if rule.metric == "p95_latency":
            slow = ev.slower_than(rule.value)
            return ev.p95() if rule.op == ">" and clearly_above(slow, len(ev.latencies), P95_TAIL) else None
        if rule.metric == "health_check_failed":
            failed = None if r.health_pass_rate is None else 1 - r.health_pass_rate
            return failed if failed is not None and failed > rule.value else None
        value = {"quality_score": r.quality_score, "health_pass_rate": r.health_pass_rate, "cpu": r.cpu}.get(rule.metric)
        return value if value is not None and rule.matches(value) else None

    out: dict[str, Alert] = {}
    for tier in TIERS:
        for rule in getattr(rules, tier, ()) or ():
            if rule.metric in out:
                continue
            value = hit(rule)
            if value is not None:
                out[rule.metric] = Alert(tier, rule.metric, value, rule.value)
    return list(out.values())


def warm_up() -> None:
    """Import the statistics (scipy.special, about 0.25 s) before a run
    starts: done lazily in a window it would stall the event loop
    mid-rollout, and done in a thread it starves the loop of the GIL for as
    long (measured: the run itself then took twice as long). scipy.stats is
    never imported: see mann_whitney_greater."""
    import scipy.special  # noqa: F401
