"""Before/after table of the replayed cases: {before,after}/runs.jsonl(.gz) beside this file, one
record a case (its soak.txt beside it, named by the case's folder).

Run from the repository root: python3 bench/results/2026-12-07-5dcaaf7-replays/summary.py"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, "bench")
from _common import read_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
SIDES = ("before", "after")


Result = tuple[object, object, list[str], int, int]


def results(side: str) -> dict[str, Result]:
    """(exit, resume exit, violations, unexcused failed requests, requests sent) of each replay, by case."""
    out: dict[str, Result] = {}
    for line in read_text(ROOT / side / "runs.jsonl").splitlines():
        run = json.loads(line)
        outcome, clients = run["outcome"], run["outcome"].get("clients") or {}
        case = f"seed{run['schedule']['seed']}-run{run['schedule']['index']}"
        out[case] = (outcome.get("exit"), outcome.get("resume_exit"), run["violations"], clients.get("foreign", 0),
                     clients.get("sent", 0))
    return out


def main() -> None:
    got = {side: results(side) for side in SIDES}
    for side in SIDES:
        runs = list(got[side].values())
        print(f"{side}: {len(runs)} replayed, {sum(bool(r[2]) for r in runs)} with violations, "
              f"{sum(r[3] for r in runs)} failed requests nothing excuses, {sum(r[4] for r in runs):,} requests sent")
    cases = sorted(set(got["before"]) | set(got["after"]))
    pairs = [(c, got["before"].get(c), got["after"].get(c)) for c in cases]
    pairs = [(c, b, a) for c, b, a in pairs if b is not None and a is not None]
    differ = [(c, b[:2], a[:2]) for c, b, a in pairs if b[:2] != a[:2]]
    print(f"pairs with the same exits (run -> resume): {len(pairs) - len(differ)}; different: {len(differ)}")
    for case, before, after in differ:
        print("  differ:", case, before, after)
    for side in SIDES:
        for case, r in got[side].items():
            if r[2]:
                print(f"  {side} {case}: exits {r[0]} -> {r[1]}; {'; '.join(r[2])}")


if __name__ == "__main__":
    main()
