"""How much of +2 points of errors at a 1 % step could ANY test of the
error counts catch within the window? An oracle bound for docs/judge.md.

On bench/judge_power.py's SIMULATED traffic (its generator, the same
model), one fixed-horizon test at the window's maximum: the release's
failures against their expectation if it failed like its baseline (its
share of each sample's failures: a sum of binomials, taken as Poisson),
at the error comparison's level in the seed canary's first window. It
knows the horizon in advance, ignores overdispersion and looks once: a
sequential judge that looks every sample cannot beat it by much. Uses
scipy.stats (the judge itself does not).

    python3 bench/judge_error_oracle.py --releases 200
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.stats import poisson

from _common import start
from judge_power import CASES, SAMPLE, Release, WindowTraffic

LEVELS = (0.0025, 0.005)  # the error comparison's part of the first window; the whole first window


def stopped(releases: int, horizon: float, seed: int) -> dict[float, int]:
    """Releases (+2 points, 1 % step) the oracle stops at each level."""
    out = dict.fromkeys(LEVELS, 0)
    case = next(i for i, c in enumerate(CASES) if c.extra_errors)
    for trial in range(releases):
        rng = np.random.default_rng([seed, case, trial])
        traffic = WindowTraffic(Release(rng, CASES[case]), rng, 0.01, 0.0, 1, {0: -10.0})
        failed, expected = 0, 0.0
        for n in range(int(horizon / SAMPLE)):
            s = traffic.sample(n)
            c, b = sum(h.requests for h in s.canary), sum(h.requests for h in s.baseline)
            kc, kb = sum(h.failed for h in s.canary), sum(h.failed for h in s.baseline)
            failed += kc
            expected += (kc + kb) * c / (c + b) if c + b else 0.0
        p = poisson.sf(failed - 1, expected)
        for level in LEVELS:
            out[level] += p < level
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--releases", type=int, default=200)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    start("judge_error_oracle", folder_suffix="-judge")
    print("# SIMULATED: bench/judge_power.py's traffic, +2 points of errors at a 1 % step of 100 req/s")
    print(f"# {args.releases} releases; seed {args.seed}\n")
    print("| horizon s | " + " | ".join(f"stopped at level {x:g}" for x in LEVELS) + " |")
    print("|---|" + "---|" * len(LEVELS))
    for horizon in (900.0, 1800.0):
        got = stopped(args.releases, horizon, args.seed)
        print(f"| {horizon:g} | " + " | ".join(f"{100 * got[x] / args.releases:.1f}%" for x in LEVELS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
