#!/usr/bin/env python3
"""rollout-console versus Ansible, the same rolling update on the same real hosts.

    sudo ROLLOUT_SANDBOX_NET=1 python3 bench/vs_ansible.py [--rounds 3] [--load-rps 20]
    sudo ROLLOUT_SANDBOX_NET=3 python3 bench/vs_ansible.py --hosts 50 --rounds 3 --load-rps 50
    sudo ROLLOUT_SANDBOX_NET=3 python3 bench/vs_ansible.py --hosts 50 --rounds 3 --against /path/to/old-checkout

Before/after on one machine, in one sitting: `--against DIR` also runs the
console from another checkout in every round, the order of the three runs
(this tree, that tree, Ansible) reversed every other round (as
bench/tui_tmux.py --against), and prints each tree's table against the
Ansible runs of the same rounds, then this / against per round and as a
ratio of the medians. A before/after figure comes from such a sitting only,
never from two files measured on different machines or days. Each console
tree is byte-compiled before the first round (_common.compile_trees), as
an installed copy is and as Ansible's package is. Every run line carries
the load average as the run began: the machine may be shared.

Boots the sandbox (lb-01 + --hosts agents, 6 by default, on the network
ROLLOUT_SANDBOX_NET names), then alternates console, ansible, console,
ansible ... (--rounds each), resetting every agent to 1.0.0 and the LB to
its original file between runs, with steady client load through the LB
(keep-alive off) during each run. Both roll in the same batches (--batch:
2 on up to 6 hosts, else 10 % of the hosts): take the batch out of the
nginx upstream, install 2.0.0, restart agent@main, wait for /health to
report 2.0.0, put it back. Ansible runs with pipelining, forks = max(6,
batch), ControlPersist, gathering explicit (bench/ansible/). The safety
steps each side performs are printed with the results: the console also
takes the lock, runs its preflight checklist, waits for in-flight requests
(drain), verifies every reload (marker, old workers), checks capacity and
verifies every instance it routes to; the playbook does none of these.

Reported per tool: wall time, controller CPU (os.wait4 of the tool's process
tree), failed requests under the load, and overhead = wall - the inherent
service time (per batch, the slowest of its hosts doing `systemctl restart
agent@main` + first healthy probe on 2.0.0, timed on the host itself,
summed over the batches, measured in the same round). For the console, a
breakdown of its wall time from its own JSON Lines events: start-up and
exit, SSH set-up, preflight, each verified nginx change by step, drain
waits, deploy + restart + health per batch, and the rest.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    BENCH,
    ROOT,
    Fleet,
    alternating,
    compile_trees,
    fmt,
    ratio_of_medians,
    run_child,
    sandbox_module,
    start,
    stats,
    tree_env,
    trees,
)

VERSION = "2.0.0"

PROBE = r'''
import subprocess, time, urllib.request, json
t0 = time.monotonic()
subprocess.run(["systemctl", "restart", "agent@main"], check=True)
t1 = time.monotonic()
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=2) as r:
            if r.status == 200 and json.loads(r.read()).get("version") == "%s":
                break
    except Exception:
        pass
    if time.monotonic() - t0 > 60:
        raise SystemExit("not healthy in 60 s")
    time.sleep(0.05)
print(json.dumps({"restart": t1 - t0, "healthy": time.monotonic() - t0}))
'''


def console_plan(tmp: Path, batch: int) -> Path:
    doc = {"strategy": "rolling", "version": VERSION,
           "health": {"interval": "0.5s", "passes": 1, "deadline": "30s", "timeout": "2s"},
           "drain": {"timeout": "10s"},
           "rolling": {"batch": batch, "interval": "0s"},
           "thresholds": {"error_rate": "1%", "persistence": 2, "min_requests": 20}}
    p = tmp / "rolling.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


class LoadThread:
    """tests/load.py SteadyLoad in its own thread/event loop (the tool runs in a subprocess)."""

    def __init__(self, url: str, rate: float, max_seconds: float):
        from load import SteadyLoad
        self.load = SteadyLoad(url, rate=rate, keepalive=False, max_seconds=max_seconds, workers=8)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.started = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        async with self.load:
            self.started.set()
            await self.load._stop.wait()

    def __enter__(self):
        self.thread.start()
        self.started.wait(10)
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.load._stop.set)
        self.thread.join(30)


def baseline(fleet: Fleet, size: int) -> dict:
    """Inherent service time: per batch (its hosts in parallel), restart + first
    healthy probe on the new version timed on the host; summed over the batches."""
    from concurrent.futures import ThreadPoolExecutor
    ips = list(fleet.agents.values())
    fleet.parallel(f"/opt/agent/bin/install-release --slot main {VERSION} >/dev/null")
    total, restarts = 0.0, []
    for i in range(0, len(ips), size):
        batch = ips[i:i + size]
        with ThreadPoolExecutor(size) as ex:
            res = list(ex.map(lambda ip: json.loads(fleet.ssh(ip, "python3 -", input_text=PROBE % VERSION)), batch))
        total += max(r["healthy"] for r in res)
        restarts += [r["restart"] for r in res]
    return {"inherent": total, "restart": restarts}


def run_console(fleet: Fleet, out: Path, tmp: Path, batch: int, tree: Path = ROOT) -> dict:
    """One console run from the source tree `tree`; its JSON Lines events
    are kept at `out` (beside the raw output: the breakdown can be
    recomputed from them)."""
    n = out.stem
    with open(out, "wb") as f:
        r = run_child([sys.executable, "-m", "console", "--plan", str(console_plan(tmp, batch)), "--inventory",
                       str(fleet.inventory), "--headless", "--output", "json", "--record", str(tmp / f"j{n}.jsonl")],
                      timeout=600, stdout=f, cwd=tree, env=tree_env(tree))
    events = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    r["ok"] = r["rc"] == 0
    header = json.loads((tmp / f"j{n}.jsonl").read_text().splitlines()[0])
    r["inventory_engine"] = header.get("inventory_engine", "?")
    r["restart_events"] = [e["duration"] for e in events if e["kind"] == "command" and
                           "systemctl restart" in e.get("command", "")]
    r["reloads"] = [e["duration"] for e in events if e["kind"] == "traffic"]
    r["breakdown"] = breakdown(events, r["wall"])
    return r


def breakdown(events: list[dict], wall: float) -> dict:
    """Where the console's wall time went, from its own events (`at` is
    seconds since the engine started; durations are the events' own).

    start-up + exit: the process's wall minus the engine's run (imports,
    reading plan and inventory, journal and control socket set-up, exit).
    ssh set-up: connecting to every host, up to the preflight phase.
    preflight: the lock beside the checklist, the LB snapshot, the probes.
    nginx changes: every verified change; per step summed over changes
    (ssh round trip, write + swap, nginx -t, reload, marker beside
    old-worker wait, cleanup).
    drain: from a batch leaving nginx to its first deploy command.
    update: per batch, from its first deploy to its last instance's healthy
    probe on the new version (install, restart, health).
    rest: capacity-guard and routing probes, accounting, the lock release."""
    by_kind: dict[str, list[dict]] = {}
    for e in events:
        by_kind.setdefault(e["kind"], []).append(e)
    finished = by_kind.get("run_finished", [{}])[-1]
    run = float(finished.get("duration") or 0.0)
    phases = by_kind.get("phase", [])
    pre = next((e["at"] for e in phases if e.get("phase") == "preflight"), 0.0)
    started = by_kind.get("run_started", [{}])[0].get("at", pre)
    changes = by_kind.get("traffic", [])
    steps: dict[str, float] = {}
    for c in changes:
        st = c.get("steps") or {}
        for name, v in st.items():
            if name not in ("marker", "old_workers"):
                steps[name] = steps.get(name, 0.0) + v
        if "marker" in st or "old_workers" in st:
            both = max(st.get("marker", 0.0), st.get("old_workers", 0.0))
            steps["marker | old workers"] = steps.get("marker | old workers", 0.0) + both
            steps["(old workers alone)"] = steps.get("(old workers alone)", 0.0) + st.get("old_workers", 0.0)
    # per batch: draining -> first deploying -> last healthy probe of the batch
    batches = [set(s["instances"]) for s in by_kind.get("step_started", [])]
    inst_events = [e for e in events if e["kind"] in ("instance", "health")]
    drain = update = 0.0
    for keys in batches:
        draining = [e["at"] for e in inst_events if e["kind"] == "instance" and e["instance"] in keys
                    and e["phase"] == "draining"]
        deploying = [e["at"] for e in inst_events if e["kind"] == "instance" and e["instance"] in keys
                     and e["phase"] == "deploying"]
        healthy = [e["at"] for e in inst_events if e["kind"] == "health" and e["instance"] in keys
                   and e.get("ok") and e.get("version") == VERSION]
        if draining and deploying:
            drain += min(deploying) - min(draining)
        if deploying and healthy:
            update += max(healthy) - min(deploying)
    nginx = sum(c["duration"] for c in changes)
    lock = sum(e["duration"] for e in by_kind.get("command", [])
               if "rollout-console/locks" in e.get("command", "") and e["at"] <= started)
    out = {"wall": wall, "start-up + exit": wall - run, "ssh set-up": pre, "preflight": started - pre,
           "(lock, beside the checklist)": lock, "nginx changes": nginx, "changes": len(changes),
           "drain": drain, "update (deploy, restart, health)": update}
    out["rest"] = run - pre - (started - pre) - nginx - drain - update
    out["steps"] = steps
    return out


def print_breakdown(rows: list[dict]) -> None:
    """Median of each term over the console's runs."""
    if not rows:
        return
    med = {k: stats([r[k] for r in rows])["median"] for k in rows[0] if k != "steps"}
    print(f"\nconsole wall time, where it goes (median of {len(rows)} run(s), seconds):")
    for k, v in med.items():
        if k == "changes":
            continue
        extra = f"  ({med['changes']:.0f} verified changes, {v / max(1, med['changes']):.3f} s each)" \
            if k == "nginx changes" else ""
        print(f"  {k:34s} {v:7.3f}{extra}")
    names = sorted({n for r in rows for n in r["steps"]})
    if names:
        print("  nginx changes by step (summed over the changes; marker and old-worker wait run side by side):")
        for n in names:
            print(f"    {n:32s} {stats([r['steps'].get(n, 0.0) for r in rows])['median']:7.3f}")


