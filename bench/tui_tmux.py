#!/usr/bin/env python3
"""The real TUI in a real terminal (tmux, 120x40): first paint and the time
from a key to its effect on screen, during a SIMULATED rolling run of
examples/rolling.yaml (batches of 1, 20 %, 50 % of the hosts; `min_requests: 0`, see write_plan).

    python3 bench/tui_tmux.py [--sizes 1000,10000] [--time-scale 1] [--repeats 3]

Measured from the client's side: keys go in with `tmux send-keys`, the
screen is read with `tmux capture-pane` every few ms (so figures carry that
polling granularity, printed as `poll`). For each size:
  first paint   launch -> the first frame (the header shows a phase)
  fleet shown   launch -> the header shows "fleet N instance(s)" (after the engine's
                preflight has probed every host and the run started)
  p: pausing    `p` while a batch is in flight -> "pausing at the next safe point"
  p: paused     the same key -> "paused" in the header (the engine's safe point)
  p: running    `p` again -> "running" (resume)
  /: filter     `/` -> the filter box shows
  log live      the newest event-log line's time at the end vs the run's last event
Each figure: median (min-max, n) over --repeats runs per size. The raw
output lands in bench/results/<date>-<commit>/tui_tmux.txt.

Before/after on a shared machine: `--against DIR` also runs the console from
another checkout, alternating with this one run by run (which goes first
alternates too), so both see the same load; it prints both tables and the
ratio of the medians (this / against).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, alternating, fmt, ratio_of_medians, start, trees  # noqa: E402

SESSION = f"tui-bench-{os.getpid()}"
POLL = 0.005


def screen() -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", SESSION], capture_output=True, text=True).stdout


def wait_for(predicate, timeout: float) -> tuple[float, str]:
    """Seconds until predicate(screen) holds, and that screen."""
    t0 = time.perf_counter()
    while True:
        text = screen()
        if predicate(text):
            return time.perf_counter() - t0, text
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"not seen in {timeout:g}s; screen:\n{text}")
        time.sleep(POLL)


def key(k: str, predicate, timeout: float = 120.0) -> float:
    subprocess.run(["tmux", "send-keys", "-t", SESSION, k], check=True)
    return wait_for(predicate, timeout)[0]


def header(text: str) -> str:
    return "\n".join(text.splitlines()[:2])


def log_times(text: str) -> list[float]:
    return [float(m) for m in re.findall(r"^\[\s*([0-9.]+)s\]", text, re.MULTILINE)]


def write_inventory(path: Path, hosts: int) -> None:
    doc = {"all": {"vars": {"rollout_simulated": True, "sim_releases": {"1.0.0": {}, "2.0.0": {}}},
                   "children": {"agents": {"hosts": {f"agent-{n:05d}": None for n in range(1, hosts + 1)}},
                                "lb": {"hosts": {"lb-01": {"sim_rps": 200}}}}}}  # enough traffic for each gate
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def write_plan(path: Path) -> None:
    """examples/rolling.yaml without the gates' traffic minimum: one new host among 10,000 gets too few of
    the LB's synthetic requests for the after-batch gate to decide, which would extend it by up to 900 s."""
    doc = yaml.safe_load((ROOT / "examples" / "rolling.yaml").read_text())
    doc.setdefault("thresholds", {})["min_requests"] = 0
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def one(tmp: Path, hosts: int, scale: float, tree: Path = ROOT, reader: str = "built-in") -> dict:
    inv, plan = tmp / f"inv-{hosts}.yaml", tmp / "rolling.yaml"
    write_inventory(inv, hosts)
    write_plan(plan)
    env = (f"cd {tree} && PYTHONPATH={tree} ROLLOUT_INVENTORY_ENGINE={reader} XDG_RUNTIME_DIR={tmp} "
           f"ROLLOUT_JOURNAL_DIR={tmp / 'j'}")
    cmd = (f"{env} {sys.executable} -m console --plan {plan} --inventory {inv} "
           f"--time-scale {scale:g}; sleep 600")
    r: dict = {"hosts": hosts}
    t0 = time.perf_counter()
    subprocess.run(["tmux", "new-session", "-d", "-s", SESSION, "-x", "120", "-y", "40", cmd], check=True)
    try:
        wait_for(lambda s: "phase " in header(s), 300)
        r["first_paint"] = time.perf_counter() - t0
        wait_for(lambda s: f"fleet {hosts} instance" in s, 300)
        r["fleet_shown"] = time.perf_counter() - t0
        # a big batch in flight: the second batch (20 %) started and hosts are changing
        wait_for(lambda s: "STEPS 1/" in s and re.search(r"deploying|restarting|checking|draining", s), 300)
        r["pausing"] = key("p", lambda s: "pausing at the next safe point" in header(s))
        t1 = time.perf_counter()
        wait_for(lambda s: "phase  paused" in header(s), 600)
        r["paused"] = r["pausing"] + time.perf_counter() - t1
        r["running"] = key("p", lambda s: "phase  running" in header(s))
        r["filter"] = key("/", lambda s: "filter hosts" in s)
        key("Escape", lambda s: "filter hosts" not in s)
        _, end = wait_for(lambda s: "RESULT" in s, 1800)
        time.sleep(0.5)
        end = screen()
        times = log_times(end)
        finished = re.search(r"finished: \w+ after ([0-9.]+)s", end)
        r["log_last"] = max(times) if times else None
        r["run_end"] = float(finished.group(1)) if finished else None
        r["log_live"] = bool(finished)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
    return r


