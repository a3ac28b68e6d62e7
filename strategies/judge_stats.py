"""The judge's statistics: e-processes, overdispersion, host spread, budget.

Pure arithmetic on counts; strategies/analysis.py decides with it. Every
sequential test here is an *e-process*: a running product of likelihood
ratios whose parameters are fixed before the data arrive, mixed over a
small grid of alternatives fixed in this file. Under the null hypothesis
its expectation is at most 1 at every sample, so by Ville's inequality the
chance that it *ever* reaches 1/a is at most a, however often it is looked
at. Two corrections for real traffic are not exact and are said so where
they are made: the tempering by overdispersion (a quasi-likelihood
correction) and the margins taken from the baseline's own host spread.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# Rate ratios the error test mixes over (equal weights), fixed in advance,
# each a multiple of the test's null ratio (analysis.comparison_null: 2 for
# the seed's 1-point threshold at a 0.5 % baseline, where a release 2 points
# worse has the ratio 5, 2.5 times the null). 15 and 50 cover a release
# that fails outright. Each ratio more costs evidence (the mixture's log k:
# five ratios cost 1.6 nats), and a ratio between two of the grid loses
# little.
RATE_RATIOS = (1.5, 2.5, 5.0, 15.0, 50.0)
# Alternatives of the one-sample proportion tests (ceilings, the tail
# share): the true proportion this many times the null's.
PROPORTION_RATIOS = (1.5, 2.0, 3.0, 5.0)

# How a window's share of the false-alarm budget is split across the tests
# that can fail a release. The comparison of error counts gets the most: it
# is the test a canary exists for. Thresholds on readings (health, quality,
# CPU) are not statistics and spend none of it.
SHARES = {
    "errors_vs_baseline": 0.45,
    "error_ceiling": 0.075,  # the plan's error_rate and every error alert rule that acts
    "tail_vs_baseline": 0.25,
    "latency_shift": 0.10,
    "p95_ceiling": 0.075,  # the plan's p95_latency and every p95 alert rule that acts
    "custom_metrics": 0.05,  # the plan's metrics.custom, together (strategies/custom_metrics.py)
}


def log_mean_exp(values: Sequence[float]) -> float:
    """log((1/k) * sum(exp(v))), without overflow."""
    top = max(values)
    if top == float("-inf"):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def conditional_llrs(judged_failed: int, judged_requests: int, base_failed: int, base_requests: int,
                     ratios: Sequence[float] = RATE_RATIOS, null: float = 1.0) -> tuple[float, ...]:
    """Log-likelihood ratios of one sample for each rate ratio r.

    Given the failures of both sides in the sample (K), and each side's
    requests, the release's count is Binomial(K, q(rho)) when it fails rho
    times as often as the baseline (s: the release's share of the requests,
    q(rho) = s rho / (s rho + 1 - s)), whatever the common rate is. No
    baseline rate is estimated: a rate that drifts, or a blip both sides
    see, cancels within the sample. The null is "rho is at most `null`"
    (1: fails as often as the baseline; more allows for the hosts' own
    spread and for differences too small to matter), each alternative r
    times the null: for a binomial, q(r null) above q(null) makes the ratio's
    expectation at most 1 for every rho up to `null`, so the null may be
    chosen from earlier samples (predictable) and the product stays an
    e-process."""
    k = judged_failed + base_failed
    if k == 0 or judged_requests <= 0 or base_requests <= 0:
        return tuple(0.0 for _ in ratios)
    s = judged_requests / (judged_requests + base_requests)
    q0 = s * null / (s * null + 1 - s)
    out = []
    for r in ratios:
        q = s * r * null / (s * r * null + 1 - s)
        out.append(judged_failed * math.log(q / q0) + base_failed * math.log((1 - q) / (1 - q0)))
    return tuple(out)


def proportion_llrs(hits: int, trials: int, null: float, ratios: Sequence[float]) -> tuple[float, ...]:
    """Bernoulli log-likelihood ratios of p1 = null * ratio (at most
    0.999) over `null`, one per ratio (0 where p1 is not above the null).
    For any true proportion at or below `null` each is a supermartingale
    (its expectation per trial falls with p); summed over samples whose
    nulls differ, each sample's factor still has expectation at most 1 when
    that sample's null holds."""
    if trials <= 0 or not 0.0 < null < 1.0:
        return tuple(0.0 for _ in ratios)
    misses = trials - hits
    out = []
    for ratio in ratios:
        p1 = min(0.999, null * ratio)
        out.append(hits * math.log(p1 / null) + misses * math.log((1 - p1) / (1 - null)) if p1 > null else 0.0)
    return tuple(out)


