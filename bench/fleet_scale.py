#!/usr/bin/env python3
"""Controller cost versus fleet size, on the SIMULATED fleet (in-process).

    python3 bench/fleet_scale.py [--sizes 100,1000,10000] [--repeats 3] [--time-scale 1000] [--rps 1]

For each size: a rolling plan in 10 % batches and a canary (1, 10, 50, 100 %
with 10 s analyses), each run as its own `python3 -m console ... --headless
--output json --record FILE` subprocess so peak RSS and CPU (os.wait4) belong
to that run alone. Overhead = wall time - the plan's inherent simulated
waits / time-scale (the inherent waits are computed from the plan and the
simulator's fixed costs; see inherent()).

sim_rps is kept low (default 1 req/s simulated) on purpose: the simulator
synthesises rps x time-scale requests per wall second, each costing O(pool
size) (SimFleet._serve copies and shuffles the whole pool), which is
simulator cost, not controller cost. --rps lets you see that effect.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fmt, run_child, start, stats  # noqa: E402

# Deadlines are simulated seconds: at --time-scale 1000 a 60 s deadline is 60 ms of wall
# time, which event-loop load alone can exceed at 1,000+ hosts. Keep them long: the
# 10,000-host canary updates 4,000 and then 5,000 instances at once, and one pass of the
# event loop over them (their events journalled) takes seconds of wall time, so 3600 s
# (3.6 s of wall time) expired before the first health check ran (seen at 9ca24c9, twice).
# A deadline is only a bound: a run that meets it waits no longer for a longer one.
HEALTH = {"interval": "1s", "passes": 2, "deadline": "86400s", "timeout": "2s"}
INTERVAL = 5.0
ANALYSIS = 10.0
CANARY_STEPS = [{"set_weight": 1}, {"analysis": f"{ANALYSIS:g}s"}, {"set_weight": 10}, {"analysis": f"{ANALYSIS:g}s"},
                {"set_weight": 50}, {"analysis": f"{ANALYSIS:g}s"}, {"set_weight": 100}]
# SimFleet fixed costs (inventory/simfleet.py): lb_apply sleeps 0.05 s, each
# deploy command 0.3 s, restart 2.0 s; health probes ~latency_ms (default small).
RELOAD, DEPLOY, RESTART = 0.05, 0.3, 2.0


def write_inventory(path: Path, hosts: int, rps: float) -> None:
    doc = {"all": {"vars": {"rollout_simulated": True, "sim_releases": {"1.0.0": {}, "2.0.0": {}}},
                   "children": {"agents": {"hosts": {f"agent-{n:05d}": None for n in range(1, hosts + 1)}},
                                "lb": {"hosts": {"lb-01": {"sim_rps": rps}}}}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_plan(path: Path, strategy: str) -> None:
    doc = {"strategy": strategy, "version": "2.0.0", "health": HEALTH, "drain": {"timeout": "600s"},
           "rolling": {"batch": "10%", "interval": f"{INTERVAL:g}s"},
           "canary": {"sample_interval": "2s", "steps": CANARY_STEPS},
           "thresholds": {"error_rate": "5%", "persistence": 2, "min_requests": 0}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def inherent(strategy: str) -> float:
    """Lower bound of simulated seconds the plan must wait, whatever the fleet size
    (batches run their instances in parallel): per replacement wave two reloads,
    deploy, restart, and health passes-1 intervals; plus batch intervals or analyses."""
    per_wave = 2 * RELOAD + DEPLOY + RESTART + (HEALTH["passes"] - 1) * 1.0
    if strategy == "rolling":
        batches = 10
        return batches * per_wave + (batches - 1) * INTERVAL
    # canary: one reload per weight step, analyses, and at least one deploy wave
    weights = sum(1 for s in CANARY_STEPS if "set_weight" in s)
    analyses = sum(ANALYSIS for s in CANARY_STEPS if "analysis" in s)
    return weights * RELOAD + analyses + per_wave


def one_run(tmp: Path, hosts: int, strategy: str, scale: float, rps: float, timeout: float) -> dict:
    inv, plan = tmp / f"inv-{hosts}.yaml", tmp / f"{strategy}.yaml"
    if not inv.exists():
        write_inventory(inv, hosts, rps)
    write_plan(plan, strategy)
    journal = tmp / f"j-{hosts}-{strategy}-{time.monotonic_ns()}.jsonl"
    out = tmp / "out.jsonl"
    with open(out, "wb") as f:
        r = run_child([sys.executable, "-m", "console", "--plan", str(plan), "--inventory", str(inv),
                       "--headless", "--output", "json", "--time-scale", f"{scale:g}", "--record", str(journal)],
                      timeout=timeout, stdout=f)
    lines = out.read_bytes().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith(b"{") else {}
    finished = next((json.loads(line) for line in reversed(lines) if b'"run_finished"' in line), {})
    r["outcome"] = result.get("outcome", "timeout" if r["timeout"] else "?")
    r["sim_duration"] = finished.get("duration")
    r["events"] = len(lines)
    r["journal_mb"] = journal.stat().st_size / 1e6 if journal.exists() else 0.0
    r["inherent_wall"] = inherent(strategy) / scale
    r["overhead"] = r["wall"] - r["inherent_wall"]
    journal.unlink(missing_ok=True)
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-large", type=int, default=1, help="repeats for sizes >= 10000")
    ap.add_argument("--time-scale", type=float, default=1000.0)
    ap.add_argument("--rps", type=float, default=1.0, help="simulated client requests/s at the LB")
    ap.add_argument("--timeout", type=float, default=180.0, help="per run, seconds")
    ap.add_argument("--json", help="write raw results here")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows, raw = [], {}
    start("fleet_scale")
    with tempfile.TemporaryDirectory(prefix="fleet-scale-") as d:
        tmp = Path(d)
        for strategy in ("rolling", "canary"):
            for hosts in sizes:
                n = args.repeats if hosts < 10000 else args.repeats_large
                runs = []
                for i in range(n):
                    r = one_run(tmp, hosts, strategy, args.time_scale, args.rps, args.timeout)
                    runs.append(r)
                    print(f"{strategy:7s} {hosts:6d} run {i + 1}: wall {r['wall']:.2f}s cpu {r['cpu']:.2f}s "
                          f"rss {r['maxrss_mb']:.0f}MiB overhead {r['overhead']:.2f}s outcome {r['outcome']} "
                          f"rc {r['rc']} events {r['events']} journal {r['journal_mb']:.1f}MB", flush=True)
                    if r["timeout"] or r["rc"] not in (0,):
                        print("   stderr:", r["stderr"][-600:], flush=True)
                    if r["timeout"]:
                        break
                raw[f"{strategy}-{hosts}"] = runs
                ok = [r for r in runs if not r["timeout"]]
                rows.append((strategy, hosts, ok, runs))
    print("\n| strategy | hosts | wall | overhead (wall - inherent) | CPU | peak RSS | events | outcome |")
    print("|---|---|---|---|---|---|---|---|")
    for strategy, hosts, ok, _runs in rows:
        if not ok:
            print(f"| {strategy} | {hosts:,} | > {args.timeout:.0f} s (timed out) | | | | | timeout |")
            continue
        print(f"| {strategy} | {hosts:,} | {fmt([r['wall'] for r in ok])} | {fmt([r['overhead'] for r in ok])} | "
              f"{fmt([r['cpu'] for r in ok])} | {fmt([r['maxrss_mb'] for r in ok], 'MiB', 0)} | "
              f"{ok[0]['events']} | {','.join(sorted({r['outcome'] for r in ok}))} |")
    print("\nGrowth (median ratios):")
    for strategy in ("rolling", "canary"):
        by = {h: ok for s, h, ok, _ in rows if s == strategy and ok}
        hs = sorted(by)
        for a, b in zip(hs, hs[1:]):
            def m(h, k, by=by):
                return stats([r[k] for r in by[h]])["median"]
            print(f"  {strategy} {b:,}/{a:,} hosts (x{b / a:g}): overhead x{m(b, 'overhead') / m(a, 'overhead'):.1f}, "
                  f"CPU x{m(b, 'cpu') / m(a, 'cpu'):.1f}, peak RSS x{m(b, 'maxrss_mb') / m(a, 'maxrss_mb'):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