COLUMNS = [("first paint", "first_paint", False), ("fleet shown", "fleet_shown", False),
           ("p -> pausing", "pausing", True), ("p -> paused (safe point)", "paused", False),
           ("p -> running (resume)", "running", True), ("/ -> filter box", "filter", True)]


def report(results: dict[int, list[dict]]) -> None:
    ms = {"unit": "ms", "digits": 0}
    for n, rows in results.items():
        print(f"\n{n} hosts:")
        for title, name, in_ms in COLUMNS:
            values = [r[name] * (1000 if in_ms else 1) for r in rows]
            print(f"  {title:<26} {fmt(values, **ms) if in_ms else fmt(values)}")
        live = [r for r in rows if r["log_live"]]
        print(f"  {'event log live to the end':<26} {len(live)}/{len(rows)} runs "
              f"(last lines {[r['log_last'] for r in rows]}, run ends {[r['run_end'] for r in rows]})")


def ratios(this: dict[int, list[dict]], against: dict[int, list[dict]]) -> None:
    print("\nratio of the medians, this / against (below 1: this is faster):")
    for n in this:
        cells = []
        for title, name, _in_ms in COLUMNS:
            ratio = ratio_of_medians([r[name] for r in this[n]], [r[name] for r in against.get(n, [])])
            cells.append(f"{title} {ratio:.2f}" if ratio is not None else f"{title} n/a")
        print(f"  {n} hosts: " + "; ".join(cells))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--time-scale", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--tree", type=Path, default=ROOT,
                    help="run the console from this source tree (e.g. an older checkout, for before/after)")
    ap.add_argument("--against", type=Path, default=None,
                    help="also run the console from this tree, alternating with --tree run by run")
    ap.add_argument("--inventory-engine", default="built-in", choices=("built-in", "ansible"),
                    help="who reads the inventory (ansible-core takes seconds at 1,000 hosts: not the TUI's cost)")
    args = ap.parse_args()
    start("tui_tmux")
    sides = trees(args.tree, args.against)
    print(f"tmux 120x40, --time-scale {args.time_scale:g}, inventory read by {args.inventory_engine}, "
          f"poll {POLL * 1000:.0f} ms; "
          f"median (min-max, n) of {args.repeats} run(s) per size" + (", alternating" if len(trees) > 1 else "")
          + "\n", flush=True)
    results: dict[str, dict[int, list[dict]]] = {label: {} for label in sides}
    with tempfile.TemporaryDirectory(prefix="tuib-", dir="/tmp") as tmp:
        for n in (int(n) for n in args.sizes.split(",")):
            for i in range(args.repeats):
                for label in alternating(list(sides), i):
                    r = one(Path(tmp), n, args.time_scale, sides[label], args.inventory_engine)
                    print(f"  run {i + 1} ({label}): {r}", flush=True)
                    results[label].setdefault(n, []).append(r)
    for label in sides:
        if len(sides) > 1:
            print(f"\n== {label}: {sides[label]}")
        report(results[label])
    if len(sides) > 1:
        ratios(results["this"], results["against"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
