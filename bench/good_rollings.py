#!/usr/bin/env python3
"""Good rolling releases of the shipped example on fast real hosts, under
client load and a busy machine: how many are wrongly rolled back, this
tree against another, run by run alternately.

    sudo ROLLOUT_SANDBOX_NET=0 python3 bench/good_rollings.py --runs 6 --against /tmp/wt-before --busy 2

Boots the sandbox (6 agents, one nginx LB; the agents answer in about 5 ms,
which nginx logs in whole milliseconds). Each run ships
examples/rolling.yaml to every host, alternately 2.0.0 and 1.0.0, both
good releases (the sandbox's defaults), under --rate req/s through nginx
(tests/load.py), or with --curl under docs/sandbox.md's load (one curl after
another, as fast as they go; its failures are not counted), with --busy
processes spinning on this machine's cores (a shared host's noisy
neighbours). A run that rolled back or failed
(exit 3 or 4) was stopped wrongly. With --against, each run is made by
both trees, in alternating order, so they meet the same machine load.
Raw output: one JSON line per run (prefix `run `) and a summary, under
bench/results/.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Fleet, alternating, sandbox_module, start, tree_env, trees  # noqa: E402
from load import SteadyLoad  # noqa: E402

PLAN = ROOT / "examples" / "rolling.yaml"


async def one(fleet: Fleet, tree: Path, label: str, n: int, version: str, args: argparse.Namespace,
              work: Path) -> dict:
    journal = work / f"{label}-{n}.jsonl"
    url = f"http://{fleet.lb_ip}/v1/chat"
    curl = subprocess.Popen(["bash", "-c", f"while :; do curl -s -o /dev/null {url}; done"]) if args.curl else None
    load = None if args.curl else SteadyLoad(url, rate=args.rate, max_seconds=900)
    async with load or contextlib.nullcontext():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "console", "--plan", str(PLAN), "--inventory", str(fleet.inventory),
            "--release", version, "--headless", "--output", "json", "--record", str(journal), cwd=tree,
            env=tree_env(tree), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            limit=64 * 2**20)
        out, err = await proc.communicate()
    if curl is not None:
        curl.kill()
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    finished = next((e for e in events if e["kind"] == "run_finished"), {})
    fails = [e for e in events if e["kind"] == "gate" and e["verdict"] == "fail"]
    return {"run": n, "tree": label, "release": version, "rc": proc.returncode, "outcome": finished.get("outcome"),
            "duration": finished.get("duration"), "fail_reasons": fails[0]["reasons"] if fails else [],
            "load": {"sent": load.result.sent, "failed": len(load.result.failed),
                     "due": round(load.result.rate * load.result.duration)} if load else None,
            "stderr": err.decode(errors="replace")[-500:] if proc.returncode not in (0, 3, 4) else ""}


def clients(rows: list[dict]) -> str:
    counted = [r["load"] for r in rows if r["load"]]
    return f"{sum(c['failed'] for c in counted)} of {sum(c['sent'] for c in counted)}" if counted else "not counted"


def summary(rows: list[dict]) -> None:
    print("\n| tree | runs | succeeded (exit 0) | wrongly rolled back (exit 3/4) | other | client requests failed |")
    print("|---|---|---|---|---|---|")
    for label in sorted({r["tree"] for r in rows}):
        mine = [r for r in rows if r["tree"] == label]
        ok, stopped = sum(r["rc"] == 0 for r in mine), sum(r["rc"] in (3, 4) for r in mine)
        print(f"| {label} | {len(mine)} | {ok} | {stopped} | {len(mine) - ok - stopped} "
              f"| {clients(mine)} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6, help="runs per tree")
    ap.add_argument("--against", type=Path, help="another source tree, run alternately with this one")
    ap.add_argument("--busy", type=int, default=0, help="processes spinning on this machine's cores")
    ap.add_argument("--rate", type=float, default=30.0)
    ap.add_argument("--curl", action="store_true", help="docs/sandbox.md's curl loop instead of --rate")
    args = ap.parse_args()
    sb = sandbox_module()
    start("good_rollings", f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    sides = trees(ROOT, args.against)
    fleet = Fleet(sb, 6)
    fleet.reset_agents()
    work = Path(tempfile.mkdtemp(prefix="good_rollings-"))  # journals: not raw output
    print(f"journals in {work}; {args.busy} busy process(es); "
          + ("a curl loop" if args.curl else f"{args.rate:g} req/s"))
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy)]
    rows: list[dict] = []
    try:
        for n in range(1, args.runs + 1):
            for label in alternating(list(sides), n):
                version = ("2.0.0", "1.0.0")[len(rows) % 2]  # the fleet is on the other: a change each run
                row = asyncio.run(one(fleet, sides[label], label, n, version, args, work))
                rows.append(row)
                print("run " + json.dumps(row), flush=True)
    finally:
        for p in spinners:
            p.kill()
        summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
