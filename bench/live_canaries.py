#!/usr/bin/env python3
"""Good canary releases on heterogeneous real hosts: how many are wrongly
stopped, and what `canary.baseline: matched` costs and buys.

    sudo ROLLOUT_SANDBOX_NET=4 python3 bench/live_canaries.py --runs 10 --personality hetero \\
        --baseline stable
    sudo ROLLOUT_SANDBOX_NET=4 python3 bench/live_canaries.py --runs 4 --personality warmup \\
        --baseline both

Boots the sandbox (6 agents, one nginx LB). Every run ships a *good*
release: the new version behaves exactly like the old one (same
personality keys, `console sandbox release --behaviour`, see
docs/judge-live.md), so any stop is a false alarm. Per run: every agent is
put back on 1.0.0 and restarted, the bench waits out the personality's
warm-up on them (an old fleet has been up for a while), then runs the console
headless (canary: --weight for --analysis, then 100 %) under --rate req/s
of client load through nginx (tests/load.py). It records what the console
said (exit code, outcome, the windows' verdicts and reasons, duration) and
what the clients saw. `--baseline both` alternates stable and matched run
by run, so the two meet the same machine load.

A run counts as wrongly stopped when the console rolled back or failed
(exit 3 or 4), inconclusive when it asked a human (exit 7). Raw output: one
JSON line per run (prefix `run `) and a summary, under bench/results/.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, Fleet, fmt, sandbox_module, start  # noqa: E402
from load import SteadyLoad  # noqa: E402

PERSONALITIES = {
    # hosts differ (lognormal sigma 0.15 per host), each request varies, a background failure
    # rate of 0.2 % with bursts (about 0.3 % more: at 0.3 every 60 s they added about 1 %, and a
    # good release took more than 180 s to pass at a 1 % threshold), and a restarted unit is
    # slower for its first 20 s
    "hetero": {"latency_ms": 20, "host_latency_spread": 0.15, "latency_sigma": 0.3, "error_rate": 0.002,
               "burst_every": 120.0, "burst_seconds": 2.0, "burst_error_rate": 0.2,
               "warmup_seconds": 20.0, "warmup_factor": 2.0},
    # only the warm-up: a restarted unit is 3x slower at first, easing to 1x over 60 s
    "warmup": {"latency_ms": 40, "warmup_seconds": 60.0, "warmup_factor": 3.0},
    "none": {},
}


def ssh(fleet: Fleet, ip: str, command: str) -> None:
    import subprocess
    proc = subprocess.run([*fleet.ssh_argv(ip), command], capture_output=True, text=True, timeout=60)
    if proc.returncode:
        raise SystemExit(f"ssh {ip} {command!r}: {proc.stderr.strip()}")


def reset(fleet: Fleet, behaviour: dict, warm: float) -> None:
    """The LB's file as `up` wrote it (every agent in one pool: a run
    stopped half-way may have left a canary out), every agent on 1.0.0
    with `behaviour`, restarted, then warm."""
    from inventory.nginx_workers import reload_and_settle
    from sandbox import provision
    provision.load_balancer(fleet.sb.host_root("lb-01", state_dir=fleet.state_dir), list(fleet.agents.values()))
    ssh(fleet, fleet.lb_ip, "rm -rf /var/lib/rollout-console/locks && nginx -t -q && " + reload_and_settle())
    fleet.sb.write_release(None, "1.0.0", behaviour)
    for ip in fleet.agents.values():
        ssh(fleet, ip, "systemctl stop agent@blue agent@green; systemctl reset-failed 'agent@*';"
                       " /opt/agent/bin/install-release 1.0.0 >/dev/null && systemctl restart agent@main")
    time.sleep(warm)  # an old fleet has been serving a while: the warm-up is a span of time, not an event


def plan(path: Path, version: str, baseline: str, weight: float, analysis: str, max_window: str) -> Path:
    import yaml
    doc = {"strategy": "canary", "version": version,
           "health": {"interval": "0.5s", "passes": 2, "deadline": "30s", "timeout": "2s"},
           "drain": {"timeout": "10s"},
           "canary": {"sample_interval": "5s", "baseline": baseline,
                      "steps": [{"set_weight": weight}, {"analysis": analysis}, {"set_weight": 100}]},
           "thresholds": {"error_rate": "1%", "persistence": 2, "min_requests": 20, "max_window": max_window}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def one(fleet: Fleet, n: int, args: argparse.Namespace, baseline: str, work: Path) -> dict:
    behaviour = PERSONALITIES[args.personality]
    reset(fleet, behaviour, float(behaviour.get("warmup_seconds", 0.0)) + 2.0)
    version = f"2.0.{n}"
    fleet.sb.write_release(None, version, behaviour)  # a good release: the same behaviour
    p = plan(work / f"plan-{n}.yaml", version, baseline, args.weight, args.analysis, args.max_window)
    started = time.monotonic()
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=args.rate, max_seconds=1800) as load:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "console", "--plan", str(p), "--inventory", str(fleet.inventory),
            "--headless", "--output", "json", "--record", str(work / f"j-{n}.jsonl"), cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=64 * 2**20)
        out, err = await proc.communicate()
    wall = time.monotonic() - started
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    finished = next((e for e in events if e["kind"] == "run_finished"), {})
    gates = [e for e in events if e["kind"] == "gate" and e["final"]]
    fails = [e for e in events if e["kind"] == "gate" and e["verdict"] == "fail"]
    step = next((e["at"] for e in events if e["kind"] == "step_started"), None)
    split = next((e["at"] for e in events if e["kind"] == "traffic" and e["weights"].get("canary")), None)
    return {"run": n, "baseline": baseline, "personality": args.personality, "rc": proc.returncode,
            "outcome": finished.get("outcome"), "duration": finished.get("duration"), "wall": round(wall, 1),
            # what the first set_weight step took, from its start to nginx serving the canary's share
            "first_step": round(split - step, 3) if split is not None and step is not None else None,
            "windows": [{"verdict": g["verdict"], "at": g["at"], "seen": g["seen"], "extended": g["extended"],
                         "reasons": g["reasons"]} for g in gates],
            "fail_reasons": fails[0]["reasons"] if fails else [],
            "alerts": [{k: e.get(k) for k in ("tier", "metric", "where", "instance")}
                       for e in events if e["kind"] == "alert"],
            "clients": finished.get("clients"), "load": {"sent": load.result.sent, "failed": len(load.result.failed),
                                                         "due": round(load.result.rate * load.result.duration)},
            "stderr": err.decode(errors="replace")[-500:] if proc.returncode not in (0, 3, 4, 7) else ""}


def summary(rows: list[dict]) -> None:
    print("\n| baseline | runs | passed (exit 0) | wrongly stopped (exit 3/4) | inconclusive (exit 7) | other "
          "| run duration (console) | first window's verdict at | first set_weight step |")
    print("|---|---|---|---|---|---|---|---|---|")
    for base in sorted({r["baseline"] for r in rows}):
        mine = [r for r in rows if r["baseline"] == base]
        count = {c: sum(1 for r in mine if r["rc"] == c) for c in (0, 3, 4, 7)}
        other = len(mine) - sum(count.values())
        first = [r["windows"][0]["at"] for r in mine if r["windows"]]
        print(f"| {base} | {len(mine)} | {count[0]} | {count[3] + count[4]} | {count[7]} | {other} "
              f"| {fmt([r['duration'] for r in mine if r['duration']])} | {fmt(first)} "
              f"| {fmt([r['first_step'] for r in mine if r['first_step'] is not None])} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--baseline", choices=["stable", "matched", "both"], default="stable")
    ap.add_argument("--personality", choices=sorted(PERSONALITIES), default="hetero")
    ap.add_argument("--weight", type=float, default=10.0)
    ap.add_argument("--analysis", default="60s")
    ap.add_argument("--max-window", default="180s")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--keep", action="store_true", help="leave the fleet up at the end")
    args = ap.parse_args()
    sb = sandbox_module()
    start(f"live_canaries-{args.personality}-{args.baseline}",
                f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    print(f"personality {args.personality}: {json.dumps(PERSONALITIES[args.personality])}")
    fleet = Fleet(sb, 6)
    work = Path(tempfile.mkdtemp(prefix="live_canaries-"))  # plans and journals: not raw output
    print(f"plans and journals in {work}")
    rows = []
    try:
        for n in range(1, args.runs + 1):
            base = args.baseline if args.baseline != "both" else ("stable", "matched")[(n - 1) % 2]
            row = asyncio.run(one(fleet, n, args, base, work))
            rows.append(row)
            print("run " + json.dumps(row), flush=True)
    finally:
        summary(rows)
        reset(fleet, {}, 0.0)  # 1.0.0 healthy and plain again, as `up` left it
        if not args.keep:
            fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
