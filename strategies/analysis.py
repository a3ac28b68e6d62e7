"""The judge: evidence of one analysis window in, a verdict out.

Pure (no I/O, no clock): the engine folds each sample into a `Window` and
asks `close` when the window's time is up. Every rule here is unit-tested
directly (tests/test_analysis.py, tests/test_judge_stats.py) and measured
by bench/judge_power.py on traffic that does not share its model.

Why it is built this way (docs/judge.md says it in plain words):

- A window is judged on all of its samples. A 1 % canary at 100 req/s sees
  about 5 requests per 5 s sample; judged sample by sample, a release with
  20 % errors passed (the first version did exactly that).
- Failed *requests* are counted, not failed tries: a request nginx retried
  shows several tries in the log, and counting each made failures come in
  clusters the tests did not expect (gating.side_evidence).
- Errors against the baseline without estimating the baseline's rate:
  given the failures of both sides in a sample, the release's share of
  them is binomial with its share of the requests when both fail alike
  (judge_stats.conditional_llrs). The null is "at most r0 times as often"
  with r0 what is not material (half the plan's error_rate over the
  baseline's rate, or twice its hosts' spread: comparison_null), taken
  from earlier samples; the product over samples, mixed over multiples of
  r0 fixed in advance, is an e-process: by Ville's inequality a release no
  worse than r0 reaches 1/a with probability at most a, however often it
  is looked at. Testing "as often" and checking materiality on the point
  estimates stopped good releases whose canary host fails more than the
  fleet's mean. The evidence is divided by the baseline's measured
  overdispersion (which only lowers it; against clusters it is a
  quasi-likelihood correction, not an exact one).
- One false-alarm budget per release (`analysis.false_alarm_budget`),
  half to the plan's first window (the least traffic, where a bad release
  must be caught), the rest evenly over the others, and split across
  every test that can fail a release (judge_stats.Budget). Readings (health, quality, CPU) are
  thresholds, not statistics, and spend none of it.
- Latency: a shift of the median counts only when it is material (25 %
  and 10 ms) *and* beyond the slowest of the baseline's own hosts, and
  significantly beyond that limit at its share of the budget divided by
  the window's looks (Mann-Whitney of the release scaled back by the
  limit, Bonferroni over looks). The tail: the share of the
  release's requests slower than the baseline's p95 of the same sample
  scaled by the release's ratio of medians (so a slower host or what is
  left of a warm-up, which shift the whole distribution, are the median
  test's matter), against 5 % plus a margin for the scale's noise and the
  baseline's hosts' differences in tail shape (an e-process; the margin is
  what makes it hold on real hosts, approximately). The absolute p95
  ceiling is a proportion test too.
- The plan's ceilings never rest on one sample (judge_stats.LeaveOneOut:
  valid when one sample of the window is anything, a burst or a blip), and
  the error ceilings are tempered by the baseline's dispersion within and
  between samples (which only lowers them): a 2 s burst on a real canary
  host stopped a good release on the 1 % ceiling.
- Warm-up: an instance's latencies count once it is `warm_up` old, from
  its own restart (the engine knows it), twice that for the median test;
  the baseline's instances too (a matched baseline restarts with the
  canary: judged against a baseline still warm, a good canary's tail
  looked heavy).
- A window passes only once the tail test has judged (coverage.py,
  tail_told).
- A window passes only once the evidence says "good": a Wald ratio of the
  release's own rate, the baseline's rate against a threshold worse,
  tempered like the error test, and at least `min_requests` seen. Until
  then it is extended; at `max_window` it is inconclusive: a human decides.
- A failing environment is not the release's fault: when a ceiling breaks
  but the baseline breaks it as much (and the comparison does not blame the
  release), the verdict is ENVIRONMENT: the run pauses and says so.
"""
from __future__ import annotations

import bisect
import functools
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Container, Mapping, Sequence

from .events import Verdict as Verdict  # the judge's words, typed where its events are
from .judge_stats import (
    RATE_RATIOS,
    BetweenSamples,
    Budget,
    Dispersion,
    LeaveOneOut,
    between_spread,
    conditional_llrs,
    log_mean_exp,
    proportion_llrs,
    proportion_log_e,
    tempered,
    thin,
)
from .metrics import format_value

if TYPE_CHECKING:
    from .plan import Alerts, Rule, Thresholds