SAFETY = [  # (step, console, the playbook in bench/ansible/rolling.yml)
    ("rollout lock on the LB (one rollout per upstream)", "yes", "no"),
    ("preflight checklist (reach, unit, nginx -t, health, disk)", "yes", "no"),
    ("capacity guard before each drain", "yes", "no"),
    ("batch taken out of the nginx upstream", "yes", "yes"),
    ("nginx -t before every reload", "yes", "yes"),
    ("reload verified: marker answers the new generation", "yes", "no"),
    ("reload verified: old workers stopped accepting", "yes", "no"),
    ("drain: wait for in-flight requests to finish", "yes", "no"),
    ("health on the new version before re-admitting", "yes", "yes"),
    ("every routed instance verified just before each change", "yes", "no"),
    ("journal of every command and change", "yes", "no"),
]


def ansible_playbook() -> str:
    """ansible-playbook on PATH, else beside this Python (the venv that
    bench/requirements.txt was installed into, run without activating it);
    found before any host is booted."""
    found = shutil.which("ansible-playbook") or shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("ansible-playbook not found on PATH or beside this Python: "
                         "pip install -r bench/requirements.txt")
    return found


def run_ansible(fleet: Fleet, out: Path, tmp: Path, batch: int) -> dict:
    cp = Path(tempfile.mkdtemp(prefix="acp-", dir="/tmp"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(BENCH / "ansible" / "ansible.cfg"), ANSIBLE_FORKS=str(max(6, batch)),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp), ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
               ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist=60s "
                                f"-o UserKnownHostsFile={fleet.known_hosts} -o StrictHostKeyChecking=yes")
    try:
        r = run_child([ansible_playbook(), "-i", str(fleet.inventory),
                       str(BENCH / "ansible" / "rolling.yml"), "-e", f"version={VERSION}", "-e", f"batch={batch}"],
                      timeout=900, env=env, stdout=open(out, "wb"))
    finally:
        # close the persistent masters this run opened (ssh -O exit on each socket)
        for sock in cp.glob("*"):
            os.system(f"ssh -o ControlPath={sock} -O exit dummy >/dev/null 2>&1")
        shutil.rmtree(cp, ignore_errors=True)
    r["ok"] = r["rc"] == 0
    return r