def proportion_log_e(hits: int, trials: int, null: float, ratios: Sequence[float] = PROPORTION_RATIOS) -> float:
    """Log of a mixture e-process against "the proportion is at most
    `null`": proportion_llrs mixed with equal weights, so it holds for the
    whole composite null. Depends on the totals alone."""
    if trials <= 0 or not 0.0 < null < 1.0:
        return 0.0
    logs = [v for v, r in zip(proportion_llrs(hits, trials, null, ratios), ratios) if min(0.999, null * r) > null]
    return log_mean_exp(logs) if logs else 0.0


# The most the tests are widened: beyond it the baseline is erratic, most
# often because one of its instances is dead or sick (failing most of its
# requests), which is that instance's alert, not a reason to go blind.
MAX_DISPERSION = 4.0


@dataclass(frozen=True)
class Dispersion:
    """How much more the baseline's instances differ in failures than
    chance allows, *within* each sample: 1 when a sample's failures fall on
    its instances as a multinomial with their shares of the requests would,
    larger when they come in clusters (bursts on one instance) or one
    instance fails more than the others. Variation *between* samples (a
    drifting rate, a blip every instance shares) is measured too, by the
    same cells, but does not count: the comparison with the baseline
    conditions on each sample's failures, so it cancels there.

    Pearson's statistic per sample, sum (k - K n/N)^2 / (K n/N) =
    sum k^2 N / (K n) - K over instances with requests, summed over samples
    with failures, divided by its degrees of freedom (instances - 1 each)."""

    chi2: float = 0.0
    df: int = 0

    def add(self, cells: Sequence[tuple[int, int]]) -> Dispersion:
        """Add one sample's (requests, failed) per instance."""
        live = [(n, k) for n, k in cells if n > 0]
        total = sum(n for n, _ in live)
        failed = sum(k for _, k in live)
        if len(live) < 2 or failed == 0:
            return self
        chi2 = sum(k * k * total / (failed * n) for n, k in live) - failed
        return Dispersion(self.chi2 + chi2, self.df + len(live) - 1)

    @property
    def factor(self) -> float:
        """The dispersion factor, between 1 (a baseline cleaner than
        chance does not sharpen the tests) and MAX_DISPERSION; 1 until
        there are 5 degrees of freedom to measure it on."""
        if self.df < 5:
            return 1.0
        return min(MAX_DISPERSION, max(1.0, self.chi2 / self.df))


@dataclass(frozen=True)
class BetweenSamples:
    """How much more each baseline instance's failures vary from sample to
    sample than chance allows: 1 when an instance fails at one steady rate
    over the window, larger with bursts (a few seconds of many failures on
    one instance), a drifting rate, or blips every instance shares, which
    `Dispersion` (within each sample) cannot see. The comparison with the
    baseline conditions on each sample and needs none of it; a ceiling,
    which counts the release's failures against a fixed rate, does.

    Pearson's statistic per instance against its own rate over the window,
    sum over samples (k - n K/N)^2 / (n K/N) = (N / K) sum k^2 / n - K,
    kept as running sums (N, K, sum k^2/n, samples) so no sample is stored;
    summed over instances with failures, divided by the degrees of freedom
    (samples - 1 each)."""

    hosts: tuple[tuple[str, int, int, float, int], ...] = ()  # name, requests, failed, sum k^2/n, samples

    def add(self, cells: Sequence[tuple[str, int, int]]) -> BetweenSamples:
        """Add one sample's (instance, requests, failed)."""
        kept = {name: (n, k, q, s) for name, n, k, q, s in self.hosts}
        for name, n, k in cells:
            if n <= 0:
                continue
            total, failed, squares, samples = kept.get(name, (0, 0, 0.0, 0))
            kept[name] = (total + n, failed + k, squares + k * k / n, samples + 1)
        return BetweenSamples(tuple((name, *v) for name, v in sorted(kept.items())))

    @property
    def factor(self) -> float:
        """Between 1 and MAX_DISPERSION; 1 until there are 5 degrees of freedom."""
        chi2, df = 0.0, 0
        for _, total, failed, squares, samples in self.hosts:
            if failed and samples > 1:
                chi2 += total / failed * squares - failed
                df += samples - 1
        if df < 5:
            return 1.0
        return min(MAX_DISPERSION, max(1.0, chi2 / df))