# The error floor of the pass test: a baseline with no errors at all is
# taken as 0.1 %.
ERROR_FLOOR = 0.001
# The level of the fixed-level checks that only *show* (alerts of the
# important and warning tiers, the clients watcher between windows).
LOOK_ALPHA = 0.001
# The p95 as a proportion: p95 > L <=> more than 5 % slower than L.
P95_TAIL = 0.05
# The tail test's margin over 5 %: at least one point (the baseline's p95
# is itself estimated from one sample), twice the baseline's host-to-host
# spread when that is larger, at most five points.
TAIL_MARGIN_FLOOR = 0.01
TAIL_MARGIN_CAP = 0.05
# The tail test compares the release with the baseline's p95 scaled by
# their ratio of medians, once the release has this many latencies (the
# ratio is then known to about 10 %, SCALE_NOISE / sqrt(n) in share).
MIN_TAIL_SCALE = 200
# How much the share above a scaled p95 moves per relative error of the
# scale, times the median's standard error (1.2533 sigma / sqrt(n)): for a
# lognormal phi(1.645) / sigma * 1.2533 sigma = 0.13, whatever sigma.
SCALE_NOISE = 0.13
# Alternatives of the tail test: the share this many times its null. A
# tail-only regression (p95 x1.5, median unchanged) doubles the 5 % share,
# about 1.3-1.6 times a null of 6-8 %: the grid is closer than the
# ceilings' (judge_stats.PROPORTION_RATIOS).
TAIL_RATIOS = (1.25, 1.5, 2.0, 3.0)
# A window passes only once the tail test tells its null from this many
# times it (coverage.unjudged, tail_told): 1.5 x a null of 6-8 % is about
# the 10 % of a tail-only regression (p95 x1.5 doubles the 5 % share).
TAIL_PASS_RATIO = 1.5
# A sample's own baseline p95 needs this many baseline latencies (the
# k-th of n with k = ceil(0.95 (n + 1)) must exist).
MIN_TAIL_BASELINE = 19
# A material error difference: the release's rate over the baseline's by
# at least half the plan's error_rate (the midpoint of "as good" and "a
# threshold worse"); clear but smaller differences do not fail a release.
MATERIAL_ERRORS = 0.5
LATENCY_RATIO = 1.25  # a material slowdown: the median 25 % slower ...
MIN_LATENCY_GAP = 0.010  # ... and at least 10 ms slower
# A median is compared on at least 50 latencies a side (and an instance's
# on 50 of its own): Kayenta's advice of about 50 data points per metric; a
# handful of requests from a slow-ish instance has a noisy median.
MIN_LATENCY_SAMPLES = 50
# The median test judges an instance's latencies once it is this many
# times `latency_warm_up` old: a warm-up decays, and what is left of it
# shifts the whole distribution, which is exactly what the median test
# looks for (the tail test scales it away, so it needs only the warm-up).
SETTLED = 2.0
CPU_RATIO = 1.5  # the release's unit CPU 1.5 x the baseline's ...
MIN_CPU_GAP = 0.10  # ... and 10 points of a core more
# Latencies kept per side and per host of each sample (evenly spaced order
# statistics, judge_stats.thin): a long window at 100 req/s would
# otherwise re-sort tens of thousands of numbers every sample.
SAMPLE_LATENCIES = 400
HOST_LATENCIES = 100
# Mann-Whitney on a very large baseline costs time and adds nothing: cap it.
MAX_LATENCIES = 5000
# The resolution latencies come in: nginx logs $request_time and
# $upstream_response_time in whole milliseconds, and the journal keeps a
# sample's latencies to the millisecond (gating.sample_record). See untie.
RESOLUTION = 0.001


@dataclass(frozen=True)
class Evidence:
    """Traffic of one side (the release, or its baseline): requests that
    reached its instances, the ones they failed (a request counts once per
    instance however often nginx retried it), per-request latencies, and
    the same per instance (`hosts`: name -> Evidence) when known."""

    requests: int = 0
    errors: int = 0
    latencies: tuple[float, ...] = ()  # kept sorted: percentiles are an index
    hosts: tuple[tuple[str, Evidence], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "latencies", tuple(sorted(self.latencies)))

    def __add__(self, other: Evidence) -> Evidence:
        hosts = dict(self.hosts)
        for name, ev in other.hosts:
            hosts[name] = hosts[name] + ev if name in hosts else ev
        return Evidence(self.requests + other.requests, self.errors + other.errors,
                        self.latencies + other.latencies, tuple(sorted(hosts.items())))

    def untied(self) -> Evidence:
        """The same evidence with its latencies (and each host's) untied."""
        return Evidence(self.requests, self.errors, untie(self.latencies),
                        tuple((n, e.untied()) for n, e in self.hosts))

    def thinned(self, most: int, per_host: int) -> Evidence:
        """The same counts with at most `most` latencies (and `per_host` per host)."""
        return Evidence(self.requests, self.errors, thin(self.latencies, most),
                        tuple((n, e.thinned(per_host, per_host)) for n, e in self.hosts))

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def slower_than(self, seconds: float) -> int:
        return len(self.latencies) - bisect.bisect_right(self.latencies, seconds)

    def p95(self) -> float | None:
        return ranked(self.latencies, 95.0)

    def conservative_p95(self) -> float | None:
        """The k-th smallest latency with k = ceil(0.95 (n + 1)): another
        request like these is slower than it with probability at most 5 %
        (a rank argument, whatever the distribution); None below 19."""
        k = math.ceil(0.95 * (len(self.latencies) + 1))
        return self.latencies[k - 1] if len(self.latencies) >= MIN_TAIL_BASELINE and k <= len(self.latencies) \
            else None

    def cells(self) -> list[tuple[int, int]]:
        """(requests, failed) per instance, or of the whole side when unknown."""
        return [(e.requests, e.errors) for _, e in self.hosts] or [(self.requests, self.errors)]


@dataclass(frozen=True)
class Readings:
    """One sample's non-traffic readings of the judged side (None: unknown)."""

    health_pass_rate: float | None = None
    quality_score: float | None = None
    cpu: float | None = None  # mean unit CPU of the release's instances (cores)
    baseline_cpu: float | None = None  # the same for the baseline's instances
    health_failed: int | None = None  # judged instances whose health probe failed this sample