def versions(fleet: Fleet) -> set[str]:
    import urllib.request
    out = set()
    for ip in fleet.agents.values():
        with urllib.request.urlopen(f"http://{ip}:8080/health", timeout=5) as resp:
            out.add(json.loads(resp.read())["version"])
    return out


def one_run(fleet: Fleet, raw: Path, tmp: Path, batch: int, rnd: int, tool: str, sides: dict[str, Path],
            load_rps: float) -> dict:
    """One run of `tool` ("console", "console@against" or "ansible") on a
    fleet reset to 1.0.0, under the client load; printed as it ends."""
    fleet.reset_agents()
    fleet.reset_lb()
    assert versions(fleet) == {"1.0.0"}
    ctx = LoadThread(f"http://{fleet.lb_ip}/v1/chat", load_rps, 900) if load_rps else None
    if ctx:
        ctx.__enter__()
    kind, _, side = tool.partition("@")
    load_avg = os.getloadavg()[0]  # the machine is shared: what else ran as this run began
    try:
        kept = raw.with_name(f"{raw.stem}-{tool.replace('@', '-')}-{rnd + 1}.{'jsonl' if kind == 'console' else 'log'}")
        r = run_console(fleet, kept, tmp, batch, sides[side or "this"]) if kind == "console" \
            else run_ansible(fleet, kept, tmp, batch)
    finally:
        if ctx:
            ctx.__exit__()
    r["failed_requests"] = len(ctx.load.result.failed) if ctx else None
    r["expected_requests"] = load_rps * r["wall"]
    r["requests"] = ctx.load.result.sent if ctx else None
    r["final_versions"] = sorted(versions(fleet))
    print(f"round {rnd + 1} {tool:8s} wall {r['wall']:.2f}s cpu {r['cpu']:.2f}s rc {r['rc']} load avg {load_avg:.2f} "
          f"versions {r['final_versions']} load {r['requests']} req / {r['failed_requests']} failed"
          + (f" restarts {[round(x, 2) for x in r.get('restart_events', [])]}; inventory read by "
             f"{r['inventory_engine']}" if kind == "console" else ""), flush=True)
    if kind == "console" and r["ok"]:
        print("  " + ", ".join(f"{k} {v:.2f}" for k, v in r["breakdown"].items() if k != "steps"), flush=True)
    if not r["ok"]:
        print("  stderr:", r["stderr"][-1500:], flush=True)
    return r


