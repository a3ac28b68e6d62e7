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

# Rate ratios the error test mixes over (equal weights), fixed in advance.
# With the seed's error threshold (1 point) a release "a threshold worse"
# than a baseline at rate p0 has the ratio 1 + 0.01 / p0: 2 at p0 = 1 %,
# 3 at 0.5 %, 11 at 0.1 %; 30 and 100 cover a release that fails outright
# (two or three failures in a handful of requests are then enough).
RATE_RATIOS = (1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0)
# Alternatives of the one-sample proportion tests (ceilings, the tail
# share): the true proportion this many times the null's.
PROPORTION_RATIOS = (1.5, 2.0, 3.0, 5.0)

# How a window's share of the false-alarm budget is split across the tests
# that can fail a release. The comparison of error counts gets the most: it
# is the test a canary exists for. Thresholds on readings (health, quality,
# CPU) are not statistics and spend none of it.
SHARES = {
    "errors_vs_baseline": 0.40,
    "error_ceiling": 0.10,  # the plan's error_rate and every error alert rule that acts
    "tail_vs_baseline": 0.25,
    "latency_shift": 0.10,
    "p95_ceiling": 0.15,  # the plan's p95_latency and every p95 alert rule that acts
}


def log_mean_exp(values: Sequence[float]) -> float:
    """log((1/k) * sum(exp(v))), without overflow."""
    top = max(values)
    if top == float("-inf"):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values) / len(values))


def conditional_llrs(judged_failed: int, judged_requests: int, base_failed: int, base_requests: int,
                     ratios: Sequence[float] = RATE_RATIOS) -> tuple[float, ...]:
    """Log-likelihood ratios of one sample for each rate ratio r.

    Given the failures of both sides in the sample (K), and each side's
    requests, the release's count is Binomial(K, s) when both fail at the
    same rate (s: the release's share of the requests), whatever that rate
    is. If the release fails r times as often, it is Binomial(K, q) with
    q = s r / (s r + 1 - s). No baseline rate is estimated: a rate that
    drifts, or a blip both sides see, cancels within the sample."""
    k = judged_failed + base_failed
    if k == 0 or judged_requests <= 0 or base_requests <= 0:
        return tuple(0.0 for _ in ratios)
    s = judged_requests / (judged_requests + base_requests)
    out = []
    for r in ratios:
        q = s * r / (s * r + 1 - s)
        out.append(judged_failed * math.log(q / s) + base_failed * math.log((1 - q) / (1 - s)))
    return tuple(out)


def proportion_log_e(hits: int, trials: int, null: float, ratios: Sequence[float] = PROPORTION_RATIOS) -> float:
    """Log of a mixture e-process against "the proportion is at most
    `null`": Bernoulli likelihood ratios of p1 = null * ratio over null,
    equal weights. For any true proportion below `null` each ratio is a
    supermartingale (its expectation per trial falls with p), so the test
    holds for the whole composite null. Depends on the totals alone."""
    if trials <= 0 or not 0.0 < null < 1.0:
        return 0.0
    misses = trials - hits
    logs = []
    for ratio in ratios:
        p1 = min(0.999, null * ratio)
        if p1 <= null:
            continue
        logs.append(hits * math.log(p1 / null) + misses * math.log((1 - p1) / (1 - null)))
    return log_mean_exp(logs) if logs else 0.0


# The most the tests are widened: beyond it the baseline is erratic, most
# often because one of its instances is dead or sick (failing most of its
# requests), which is that instance's alert, not a reason to go blind.
MAX_DISPERSION = 4.0


@dataclass(frozen=True)
class Dispersion:
    """Pearson's dispersion of the baseline's failures over its cells (one
    cell per baseline host per sample): 1 when failures are as random as a
    binomial, larger when they come in clusters, differ between hosts or
    drift between samples. Kept as running sums: X^2 = (sum k^2/n - p K) /
    (p (1 - p)) with p = K / N."""

    squares: float = 0.0  # sum of k^2 / n over cells
    failed: int = 0
    requests: int = 0
    cells: int = 0

    def add(self, cells: Sequence[tuple[int, int]]) -> Dispersion:
        """Add (requests, failed) cells; empty cells carry nothing."""
        squares, failed, requests, count = self.squares, self.failed, self.requests, self.cells
        for n, k in cells:
            if n > 0:
                squares += k * k / n
                failed += k
                requests += n
                count += 1
        return Dispersion(squares, failed, requests, count)

    @property
    def factor(self) -> float:
        """The dispersion factor, at least 1 (a baseline cleaner than
        binomial does not sharpen the tests). 1 until there are 5 cells and
        a failure to measure it on."""
        if self.cells < 5 or self.failed == 0 or self.failed == self.requests:
            return 1.0
        p = self.failed / self.requests
        chi2 = (self.squares - p * self.failed) / (p * (1 - p))
        return min(MAX_DISPERSION, max(1.0, chi2 / (self.cells - 1)))


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


@dataclass(frozen=True)
class Budget:
    """One false-alarm budget per release: `alpha` spread evenly over the
    plan's judged windows, each window's part split across the tests by
    SHARES. By the union bound the chance that any test fails a good
    release in any window is at most alpha (each test keeps its part; see
    the module's note on the two approximate corrections)."""

    alpha: float = 0.01
    windows: int = 1

    def per_window(self) -> float:
        return self.alpha / max(1, self.windows)

    def test(self, name: str, parts: int = 1) -> float:
        """The level of one test (of `parts` that share its slot)."""
        return self.per_window() * SHARES[name] / max(1, parts)