@dataclass(frozen=True)
class Finding:
    """One rule the evidence breaks. `tier` is "critical" (fails at once) or
    "gate" (fails once it persists, or is a pooled statistical verdict).
    `environment`: the baseline breaks it as much (not the release's fault)."""

    metric: str
    value: float
    limit: float
    op: str = ">"  # ">", "<", or "~" for a likelihood verdict
    tier: str = "gate"
    note: str = ""  # how the limit was judged, when it is not a plain comparison
    environment: bool = False

    def __str__(self) -> str:
        value = format_value(self.metric, self.value)
        if self.op == "~":  # a likelihood verdict: the note says what was weighed
            return f"{self.metric} {value} ({self.note})"
        text = f"{self.metric} {value} {self.op} {format_value(self.metric, self.limit)}"
        return f"{text} ({self.note})" if self.note else text


@dataclass(frozen=True)
class Hypotheses:
    """The two error rates the pass test tells apart: the baseline's
    (`good`) and a threshold worse (`bad`)."""

    good: float
    bad: float

    def llr(self, ev: Evidence) -> float:
        """Log-likelihood ratio (bad over good) of the pooled counts."""
        ok = ev.requests - ev.errors
        return (ev.errors * math.log(self.bad / self.good)
                + ok * math.log((1 - self.bad) / (1 - self.good)))

    def requests_to_pass(self, beta: float, dispersion: float = 1.0) -> int:
        """About how many requests of a good release the pass test needs
        (Wald's expected sample size under `good`, times the dispersion)."""
        per_request = (self.good * math.log(self.bad / self.good)
                       + (1 - self.good) * math.log((1 - self.bad) / (1 - self.good)))
        return math.ceil(dispersion * math.log(beta) / per_request) if per_request < 0 else 0


@dataclass(frozen=True)
class Window:
    """Running state of one window; advanced only by `fold`."""

    judged: Evidence = Evidence()
    baseline: Evidence | None = None
    samples: int = 0
    consecutive: int = 0  # samples in a row with a per-sample breach
    outstanding: tuple[Finding, ...] = ()  # the last sample's per-sample breaches
    readings: Readings = Readings()
    error_llrs: tuple[float, ...] = tuple(0.0 for _ in RATE_RATIOS)  # per rate ratio, summed over samples
    dispersion: Dispersion = Dispersion()  # of the baseline's failures
    tail_llrs: tuple[float, ...] = tuple(0.0 for _ in TAIL_RATIOS)  # the tail test's, per ratio, summed
    tail_slow: int = 0  # release requests slower than their sample's baseline p95, scaled to the release
    tail_seen: int = 0  # release requests compared so
    tail_null: float | None = None  # the last sample's null share (5 % plus the margin)
    settled: tuple[float, ...] = ()  # the release's latencies the median test judges (sorted; see advance)
    # every latency of the release as its clients felt it, warm-up included
    # (sorted, thinned like the others): what the absolute p95 ceilings judge
    felt: tuple[float, ...] = ()
    drift: BetweenSamples = BetweenSamples()  # the baseline's failures between samples, per instance
    # the plan's own ceilings (error_rate, p95_latency) sample by sample, so that none rests on one sample
    error_ceiling: LeaveOneOut = LeaveOneOut()
    p95_ceiling: LeaveOneOut = LeaveOneOut()


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
        if self.verdict == Verdict.ENVIRONMENT:
            out.append("the baseline fails as much: the environment, not the release")
        if self.verdict in (Verdict.PENDING, Verdict.INCONCLUSIVE) and self.needed > self.seen:
            out.append(evidence_reason(self))
        return out