def run_order(rounds: int, sides: list[str]) -> list[tuple[int, str]]:
    """(round, run) in the order they go: the console from each tree
    ("console" for this one, "console@against") and Ansible, every other
    round reversed."""
    runs = ["console" if side == "this" else f"console@{side}" for side in sides] + ["ansible"]
    return [(rnd, run) for rnd in range(rounds) for run in alternating(runs, rnd)]


def per_round(this: list[dict], other: list[dict]) -> list[float]:
    """other's wall / this one's, round by round (a round either side failed
    is left out): the ratio of two runs made minutes apart."""
    return [b["wall"] / a["wall"] for a, b in zip(this, other) if a["ok"] and b["ok"]]


def against_ansible(label: str, runs: list[dict], ansible: list[dict], inherent: list[float], load_rps: float,
                    n_batches: int) -> None:
    """The table of one console tree against the Ansible runs of the same rounds."""
    c = [r for r in runs if r["ok"]]
    a = [r for r in ansible if r["ok"]]
    inh_med = stats(inherent)["median"]
    pairs = [(rc, ra) for rc, ra in zip(runs, ansible) if rc["ok"] and ra["ok"]]
    print(f"\n{label}:\n| | console | ansible | ansible / console |")
    print("|---|---|---|---|")
    print(f"| wall time | {fmt([r['wall'] for r in c])} | {fmt([r['wall'] for r in a])} "
          f"| {fmt(per_round(runs, ansible), 'x')} |")
    print(f"| controller CPU (user+sys) | {fmt([r['cpu'] for r in c])} | {fmt([r['cpu'] for r in a])} "
          f"| {fmt([ra['cpu'] / rc['cpu'] for rc, ra in pairs], 'x')} |")
    print(f"| start-up + exit (apart) | {fmt([r['breakdown']['start-up + exit'] for r in c])} | | |")
    print(f"| wall without start-up + exit | {fmt([r['wall'] - r['breakdown']['start-up + exit'] for r in c])} | | |")
    print(f"| overhead = wall - inherent ({inh_med:.2f} s) | {fmt([r['wall'] - inh_med for r in c])} | "
          f"{fmt([r['wall'] - inh_med for r in a])} | "
          f"{fmt([(ra['wall'] - inh_med) / (rc['wall'] - inh_med) for rc, ra in pairs], 'x')} |")
    print(f"| failed requests at {load_rps:g} req/s (keep-alive off) | "
          f"{sum(r['failed_requests'] or 0 for r in c)} of {sum(r['requests'] or 0 for r in c)} | "
          f"{sum(r['failed_requests'] or 0 for r in a)} of {sum(r['requests'] or 0 for r in a)} | |")
    print(f"\ninherent service time per run ({n_batches} batches x slowest restart+healthy): {fmt(inherent)}")
    print(f"console restart command durations: {fmt([x for r in c for x in r['restart_events']])}; "
          f"traffic (reload) event durations: {fmt([x for r in c for x in r['reloads']], 's', 3)}")
    print(f"runs ok: console {len(c)}/{len(runs)}, ansible {len(a)}/{len(ansible)}")
    print(f"client load sent: console {sum(r['requests'] or 0 for r in c)} of about "
          f"{sum(r['expected_requests'] for r in c):.0f} (rate x wall), ansible {sum(r['requests'] or 0 for r in a)}"
          f" of about {sum(r['expected_requests'] for r in a):.0f}")
    print_breakdown([r["breakdown"] for r in c])


