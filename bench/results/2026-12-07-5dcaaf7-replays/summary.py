"""Before/after table of the replayed cases: {before,after}/<case>/runs.jsonl(.gz) beside this file.

Run from the repository root: python3 bench/results/2026-12-07-5dcaaf7-replays/summary.py"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, "bench")
from _common import read_text  # noqa: E402

ROOT = Path(__file__).resolve().parent
SIDES = ("before", "after")


def result(side: str, case: str) -> tuple[object, object, list[str], int, int] | None:
    """(exit, resume exit, violations, unexcused failed requests, requests sent) of one replay."""
    path = ROOT / side / case / "runs.jsonl"
    if not path.exists() and not path.with_name("runs.jsonl.gz").exists():
        return None
    run = json.loads(read_text(path).splitlines()[-1])
    outcome, clients = run["outcome"], run["outcome"].get("clients") or {}
    return (outcome.get("exit"), outcome.get("resume_exit"), run["violations"], clients.get("foreign", 0),
            clients.get("sent", 0))


def main() -> None:
    cases = sorted({p.name for side in SIDES for p in (ROOT / side).iterdir()})
    got = {(side, case): result(side, case) for side in SIDES for case in cases}
    for side in SIDES:
        runs = [r for (s, _), r in got.items() if s == side and r is not None]
        print(f"{side}: {len(runs)} replayed, {sum(bool(r[2]) for r in runs)} with violations, "
              f"{sum(r[3] for r in runs)} failed requests nothing excuses, {sum(r[4] for r in runs):,} requests sent")
    pairs = [(c, got[("before", c)], got[("after", c)]) for c in cases]
    pairs = [(c, b, a) for c, b, a in pairs if b is not None and a is not None]
    differ = [(c, b[:2], a[:2]) for c, b, a in pairs if b[:2] != a[:2]]
    print(f"pairs with the same exits (run -> resume): {len(pairs) - len(differ)}; different: {len(differ)}")
    for case, before, after in differ:
        print("  differ:", case, before, after)
    for (side, case), r in got.items():
        if r is not None and r[2]:
            print(f"  {side} {case}: exits {r[0]} -> {r[1]}; {'; '.join(r[2])}")


if __name__ == "__main__":
    main()