@dataclass(frozen=True)
class LeaveOneOut:
    """A proportion mixture e-process (one running sum per alternative of
    PROPORTION_RATIOS) that does not rest on any one sample: for each
    alternative, the sample that weighs most for it is left out.

    Why it stays valid, and what it adds. Let s* be any one sample. Each
    alternative's sum without its heaviest sample is at most its sum
    without s* (s*'s term is at most the heaviest, or at most 0), and the
    sums without s* are test supermartingales when every *other* sample's
    requests fail independently at most at the null rate. So the mixture
    here reaches 1/a with probability at most a even when one sample of the
    window is anything at all (a burst on an instance, a blip every host
    shares), at whatever time it comes, provided its timing does not depend
    on the other samples' failures; with no such sample, it only lowers the
    plain e-process. What it costs: one sample's evidence, which a release
    that really fails over the ceiling replaces in one more sample."""

    sums: tuple[float, ...] = ()
    tops: tuple[float, ...] = ()

    def add(self, hits: int, trials: int, null: float) -> LeaveOneOut:
        """Add one sample's `hits` of `trials` against the proportion `null`
        (the same for every sample of a window: a plan's ceiling)."""
        if trials <= 0:
            return self
        llrs = proportion_llrs(hits, trials, null, PROPORTION_RATIOS)
        if not self.sums:
            return LeaveOneOut(llrs, llrs)
        return LeaveOneOut(tuple(a + b for a, b in zip(self.sums, llrs)),
                           tuple(max(a, b) for a, b in zip(self.tops, llrs)))

    def log_e(self) -> float:
        """Log of the mixture with each alternative's heaviest sample left out."""
        if not self.sums:
            return 0.0
        return log_mean_exp([s - max(0.0, t) for s, t in zip(self.sums, self.tops)])


def tempered(log_e: float, factor: float) -> float:
    """An e-value's log divided by a dispersion `factor` (at least 1): the
    e-value raised to 1/factor. Above 1 that only lowers it, so a test that
    rejects when it reaches 1/a (a < 1) rejects no more often than the
    untempered one: the guarantee for independent requests stands whatever
    the factor was estimated from. Against overdispersed
    counts it is a quasi-likelihood correction, measured, not proved."""
    return log_e / max(1.0, factor) if log_e > 0 else log_e


def thin(ordered: Sequence[float], most: int) -> tuple[float, ...]:
    """At most `most` evenly spaced order statistics of sorted values: the
    same distribution, bounded cost. Deterministic (same input, same
    output)."""
    n = len(ordered)
    if n <= most:
        return tuple(ordered)
    return tuple(ordered[(i * n) // most + (n // most) // 2] for i in range(most))


def between_spread(shares: Sequence[tuple[int, float]]) -> float:
    """The standard deviation between groups of a proportion beyond what
    binomial chance explains (method of moments): `shares` are (trials,
    proportion) per group. 0 with fewer than two groups."""
    groups = [(n, p) for n, p in shares if n > 0]
    if len(groups) < 2:
        return 0.0
    total = sum(n for n, _ in groups)
    mean = sum(n * p for n, p in groups) / total
    observed = sum((p - mean) ** 2 for _, p in groups) / (len(groups) - 1)
    chance = sum(mean * (1 - mean) / n for n, _ in groups) / len(groups)
    return math.sqrt(max(0.0, observed - chance))


# The first judged window's part of the release's budget; the rest is
# spread evenly over the others. The first window (a canary's 1 % step) has
# the least traffic, and it is where a bad release must be caught; a later
# window sees 5 to 50 times more requests, where a level two or three times
# smaller costs a test about one nat of evidence (log 3), which that much
# traffic supplies in seconds.
FIRST_WINDOW_SHARE = 0.5


@dataclass(frozen=True)
class Budget:
    """One false-alarm budget per release: `alpha` spent over the plan's
    judged windows (FIRST_WINDOW_SHARE to the first, the rest evenly), each
    window's part split across the tests by SHARES. By the union bound the
    chance that any test fails a good release in any window is at most
    alpha (each test keeps its part; see the module's note on the two
    approximate corrections). `window`: which one this is (0: the first)."""

    alpha: float = 0.01
    windows: int = 1
    window: int = 0

    def per_window(self) -> float:
        if self.windows <= 1:
            return self.alpha
        if self.window == 0:
            return self.alpha * FIRST_WINDOW_SHARE
        return self.alpha * (1 - FIRST_WINDOW_SHARE) / (self.windows - 1)

    def test(self, name: str, parts: int = 1) -> float:
        """The level of one test (of `parts` that share its slot)."""
        return self.per_window() * SHARES[name] / max(1, parts)
