#!/usr/bin/env python3
"""Headless start-up time and journal overhead.

    python3 bench/startup_and_journal.py [--repeats 10]

1. Start-up: `python3 -c pass` (baseline), `python3 -m console --plan
   examples/rolling.yaml --dry-run`, and a tiny simulated run (embedded
   10-host fleet, --headless --time-scale 1000); whether the headless path
   imports textual (sys.modules after the run, and -X importtime).
2. Journal: (a) JournalWriter alone on the events of a recorded 1,000-host
   simulated run, to disk (/var/tmp) and to tmpfs (/dev/shm), versus a no-op
   subscriber: microseconds per event; (b) the same simulated run end to end
   with --record on disk versus on tmpfs. Every run is recorded (there is no
   journal-less mode to compare against), so the journal's share of a run is
   its paired net cost (JournalWriter minus the no-op subscriber, same
   repeat) over the end-to-end wall, and it is called "below the noise" when
   it is smaller than the end-to-end runs' own spread (max - min, n given).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fleet_scale  # noqa: E402  (inventory/plan writers)
from _common import ROOT, fmt, run_child, start, stats  # noqa: E402

PY = sys.executable
TEXTUAL_CHECK = r'''
import runpy, sys
sys.argv = ["console"] + sys.argv[1:]
try:
    runpy.run_module("console", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
mods = sorted(m for m in sys.modules
              if m == "textual" or m.startswith("textual.") or m == "rich" or m.startswith("rich."))
sys.stderr.write("\nTEXTUAL_MODULES %d RICH %d\n"
                 % (sum(m.startswith("textual") for m in mods), sum(m.startswith("rich") for m in mods)))
'''


def timed(argv, n, **kw):
    out = []
    for _ in range(n):
        r = run_child(argv, timeout=120, **kw)
        if r["rc"] not in (0,):
            raise SystemExit(f"{argv}: rc {r['rc']}: {r['stderr'][-800:]}")
        out.append(r)
    return out


def journal_direct(events_path: Path, reps: int) -> dict:
    sys.path.insert(0, str(ROOT))
    from console.journal import JournalWriter, make_header  # noqa: F401
    from strategies.events import from_dict
    evs = []
    for line in events_path.read_text().splitlines():
        d = json.loads(line)
        if d.get("kind") and d["kind"] != "result":
            try:
                evs.append(from_dict(d))
            except Exception:  # noqa: BLE001
                pass
    res = {"events": len(evs)}

    def noop(e):
        e.to_dict()  # a subscriber that at least looks at the event
    targets = (("noop", None), ("disk /var/tmp", Path("/var/tmp")), ("tmpfs /dev/shm", Path("/dev/shm")))
    for name, _ in targets:
        res[name] = []
    for _ in range(reps):  # interleaved, so each repeat's three timings share the machine's state
        for name, target in targets:
            t0 = time.perf_counter()
            if target is None:
                for e in evs:
                    noop(e)
            else:
                d = Path(tempfile.mkdtemp(dir=target, prefix="jbench-"))
                w = JournalWriter.open_new(d / "j.jsonl", {"argv": ["bench"]})
                for e in evs:
                    w(e)
                w.close("succeeded", 0)
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()
            res[name].append(time.perf_counter() - t0)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--hosts", type=int, default=1000, help="fleet size of the journal run")
    args = ap.parse_args()
    n = args.repeats
    start("startup_and_journal")
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="startup-", dir="/var/tmp") as d:
        tmp = Path(d)
        env["ROLLOUT_JOURNAL_DIR"] = str(tmp / "journals")
        base = timed([PY, "-c", "pass"], n)
        dry = timed([PY, "-m", "console", "--plan", "examples/rolling.yaml", "--dry-run"], n, env=env)
        tiny = timed([PY, "-m", "console", "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "1000"],
                     max(3, n // 2), env=env)
        chk = run_child([PY, "-c", TEXTUAL_CHECK, "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "1000"],
                        timeout=120, env=env)
        line = [ln for ln in chk["stderr"].splitlines() if ln.startswith("TEXTUAL_MODULES")]
        imp = subprocess.run([PY, "-X", "importtime", "-m", "console", "--plan", "examples/rolling.yaml", "--dry-run"],
                             cwd=ROOT, env=env, capture_output=True, text=True)
        textual_lines = [ln for ln in imp.stderr.splitlines() if "| textual" in ln or "|   textual" in ln]
        top = sorted(((int(ln.split("|")[1]), ln.split("|")[2].strip()) for ln in imp.stderr.splitlines()
                      if ln.startswith("import time:") and ln.split("|")[1].strip().isdigit()), reverse=True)[:6]

        # journal: a recorded simulated run of --hosts hosts
        inv, planp = tmp / "inv.yaml", tmp / "rolling.yaml"
        fleet_scale.write_inventory(inv, args.hosts, 1.0)
        fleet_scale.write_plan(planp, "rolling")
        events_path = tmp / "events.jsonl"
        run_args = ["--plan", str(planp), "--inventory", str(inv), "--headless", "--output", "json", "--time-scale", "1000"]
        with open(events_path, "wb") as f:
            run_child([PY, "-m", "console", *run_args, "--record", str(tmp / "first.jsonl")], timeout=300, stdout=f)
        direct = journal_direct(events_path, n)
        e2e = {"disk /var/tmp": [], "tmpfs /dev/shm": []}
        for i in range(n):
            for name, base_dir in (("disk /var/tmp", tmp), ("tmpfs /dev/shm", Path("/dev/shm"))):
                rec = base_dir / f"bench-journal-{os.getpid()}-{i}.jsonl"
                r = run_child([PY, "-m", "console", *run_args, "--record", str(rec)], timeout=300, env=env)
                rec.unlink(missing_ok=True)
                Path(rec.parent, f".{rec.name}.reserve").unlink(missing_ok=True)
                e2e[name].append(r["wall"])
    b = stats([r["wall"] for r in base])["median"]
    print("| measure | median (min-max, n) | vs python3 -c pass |")
    print("|---|---|---|")
    for name, rs in (("python3 -c pass", base), ("console --dry-run (examples/rolling.yaml)", dry),
                     ("console headless simulated run, 10 hosts, --time-scale 1000", tiny)):
        w = [r["wall"] for r in rs]
        print(f"| {name} | {fmt([x * 1000 for x in w], 'ms', 0)} | x{stats(w)['median'] / b:.1f} "
              f"(+{(stats(w)['median'] - b) * 1000:.0f} ms) |")
    print(f"| peak RSS, dry-run | {fmt([r['maxrss_mb'] for r in dry], 'MiB', 0)} | |")
    print(f"\ntextual on the headless path: {line[0] if line else 'check failed: ' + chk['stderr'][-300:]}; "
          f"-X importtime lines naming textual: {len(textual_lines)}")
    print("slowest imports (-X importtime, cumulative us):", "; ".join(f"{m} {us / 1000:.0f} ms" for us, m in top))
    ev = direct["events"]
    print(f"\nJournalWriter on {ev} events of a {args.hosts}-host rolling run (repeats interleaved):")
    print("| subscriber | total | net of the no-op subscriber, per event (same repeat) |")
    print("|---|---|---|")
    nets: dict[str, list[float]] = {}
    for name in ("noop", "disk /var/tmp", "tmpfs /dev/shm"):
        t = direct[name]
        nets[name] = [(x - b0) for x, b0 in zip(t, direct["noop"])]
        per_event = "" if name == "noop" else fmt([x / ev * 1e6 for x in nets[name]], "us", 1)
        print(f"| {name} | {fmt([x * 1000 for x in t], 'ms', 1)} | {per_event} |")
    disk_runs = e2e["disk /var/tmp"]
    e_disk = stats(disk_runs)["median"]
    spread = stats(disk_runs)["max"] - stats(disk_runs)["min"]
    jcost = stats(nets["disk /var/tmp"])["median"]
    print(f"\nend to end, same {args.hosts}-host run: --record on disk {fmt(disk_runs)}, on tmpfs "
          f"{fmt(e2e['tmpfs /dev/shm'])}")
    verdict = ("below the noise: smaller than the end-to-end runs' own spread"
               if jcost < spread else "above the end-to-end runs' spread")
    print(f"journal cost on disk, net of the no-op subscriber: {fmt([x * 1000 for x in nets['disk /var/tmp']], 'ms', 1)} "
          f"per run = {100 * jcost / e_disk:.1f} % of the median run ({e_disk:.2f} s); run-to-run spread "
          f"{spread * 1000:.0f} ms (n={len(disk_runs)}): {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