def evidence_reason(j: Judgement) -> str:
    h = j.hypotheses
    if h is None:
        return f"needs {j.needed} requests; saw {j.seen}"
    about = f"about {j.needed}" if j.needed > j.seen + 1 else f"more than {j.seen}"
    return (f"needs {about} requests to tell {h.good * 100:.2f}% from {h.bad * 100:.2f}% errors; "
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
    alpha: float  # the false-alarm budget of one release (all windows, all tests)
    beta: float  # chance a release a threshold worse passes a window (approximate)
    critical: tuple[Rule, ...] = ()
    important: tuple[Rule, ...] = ()
    windows: int = 1  # judged windows the plan has: the budget is spread over them
    looks: int = 180  # samples a window may take (max_window / sample_interval)
    warm_samples: int = 0  # a window's first samples whose release latencies are not judged (instances' ages unknown)
    warm_up: float = 0.0  # seconds from an instance's restart during which its latencies are not judged
    window: int = 0  # which of the plan's judged windows this is (0: the first): the budget is front-loaded
    # a window may not pass before its tail comparison has told the release's tail (coverage.unjudged):
    # a canary's windows; a rolling batch's are not held (see coverage.unjudged)
    hold_for_tail: bool = True

    @classmethod
    def of(cls, thresholds: Thresholds, alerts: Alerts | None = None, *, budget: float = 0.01,
           windows: int = 1, sample_interval: float = 5.0, warm_up: float = 0.0, window: int = 0,
           hold_for_tail: bool = True) -> Policy:
        risk = 1 - thresholds.confidence
        interval = max(sample_interval, 1e-9)
        looks = max(1, math.ceil(thresholds.max_window / interval))
        return cls(thresholds.error_rate, thresholds.p95_latency, thresholds.quality_score,
                   thresholds.health_pass_rate, max(1, int(thresholds.persistence)),
                   int(thresholds.min_requests), bool(thresholds.compare_to_stable), budget, risk,
                   tuple(alerts.critical) if alerts else (), tuple(alerts.important) if alerts else (),
                   max(1, windows), looks, math.ceil(warm_up / interval - 1e-9), float(warm_up), max(0, window),
                   hold_for_tail)

    @property
    def budget(self) -> Budget:
        return Budget(self.alpha, self.windows, self.window)


def percentile(values: Sequence[float], pct: float = 95.0) -> float | None:
    """Nearest-rank percentile; None for no values."""
    return ranked(sorted(values), pct)


def untie(ordered: Sequence[float], step: float = RESOLUTION) -> tuple[float, ...]:
    """Sorted latencies with each run of equal values spread evenly over
    the `step` they stand for (v - step/2 .. v + step/2, never below 0).

    A logged 6 ms is any time within half a millisecond of it. At a few
    milliseconds a request, most requests share a handful of values, and
    the rank statistics the judge uses jump a whole step at a time: two
    identical sides can have medians of 5 and 6 ms, a "release 17 % faster"
    that scales the baseline's p95 down to 5 ms and makes every 6 ms
    request of the release "slower than the baseline's tail" (a good
    release rolled back on the sandbox, 28 of 72). Spread, both sides'
    quantiles move smoothly with their shares of each value, as the true
    ones do; values that do not tie (a continuous source) are unchanged."""
    out: list[float] = []
    i = 0
    while i < len(ordered):
        j = bisect.bisect_right(ordered, ordered[i], i)
        k, v = j - i, ordered[i]
        out.extend([v] if k == 1 else (max(0.0, v + step * ((m + 0.5) / k - 0.5)) for m in range(k)))
        i = j
    return tuple(out)


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
    return Hypotheses(good, bad)


@functools.lru_cache(maxsize=4096)
def upper_bound(errors: int, requests: int, confidence: float) -> float:
    """One-sided upper bound of a binomial rate (Jeffreys interval: the
    Beta(e + 1/2, n - e + 1/2) quantile)."""
    from scipy.special import betaincinv

    return float(betaincinv(errors + 0.5, requests - errors + 0.5, confidence))


def clearly_above(successes: int, trials: int, rate: float, alpha: float = LOOK_ALPHA) -> bool:
    """An exact one-sided binomial test at one look: is the true proportion
    above `rate`, with at most `alpha` chance that luck alone explains it?
    For what is only shown (alert tiers that do not act, the clients
    watcher); what acts uses the e-processes of judge_stats."""
    if trials == 0 or successes <= rate * trials:
        return False
    from scipy.special import bdtrc

    # P(X >= successes) for X ~ Binomial(trials, rate): what
    # scipy.stats.binomtest(..., alternative="greater") computes
    return bool(bdtrc(successes - 1, trials, rate) < alpha)


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


# -- the tests ------------------------------------------------------------------------

def slowest_host_median(base: Evidence) -> float | None:
    """The median of the baseline's slowest instance (with enough latencies)."""
    medians = [ranked(e.latencies, 50.0) for _, e in base.hosts if len(e.latencies) >= MIN_LATENCY_SAMPLES]
    return max((m for m in medians if m is not None), default=None)


def slower(judged: Sequence[float], base: Evidence, level: float) -> tuple[float, float] | None:
    """(judged median, the limit it broke) when the judged latencies are
    materially slower than the baseline's (its median 25 % and 10 ms over,
    plus the gap between the baseline's median and its slowest instance's:
    a release instance may be as slow as the baseline's slowest), and
    significantly slower than that limit: Mann-Whitney (one-sided,
    p < `level`) of the release's latencies scaled back by limit / median
    against the baseline's. Its null is then "no slower than the limit",
    not "no slower than the baseline": a release host a little slower than
    the fleet's mean is common and not a regression. Else None."""
    baseline = base.latencies
    if len(judged) < MIN_LATENCY_SAMPLES or len(baseline) < MIN_LATENCY_SAMPLES:
        return None
    mj, mb = ranked(judged, 50.0), ranked(baseline, 50.0)
    assert mj is not None and mb is not None
    # the practical floor on top of the baseline's own spread: over its slowest instance by as much
    limit = max(mb * LATENCY_RATIO, mb + MIN_LATENCY_GAP) + max(0.0, (slowest_host_median(base) or mb) - mb)
    if mj <= limit:
        return None
    if len(baseline) > MAX_LATENCIES:  # deterministic thinning: same input, same verdict
        baseline = tuple(random.Random(len(baseline)).sample(list(baseline), MAX_LATENCIES))
    # the release scaled back by the limit's ratio: significant only when it is slower than
    # the limit, not merely slower than the baseline (host spread makes the latter common)
    if mann_whitney_greater([x * mb / limit for x in judged], baseline) >= level:
        return None
    return mj, limit


def relative_scale(judged: Evidence, base: Evidence | None) -> float | None:
    """How much slower the release is than its baseline as a whole (the
    ratio of their medians), from the window's earlier samples; None before
    MIN_TAIL_SCALE release latencies."""
    if base is None or len(judged.latencies) < MIN_TAIL_SCALE or len(base.latencies) < MIN_TAIL_SCALE:
        return None
    mj, mb = ranked(judged.latencies, 50.0), ranked(base.latencies, 50.0)
    return mj / mb if mj and mb else None


def tail_margin(base: Evidence, scale_from: int) -> float:
    """How far above 5 % a release's share of requests slower than the
    baseline's p95 (scaled to the release) may be without blame: twice the
    spread between the baseline's own instances of their share above the
    p95 scaled to each (beyond chance: hosts whose tails differ in shape),
    within [TAIL_MARGIN_FLOOR, TAIL_MARGIN_CAP], plus twice the noise of a
    scale estimated from `scale_from` latencies (SCALE_NOISE / sqrt(n))."""
    noise = 2 * SCALE_NOISE / math.sqrt(max(1, scale_from))
    limit, middle = base.p95(), ranked(base.latencies, 50.0)
    if limit is None or not middle:
        return TAIL_MARGIN_FLOOR + noise
    shares = []
    for _, e in base.hosts:
        own = ranked(e.latencies, 50.0)
        if own and len(e.latencies) >= MIN_LATENCY_SAMPLES:
            shares.append((len(e.latencies), e.slower_than(limit * own / middle) / len(e.latencies)))
    return min(TAIL_MARGIN_CAP, max(TAIL_MARGIN_FLOOR, 2 * between_spread(shares))) + noise


def tail_step(window: Window, judged: Evidence, baseline: Evidence) -> tuple[tuple[float, ...], int, int, float | None]:
    """One sample of the tail test: the release's requests slower than
    this sample's baseline p95 scaled by the release's relative scale (from
    earlier samples: predictable), tested against 5 % plus this sample's
    margin. Returns (log-likelihood ratios per TAIL_RATIOS, slow, seen,
    the null share), the counts zero before the scale is known.

    Scaled, because a release instance that is a few % slower or faster
    than the fleet, or still a little warm, shifts its whole distribution:
    that is the median test's matter (with its host-spread floor), not a
    heavier tail. Against the same sample's baseline, because a blip or a
    load swing slows both sides at once."""
    scale = relative_scale(window.judged, window.baseline)
    own = baseline.conservative_p95()
    limit = own if own is not None else (window.baseline.conservative_p95() if window.baseline else None)
    if scale is None or limit is None or not judged.latencies or window.baseline is None:
        return tuple(0.0 for _ in TAIL_RATIOS), 0, 0, None
    slow, seen = judged.slower_than(limit * scale), len(judged.latencies)
    null = P95_TAIL + tail_margin(window.baseline, len(window.judged.latencies))
    return proportion_llrs(slow, seen, null, TAIL_RATIOS), slow, seen, null


def tail_told(window: Window, beta: float) -> bool:
    """Has the tail test seen enough to say "no heavier tail"? A Wald ratio
    of the window's tail counts (release requests slower than their
    sample's scaled baseline p95) of TAIL_PASS_RATIO times its null over
    the null, at or under `beta` (the pass side's risk, like the error
    pass test's; approximate in the same way: the null moves a little
    from sample to sample). A good release's share is about 5 %, under a
    null of 6-8 %, and is told apart in about 300 of its latencies; a
    tail-only regression's (about 10 %) drifts the other way, so its
    window extends while the tail test gathers the evidence to fail it.
    Before, a window closed at its planned end on the error evidence
    alone, with the tail test at a few hundred latencies or none."""
    null = window.tail_null
    if not window.tail_seen or null is None:
        return False
    bad = min(0.999, null * TAIL_PASS_RATIO)
    slow, fast = window.tail_slow, window.tail_seen - window.tail_slow
    return slow * math.log(bad / null) + fast * math.log((1 - bad) / (1 - null)) <= math.log(beta)


def comparison_null(base: Evidence | None, policy: Policy) -> float:
    """The error comparison's null ratio, from the window's earlier samples
    (so it is fixed before the sample it judges): the release may fail more
    than its baseline by half the plan's error_rate (what is not material),
    or by twice the spread between the baseline's own hosts beyond chance
    when that is larger (a release instance may be one of the fleet's
    worse ones), as a ratio to the baseline's rate so far (at least
    ERROR_FLOOR, which the first sample, with no earlier one, is held to)."""
    if base is None or not base.requests:
        return 1 + policy.error_rate * MATERIAL_ERRORS / ERROR_FLOOR
    rate = max(ERROR_FLOOR, base.errors / base.requests)
    spread = between_spread([(e.requests, e.errors / e.requests) for _, e in base.hosts if e.requests])
    return 1 + max(policy.error_rate * MATERIAL_ERRORS, 2 * spread) / rate


def errors_log_e(window: Window) -> float:
    """The error comparison's e-process (log), tempered by the baseline's
    dispersion."""
    phi = window.dispersion.factor
    return log_mean_exp([v / phi for v in window.error_llrs])


def ceiling_rules(policy: Policy, metric: str) -> list[tuple[float, str]]:
    """(limit, tier) of every ceiling on `metric` that can fail a release:
    the plan's threshold and each critical alert rule."""
    plan = policy.error_rate if metric == "error_rate" else policy.p95_latency
    out = [(plan, "gate")]
    out += [(r.value, "critical") for r in policy.critical if r.metric == metric and r.op == ">"]
    return out


def bad_share(ev: Evidence, metric: str, limit: float) -> float:
    """The share of `ev` that breaks the ceiling: failed requests, or
    requests slower than `limit`."""
    trials = ev.requests if metric == "error_rate" else len(ev.latencies)
    return bad_count(ev, metric, limit) / trials if trials else 0.0


def as_bad(base: Evidence, ev: Evidence, metric: str, limit: float, policy: Policy) -> bool:
    """Does the baseline (its worst instance left out) break the ceiling
    as much as the release: its share within half a threshold of the
    release's (half the plan's error_rate; 2.5 points of requests slower
    than a p95 limit)? For errors also when the baseline is itself within
    a quarter threshold of the ceiling and the release within a full
    threshold of the whole baseline: a fleet at the ceiling already is the
    environment, and a release instance on one of its worse hosts, or one
    that had a burst, is over the ceiling without being worse than its
    baseline (the comparison, which allows for the hosts' spread, judges
    that). A release worse than that is failed."""
    slack = policy.error_rate * MATERIAL_ERRORS if metric == "error_rate" else P95_TAIL / 2
    own, mine = bad_share(shared(base, metric, limit), metric, limit), bad_share(ev, metric, limit)
    if own >= mine - slack:
        return True
    return metric == "error_rate" and own >= limit - slack / 2 and mine <= bad_share(base, metric, limit) + 2 * slack


def ceiling_log_e(window: Window, ev: Evidence, metric: str, limit: float, tier: str) -> float:
    """The log e-value that `ev` breaks the ceiling `limit` on `metric`
    (p95 above L: more than 5 % slower than L).

    The plan's own ceilings (the gate tier) do not rest on any one sample
    (judge_stats.LeaveOneOut): a burst of a few seconds on a canary
    instance, or a blip every host shares, can fill one sample with
    failures, and a proportion test that takes requests as independent
    stopped good releases on it (7 failures in the first 57 requests of a
    real canary, a 2 s burst). The critical tier acts at once, on the
    pooled counts: it is for releases failing far more than a burst does.
    The error ceilings are also tempered by the baseline's dispersion,
    within samples (between instances) and between them, whichever is
    larger (judge_stats.tempered: it only lowers the e-value)."""
    if tier == "gate":
        log_e = (window.error_ceiling if metric == "error_rate" else window.p95_ceiling).log_e()
    elif metric == "error_rate":
        log_e = proportion_log_e(ev.errors, ev.requests, limit)
    else:
        log_e = proportion_log_e(ev.slower_than(limit), len(ev.latencies), P95_TAIL)
    if metric != "error_rate":
        return log_e
    return tempered(log_e, max(window.dispersion.factor, window.drift.factor))


def shared(base: Evidence, metric: str, limit: float) -> Evidence:
    """The baseline without its worst instance on `metric`, when that
    instance holds more than half of the baseline's failed (or slow)
    requests: a failing environment is one its instances share; one
    instance failing alone is that instance's trouble, not the release's
    excuse. Only such an outlier is left out (its share also more than
    twice the others'): in a blip every instance shares, leaving the worst
    out anyway removed much of a small baseline's failures, and a good
    canary next to it was failed (bench/judge_power.py, the 50 % step)."""
    if len(base.hosts) < 2:
        return base
    worst_name, worst = max(base.hosts, key=lambda h: bad_share(h[1], metric, limit))
    rest = [e for n, e in base.hosts if n != worst_name]
    others = Evidence(sum(e.requests for e in rest), sum(e.errors for e in rest),
                      tuple(x for e in rest for x in e.latencies))
    mine, theirs = bad_count(worst, metric, limit), bad_count(others, metric, limit)
    alone = mine > theirs and bad_share(worst, metric, limit) > 2 * bad_share(others, metric, limit)
    return others if alone else base


def bad_count(ev: Evidence, metric: str, limit: float) -> int:
    """Failed requests, or latencies slower than `limit`."""
    return ev.errors if metric == "error_rate" else ev.slower_than(limit)


def ceilings(window: Window, policy: Policy, tier: str) -> list[Finding]:
    """The absolute ceilings of `tier` the release clearly breaks (an
    e-process each, at its part of the budget); marked `environment` when
    the baseline breaks the same ceiling as clearly. The p95 ceiling is
    what clients feel, so it judges every latency, warm-up included: only
    the comparisons with the baseline leave a warm-up out."""
    out: list[Finding] = []
    budget = policy.budget
    felt = Evidence(len(window.felt), 0, window.felt)
    for metric, test in (("error_rate", "error_ceiling"), ("p95_latency", "p95_ceiling")):
        rules = ceiling_rules(policy, metric)
        bar = math.log(1 / budget.test(test, len(rules)))
        ev = window.judged if metric == "error_rate" else felt
        for limit, rule_tier in rules:
            if rule_tier != tier or ceiling_log_e(window, ev, metric, limit, rule_tier) < bar:
                continue
            value = (ev.error_rate or 0.0) if metric == "error_rate" else (ev.p95() or 0.0)
            env = window.baseline is not None and as_bad(window.baseline, ev, metric, limit, policy)
            note = f"{ev.errors} of {ev.requests}" if metric == "error_rate" else \
                f"{ev.slower_than(limit)} of {len(ev.latencies)} slower"
            out.append(Finding(metric, value, limit, ">", tier, note, env))
    return out


def critical(window: Window, policy: Policy) -> list[Finding]:
    """The article's critical tier: on_failure at once, no persistence.
    Each rule's value counts: `health_check_failed > 3` needs four judged
    instances failing their probe in one sample."""
    out: list[Finding] = []
    failed = window.readings.health_failed
    for rule in policy.critical:
        if rule.metric == "health_check_failed" and failed is not None and rule.matches(failed):
            out.append(Finding("health_check_failed", float(failed), rule.value, rule.op, "critical"))
    return out + ceilings(window, policy, "critical")


def compared(window: Window, policy: Policy) -> list[Finding]:
    """The comparisons with the baseline that blame the release."""
    out: list[Finding] = []
    ev, base, budget = window.judged, window.baseline, policy.budget
    if not policy.compare_to_stable or base is None:
        return out
    log_e, bar = errors_log_e(window), math.log(1 / budget.test("errors_vs_baseline"))
    excess = (ev.error_rate or 0.0) - (base.error_rate or 0.0)
    if log_e >= bar and excess >= policy.error_rate * MATERIAL_ERRORS:
        out.append(Finding("error_rate", ev.error_rate or 0.0, base.error_rate or 0.0, "~", note=(
            f"{ev.errors} of {ev.requests} vs the baseline's {base.errors} of {base.requests}; "
            f"e-value {math.exp(min(log_e, 700)):.3g} >= {1 / budget.test('errors_vs_baseline'):.0f}")))
    if window.tail_seen and log_mean_exp(window.tail_llrs) >= math.log(1 / budget.test("tail_vs_baseline")):
        out.append(Finding("slow_share_vs_stable", window.tail_slow / window.tail_seen, window.tail_null or P95_TAIL,
                           ">", note=f"{window.tail_slow} of {window.tail_seen} slower than the baseline's p95, "
                           "scaled to the release"))
    shift = slower(window.settled, base, budget.test("latency_shift") / policy.looks)
    if shift is not None:
        out.append(Finding("median_latency_vs_stable", shift[0], shift[1]))
    return out


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


def without_latencies(ev: Evidence, hosts: Container[str] | None = None) -> Evidence:
    """`ev` with the latencies of `hosts` (all of them: None) left out;
    requests and errors are kept."""
    kept = tuple((n, e if hosts is not None and n not in hosts else Evidence(e.requests, e.errors))
                 for n, e in ev.hosts)
    if hosts is None or not ev.hosts:
        return Evidence(ev.requests, ev.errors, (), kept)
    return Evidence(ev.requests, ev.errors, tuple(x for _, e in kept for x in e.latencies), kept)


def warm(judged: Evidence, window: Window, policy: Policy, ages: Mapping[str, float] | None,
         factor: float = 1.0) -> Evidence:
    """The release's latencies that are judged: an instance just restarted
    is slow while it warms up (caches, JIT, connection pools), which is not
    a regression. With `ages` (seconds since each instance's restart, which
    the engine knows), an instance's latencies count once it is `factor`
    times `policy.warm_up` old, each from its own restart: an instance
    restarted long ago is judged from the window's first sample. Without
    them (recorded samples), the window's first `factor` times
    `warm_samples` are left out for every instance. Errors always count."""
    if ages is None:
        return without_latencies(judged) if window.samples < policy.warm_samples * factor else judged
    young = {n for n, _ in judged.hosts if ages.get(n, math.inf) < policy.warm_up * factor}
    return without_latencies(judged, young) if young else judged


def advance(window: Window, judged: Evidence, baseline: Evidence | None, readings: Readings,
            sampled: list[Finding], policy: Policy, ages: Mapping[str, float] | None = None) -> Window:
    """The window with one more sample: pooled evidence, the error
    comparison's ratios, the baseline's dispersion, the tail counts; the
    latencies of instances still warming up left out (`warm`), and for
    the median test (`settled`) those of instances not yet twice as old.
    Latencies are untied first (`untie`): every test below assumes no two
    requests took exactly the same time."""
    judged = judged.untied()
    baseline = baseline.untied() if baseline is not None else None
    settled = warm(judged, window, policy, ages, SETTLED).latencies
    felt = thin(sorted(judged.latencies), SAMPLE_LATENCIES)
    judged = warm(judged, window, policy, ages)
    llrs, dispersion, drift = window.error_llrs, window.dispersion, window.drift
    tail_llrs, tail_slow, tail_seen, null = window.tail_llrs, window.tail_slow, window.tail_seen, window.tail_null
    error_ceiling = window.error_ceiling.add(judged.errors, judged.requests, policy.error_rate)
    p95_ceiling = window.p95_ceiling.add(len(felt) - bisect.bisect_right(felt, policy.p95_latency), len(felt),
                                         P95_TAIL)
    if baseline is not None:
        # like with like: a baseline instance restarted with the release (a matched baseline) is
        # as warm as it, and its warm-up is left out the same way
        baseline = warm(baseline, window, policy, ages)
        step = conditional_llrs(judged.errors, judged.requests, baseline.errors, baseline.requests,
                                null=comparison_null(window.baseline, policy))
        llrs = tuple(a + b for a, b in zip(llrs, step))
        dispersion = dispersion.add(baseline.cells())
        drift = drift.add([(name, e.requests, e.errors) for name, e in baseline.hosts]
                          or [("", baseline.requests, baseline.errors)])
        tail, slow, seen, now_null = tail_step(window, judged, baseline)
        tail_llrs = tuple(a + b for a, b in zip(tail_llrs, tail))
        tail_slow, tail_seen, null = tail_slow + slow, tail_seen + seen, now_null or null
    judged = judged.thinned(SAMPLE_LATENCIES, HOST_LATENCIES)
    baseline = baseline.thinned(SAMPLE_LATENCIES, HOST_LATENCIES) if baseline is not None else None
    base = baseline if window.baseline is None else (window.baseline + baseline if baseline else window.baseline)
    return Window(window.judged + judged, base, window.samples + 1, window.consecutive + 1 if sampled else 0,
                  tuple(sampled), readings, llrs, dispersion, tail_llrs, tail_slow, tail_seen, null,
                  tuple(sorted(window.settled + thin(sorted(settled), SAMPLE_LATENCIES))),
                  tuple(sorted(window.felt + felt)), drift, error_ceiling, p95_ceiling)


def fold(window: Window, judged: Evidence, baseline: Evidence | None, readings: Readings,
         policy: Policy, ages: Mapping[str, float] | None = None) -> tuple[Window, Judgement]:
    """Add one sample and judge the window so far: FAIL as soon as the
    evidence is clear, ENVIRONMENT when only ceilings the baseline breaks as
    much are broken, else PENDING (the window's end decides)."""
    sampled = per_sample(readings, policy)
    window = advance(window, judged, baseline, readings, sampled, policy, ages)
    hyp = hypotheses(policy, window.baseline)
    llr = hyp.llr(window.judged)
    values = window_values(window, policy, hyp, llr)
    seen = window.judged.requests
    now_critical = critical(window, policy)
    blamed = compared(window, policy)
    if any(not f.environment for f in now_critical):
        return window, Judgement(Verdict.FAIL, tuple(now_critical + blamed), seen=seen, hypotheses=hyp, llr=llr,
                                 values=values)
    found = now_critical + blamed + ceilings(window, policy, "gate")
    if window.consecutive >= policy.persistence:
        found += sampled
    if found and all(f.environment for f in found):
        return window, Judgement(Verdict.ENVIRONMENT, tuple(found), seen=seen, hypotheses=hyp, llr=llr,
                                 values=values)
    verdict = Verdict.FAIL if found else Verdict.PENDING
    return window, Judgement(verdict, tuple(found or sampled), needed=_needed(policy, hyp, window), seen=seen,
                             hypotheses=hyp, llr=llr, values=values)


def close(window: Window, policy: Policy, *, final: bool) -> Judgement:
    """The window's time is up (or, with `final`, its maximum): PASS when the
    evidence says good and no breach is outstanding; otherwise PENDING
    (extend), or INCONCLUSIVE when `final`."""
    hyp = hypotheses(policy, window.baseline)
    llr = hyp.llr(window.judged)
    values = window_values(window, policy, hyp, llr)
    seen = window.judged.requests
    tempered = llr / window.dispersion.factor
    traffic_ok = policy.min_requests == 0 or (seen >= policy.min_requests and tempered <= math.log(policy.beta))
    if traffic_ok and not window.outstanding:
        return Judgement(Verdict.PASS, (), seen=seen, hypotheses=hyp, llr=llr, values=values)
    verdict = Verdict.INCONCLUSIVE if final else Verdict.PENDING
    # a release whose own failures (a burst) keep the pass test from saying "good" has seen what the
    # test expects and still needs more: at least one request more, said so (the reason was blank)
    needed = 0 if traffic_ok else max(_needed(policy, hyp, window), seen + 1)
    return Judgement(verdict, window.outstanding, needed=needed, seen=seen, hypotheses=hyp, llr=llr,
                     values=values)


def _needed(policy: Policy, hyp: Hypotheses, window: Window) -> int:
    if policy.min_requests == 0:
        return 0
    return max(policy.min_requests, hyp.requests_to_pass(policy.beta, window.dispersion.factor))


def window_values(window: Window, policy: Policy, hyp: Hypotheses, llr: float) -> dict[str, float | None]:
    """What an event shows of the window: typed numbers, no sentences."""
    ev, base, r = window.judged, window.baseline, window.readings
    budget = policy.budget
    return {
        "requests": float(ev.requests), "errors": float(ev.errors), "error_rate": ev.error_rate,
        "p95_latency": ev.p95(),
        "baseline_requests": float(base.requests) if base else None,
        "baseline_errors": float(base.errors) if base else None,
        "baseline_error_rate": base.error_rate if base else None,
        "baseline_p95_latency": base.p95() if base else None,
        "good_error_rate": hyp.good, "bad_error_rate": hyp.bad, "llr": round(llr, 4),
        "dispersion": round(window.dispersion.factor, 4),
        "errors_log_e": round(errors_log_e(window), 4) if base else None,
        "errors_log_e_limit": round(math.log(1 / budget.test("errors_vs_baseline")), 4),
        "slow_share": window.tail_slow / window.tail_seen if window.tail_seen else None,
        "window_alpha": budget.per_window(),
        "quality_score": r.quality_score, "health_pass_rate": r.health_pass_rate, "cpu": r.cpu,
        "baseline_cpu": r.baseline_cpu,
        "health_failed": float(r.health_failed) if r.health_failed is not None else None,
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
    one error is not "33 % errors"); readings alert on their value, each in
    its own unit: a count of failed probes against a count, fractions
    against fractions."""
    ev, r = window.judged, window.readings

    def hit(rule: Rule) -> float | None:
        if rule.metric == "error_rate":
            ok = rule.op == ">" and clearly_above(ev.errors, ev.requests, rule.value)
            return ev.errors / ev.requests if ok else None
        if rule.metric == "p95_latency":
            slow = ev.slower_than(rule.value)
            return ev.p95() if rule.op == ">" and clearly_above(slow, len(ev.latencies), P95_TAIL) else None
        value = {"quality_score": r.quality_score, "health_pass_rate": r.health_pass_rate, "cpu": r.cpu,
                 "health_check_failed": None if r.health_failed is None else float(r.health_failed)
                 }.get(rule.metric)
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