def before_after(this: list[dict], other: list[dict]) -> None:
    """This tree against the other, from the same sitting."""
    walls = [[r["wall"] for r in side if r["ok"]] for side in (this, other)]
    ratio = ratio_of_medians(*walls)
    print(f"\nthis / against, console wall: per round {fmt([1 / x for x in per_round(this, other)], 'x')}; "
          f"ratio of the medians {'n/a' if ratio is None else f'{ratio:.3f}x'} (below 1: this is faster)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load-rps", type=float, default=20.0, help="steady load through the LB during each run (0 = off)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up")
    ap.add_argument("--hosts", type=int, default=6, help="agent hosts in the sandbox (at most 60)")
    ap.add_argument("--batch", type=int, default=0,
                    help="hosts per batch, the same for both sides (default: 2 up to 6 hosts, else 10 %%)")
    ap.add_argument("--tree", type=Path, default=ROOT, help="run the console from this source tree")
    ap.add_argument("--against", type=Path, default=None,
                    help="also run the console from this tree in every round, alternating (before/after)")
    args = ap.parse_args()
    batch = args.batch or (2 if args.hosts <= 6 else max(1, args.hosts // 10))
    ansible_playbook()
    n_batches = -(-args.hosts // batch)
    sb = sandbox_module()
    raw = start("vs_ansible", f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    sides = trees(args.tree, args.against)
    compile_trees(sides)
    order = run_order(args.rounds, list(sides))
    fleet = None
    results: dict[str, list] = {run: [] for _, run in order} | {"baseline": []}
    try:
        fleet = Fleet(sb, args.hosts)
        print(f"{args.hosts} agent hosts + lb-01, batches of {batch} ({n_batches} batches), "
              f"client load {args.load_rps:g} req/s keep-alive off; console inventory engine: "
              f"{os.environ.get('ROLLOUT_INVENTORY_ENGINE') or 'auto'} (what read it: each run's line)", flush=True)
        with tempfile.TemporaryDirectory(prefix="vs-ansible-") as d:
            tmp = Path(d)
            for rnd in range(args.rounds):
                for tool in [run for r, run in order if r == rnd]:
                    results[tool].append(one_run(fleet, raw, tmp, batch, rnd, tool, sides, args.load_rps))
                # inherent service time, same round, same machine
                fleet.reset_agents()
                b = baseline(fleet, batch)
                results["baseline"].append(b)
                print(f"round {rnd + 1} baseline inherent {b['inherent']:.2f}s (restart {[round(x, 2) for x in b['restart']]})",
                      flush=True)
    finally:
        if fleet is not None and not args.keep:
            try:
                fleet.down()
            except Exception as exc:  # noqa: BLE001
                print("sandbox down failed:", exc, file=sys.stderr)
    inherent = [b["inherent"] for b in results["baseline"]]
    for run in results:
        if run.startswith("console"):
            against_ansible(run, results[run], results["ansible"], inherent, args.load_rps, n_batches)
    if "console@against" in results:
        before_after(results["console"], results["console@against"])
    print("\nsafety steps performed | console | ansible playbook (bench/ansible/rolling.yml)")
    for step, con, ans in SAFETY:
        print(f"  {step:58s} | {con:7s} | {ans}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
