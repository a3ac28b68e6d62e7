#!/usr/bin/env python3
"""How fast the CLI answers the commands people type most: `console`,
`console --help`, `console version`, `console status` (no run, and one
paused live run), against `python3 -c pass` as the floor. Target: under
0.3 s for help, version and status (issue 24).

    python3 bench/cli_latency.py [--repeats 15] [--baseline main]

--baseline REF also times `--help` and `status` (no run) of that git ref's
tree (git archive into a temporary directory, run with PYTHONPATH there),
for a before/after on the same machine at the same time.

Each figure is the wall time of a fresh child process (os.wait4 around
fork+exec+exit, bench/_common.run_child), measured from outside: nothing
here imports the console or trusts its own account of what it loads. The
live run is a real `console --headless --wait-for-promotion` on the
SIMULATED fleet, paused at its promotion step, in its own runtime
directory; it is promoted and awaited at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, fmt, run_child, start, stats  # noqa: E402

PY = sys.executable
TARGET = 0.3
PLAN = """strategy: canary
version: "2.0.0"
hosts: agents
load_balancers: lb
port: 8080
unit: agent@{slot}.service
deploy: {commands: ["/opt/agent/bin/install-release --slot {slot} {version}"]}
canary: {sample_interval: 2s, steps: [{set_weight: 25}, {pause: {}}, {set_weight: 100}]}
"""


def measure(label: str, argv: list[str], env: dict, repeats: int) -> list[float]:
    walls = []
    for _ in range(repeats):
        r = run_child(argv, timeout=60, env=env)
        if r["rc"] != 0:
            raise SystemExit(f"{label}: exit {r['rc']}: {r['stderr'][-600:]}")
        walls.append(r["wall"])
    s = stats(walls)
    verdict = "" if label == "python3 -c pass" else ("  under target" if s["median"] < TARGET else "  OVER target")
    print(f"{label:<34} {fmt(walls, 's', 3)}{verdict}", flush=True)
    return walls


def baseline(ref: str, work: Path, env: dict, repeats: int) -> None:
    tree = work / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref], capture_output=True,
                            text=True).stdout.strip()
    print(f"\nbaseline {ref} ({commit}), same commands:")
    old = {**env, "PYTHONPATH": str(tree)}
    run_child([PY, "-m", "console", "--help"], timeout=120, env=old, cwd=tree)  # writes its __pycache__ once
    for label, argv in (("console --help", ["--help"]), ("console status (no run)", ["status"])):
        walls = []
        for _ in range(repeats):
            r = run_child([PY, "-m", "console", *argv], timeout=60, env=old, cwd=tree)
            walls.append(r["wall"])
        print(f"{ref + ': ' + label:<34} {fmt(walls, 's', 3)}", flush=True)


def paused_run(env: dict, plan: Path) -> subprocess.Popen:
    proc = subprocess.Popen([PY, "-m", "console", "--plan", str(plan), "--headless", "--output", "json",
                             "--time-scale", "20", "--wait-for-promotion"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:  # the run's own events: wait for the pause, not for a guessed time
        event = json.loads(line)
        if event.get("kind") == "phase" and event.get("phase") == "paused":
            return proc
    raise SystemExit(f"the run ended before its pause: exit {proc.wait()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=15, help="runs per command (default 15)")
    ap.add_argument("--baseline", metavar="REF", help="also time --help and status of this git ref's tree")
    args = ap.parse_args()
    start("cli_latency")
    work = Path(tempfile.mkdtemp(prefix="rc-bench-", dir="/tmp"))
    env = {**os.environ, "XDG_RUNTIME_DIR": str(work / "rt"), "ROLLOUT_JOURNAL_DIR": str(work / "journals"),
           "PYTHONPATH": str(ROOT)}
    (work / "rt").mkdir()
    plan = work / "plan.yaml"
    plan.write_text(PLAN)
    try:
        print(f"repeats {args.repeats}; wall time of a fresh process, median (min-max)\n")
        measure("python3 -c pass", [PY, "-c", "pass"], env, args.repeats)
        results = {}
        for label, argv in (("console", []), ("console --help", ["--help"]), ("console version", ["version"]),
                            ("console status (no run)", ["status"])):
            results[label] = measure(label, [PY, "-m", "console", *argv], env, args.repeats)
        run = paused_run(env, plan)
        try:
            results["console status (1 live run)"] = measure("console status (1 live run)",
                                                             [PY, "-m", "console", "status"], env, args.repeats)
        finally:
            subprocess.run([PY, "-m", "console", "promote"], cwd=ROOT, env=env, capture_output=True, timeout=60)
            run.stdout.read()
            run.wait(120)
        over = [k for k, v in results.items() if stats(v)["median"] >= TARGET]
        print(f"\nover the {TARGET} s target: {', '.join(over) if over else 'none'}")
        if args.baseline:
            baseline(args.baseline, work, env, args.repeats)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
