#!/usr/bin/env python3
"""What any judge could do at the seed canary's 1 % step: the information
bound behind three of issue 22's targets, independent of this judge.

At 100 req/s a 1 % step sends about 1 request a second to the release. How
many requests must any test see before it can:

- pass a good release (failing like its baseline) while letting at most
  `beta` (the plan's 1 - confidence, 1 % in the seed's plan) of releases a
  threshold worse through, half the time (the median) and 95 % of the time
  (at most 5 % inconclusive);
- stop a release 2 points worse than its baseline 99 % of the time, at the
  false-alarm level the judge's budget gives its comparison with the
  baseline in the first window (1 % x 1/2 x 0.45 = 0.225 %)?

The test here is the best there is for each question (Neyman-Pearson:
count the failures in a fixed number of requests and compare with a cut-off),
and it is given what no judge has: the baseline's exact rate, failures that
are independent (no bursts, no retries, no drift), and one look at the end
(no anytime validity). The judge needs more on all four counts; the
benchmark (bench/judge_power.py) measures how much more. The bad rate is
the judge's own alternative (strategies/analysis.hypotheses: a threshold
worse, and at least twice the threshold).

Pure arithmetic (scipy's binomial), a second to run:

    python3 bench/judge_bounds.py
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import start  # noqa: E402


def fewest_to_pass(good: float, bad: float, beta: float, share: float) -> tuple[int, int]:
    """(n, k): the fewest requests n, and the largest failure count k, such
    that passing on at most k failures passes a bad release with chance at
    most `beta` and a good one with chance at least `share`."""
    for n in range(5, 100_000, 5):
        k = int(binom.ppf(beta, n, bad))
        while k >= 0 and binom.cdf(k, n, bad) > beta:
            k -= 1
        if k >= 0 and binom.cdf(k, n, good) >= share:
            return n, k
    raise ValueError("no n below 100,000")


def fewest_to_stop(good: float, bad: float, alpha: float, power: float) -> tuple[int, int]:
    """(n, k): the fewest requests n, and the failure count k stopped on,
    such that a good release is stopped with chance at most `alpha` and a
    bad one with chance at least `power`."""
    for n in range(5, 100_000, 5):
        k = int(binom.isf(alpha, n, good)) + 1
        while binom.sf(k - 1, n, good) > alpha:
            k += 1
        if binom.sf(k - 1, n, bad) >= power:
            return n, k
    raise ValueError("no n below 100,000")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1.0, help="requests a second to the release (1 %% of 100 req/s)")
    p.add_argument("--baseline", type=float, default=0.005, help="the baseline's failure rate (the benchmark's mean)")
    p.add_argument("--threshold", type=float, default=0.01, help="the plan's error_rate (the seed's)")
    p.add_argument("--beta", type=float, default=0.01, help="1 - confidence (the seed plan's default 99 %%)")
    p.add_argument("--alpha", type=float, default=0.01 * 0.5 * 0.45,
                   help="the comparison's false-alarm level in the first window")
    p.add_argument("--max-window", type=float, default=900.0, help="seconds a window may extend to")
    args = p.parse_args(argv)
    start("judge_bounds", folder_suffix="-judge")
    good = args.baseline
    bad = min(0.99, max(good + args.threshold, 2 * args.threshold))
    worse = good + 0.02
    rows = [
        ("a good release passes, median", "<= 8 min", fewest_to_pass(good, bad, args.beta, 0.5),
         f"good {good:.1%}, bad {bad:.1%} passed <= {args.beta:.0%}"),
        ("a good release passes, 95 % (<= 5 % inconclusive)", f"<= {args.max_window / 60:g} min (max_window)",
         fewest_to_pass(good, bad, args.beta, 0.95), f"good {good:.1%}, bad {bad:.1%} passed <= {args.beta:.0%}"),
        ("+2 points stopped, 99 %", f"<= {args.max_window / 60:g} min (before the 5 % step)",
         fewest_to_stop(good, worse, args.alpha, 0.99), f"good {good:.1%} stopped <= {args.alpha:.3%}, bad {worse:.1%}"),
    ]
    print(f"# {args.rate:g} req/s to the release; the best fixed-sample test, given the baseline's exact rate, "
          f"independent failures and one look\n")
    print("| question | target | fewest requests | minutes at this rate | cut-off (failures) | rates and risks |")
    print("|---|---|---|---|---|---|")
    for question, target, (n, k), note in rows:
        cut = f"pass on <= {k}" if "passes" in question else f"stop on >= {k}"
        print(f"| {question} | {target} | {n} | {n / args.rate / 60:.1f} | {cut} | {note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
