#!/usr/bin/env python3
"""rollout-console versus Ansible, the same rolling update on the same real hosts.

    sudo ROLLOUT_SANDBOX_NET=1 python3 bench/vs_ansible.py [--rounds 3] [--load-rps 20]

Boots the sandbox (lb-01 + 6 agents, network 1), then alternates console,
ansible, console, ansible ... (--rounds each), resetting every agent to 1.0.0
between runs. Both do batches of 2: drain from nginx, install 2.0.0, restart
agent@main, wait for /health to report 2.0.0, undrain. Ansible runs with
pipelining, forks 6, ControlPersist, gathering explicit (bench/ansible/).

Reported per tool: wall time, controller CPU (os.wait4 of the tool's process
tree), failed requests under light steady load, and overhead = wall - the
inherent service time (3 batches x the slowest of 2 hosts doing
`systemctl restart agent@main` + first healthy probe on 2.0.0, timed on the
host itself, measured in the same run).
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
from _common import BENCH, Fleet, fmt, run_child, sandbox_module, start, stats  # noqa: E402

VERSION = "2.0.0"
BATCH = 2

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


def console_plan(tmp: Path) -> Path:
    doc = {"strategy": "rolling", "version": VERSION,
           "health": {"interval": "0.5s", "passes": 1, "deadline": "30s", "timeout": "2s"},
           "drain": {"timeout": "10s"},
           "rolling": {"batch": BATCH, "interval": "0s"},
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


def baseline(fleet: Fleet) -> dict:
    """Inherent service time: per batch of 2 (in parallel), restart + first healthy
    probe on the new version timed on the host; summed over the batches."""
    from concurrent.futures import ThreadPoolExecutor
    ips = list(fleet.agents.values())
    fleet.parallel(f"/opt/agent/bin/install-release --slot main {VERSION} >/dev/null")
    total, restarts = 0.0, []
    for i in range(0, len(ips), BATCH):
        batch = ips[i:i + BATCH]
        with ThreadPoolExecutor(BATCH) as ex:
            res = list(ex.map(lambda ip: json.loads(fleet.ssh(ip, "python3 -", input_text=PROBE % VERSION)), batch))
        total += max(r["healthy"] for r in res)
        restarts += [r["restart"] for r in res]
    return {"inherent": total, "restart": restarts}


def run_console(fleet: Fleet, tmp: Path, n: int) -> dict:
    out = tmp / f"console-{n}.jsonl"
    with open(out, "wb") as f:
        r = run_child([sys.executable, "-m", "console", "--plan", str(console_plan(tmp)), "--inventory",
                       str(fleet.inventory), "--headless", "--output", "json", "--record", str(tmp / f"j{n}.jsonl")],
                      timeout=300, stdout=f)
    events = [json.loads(line) for line in out.read_text().splitlines() if line.startswith("{")]
    r["ok"] = r["rc"] == 0
    r["restart_events"] = [e["duration"] for e in events if e["kind"] == "command" and
                           "systemctl restart" in e.get("command", "")]
    r["reloads"] = [e["duration"] for e in events if e["kind"] == "traffic"]
    return r


def run_ansible(fleet: Fleet, tmp: Path, n: int) -> dict:
    cp = Path(tempfile.mkdtemp(prefix="acp-", dir="/tmp"))
    env = dict(os.environ, ANSIBLE_CONFIG=str(BENCH / "ansible" / "ansible.cfg"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(cp), ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
               ANSIBLE_SSH_ARGS=f"-o ControlMaster=auto -o ControlPersist=60s "
                                f"-o UserKnownHostsFile={fleet.known_hosts} -o StrictHostKeyChecking=yes")
    try:
        r = run_child([shutil.which("ansible-playbook") or "ansible-playbook", "-i", str(fleet.inventory),
                       str(BENCH / "ansible" / "rolling.yml"), "-e", f"version={VERSION}"],
                      timeout=300, env=env, stdout=open(tmp / f"ansible-{n}.log", "wb"))
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--load-rps", type=float, default=20.0, help="steady load through the LB during each run (0 = off)")
    ap.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = ap.parse_args()
    sb = sandbox_module()
    start("vs_ansible", f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    fleet = None
    results = {"console": [], "ansible": [], "baseline": []}
    try:
        fleet = Fleet(sb, 6)
        with tempfile.TemporaryDirectory(prefix="vs-ansible-") as d:
            tmp = Path(d)
            for rnd in range(args.rounds):
                for tool in ("console", "ansible"):
                    fleet.reset_agents()
                    fleet.reset_lb()
                    assert versions(fleet) == {"1.0.0"}
                    ctx = LoadThread(f"http://{fleet.lb_ip}/v1/chat", args.load_rps, 300) if args.load_rps else None
                    if ctx:
                        ctx.__enter__()
                    try:
                        r = (run_console if tool == "console" else run_ansible)(fleet, tmp, rnd)
                    finally:
                        if ctx:
                            ctx.__exit__()
                    r["failed_requests"] = len(ctx.load.result.failed) if ctx else None
                    r["requests"] = ctx.load.result.sent if ctx else None
                    r["final_versions"] = sorted(versions(fleet))
                    results[tool].append(r)
                    print(f"round {rnd + 1} {tool:8s} wall {r['wall']:.2f}s cpu {r['cpu']:.2f}s rc {r['rc']} "
                          f"versions {r['final_versions']} load {r['requests']} req / {r['failed_requests']} failed"
                          + (f" restarts {[round(x, 2) for x in r.get('restart_events', [])]}" if tool == "console" else ""),
                          flush=True)
                    if not r["ok"]:
                        print("  stderr:", r["stderr"][-1500:], flush=True)
                # inherent service time, same round, same machine
                fleet.reset_agents()
                b = baseline(fleet)
                results["baseline"].append(b)
                print(f"round {rnd + 1} baseline inherent {b['inherent']:.2f}s (restart {[round(x, 2) for x in b['restart']]})",
                      flush=True)
    finally:
        if fleet is not None and not args.keep:
            try:
                fleet.down()
            except Exception as exc:  # noqa: BLE001
                print("sandbox down failed:", exc, file=sys.stderr)
    c = [r for r in results["console"] if r["ok"]]
    a = [r for r in results["ansible"] if r["ok"]]
    inh = [b["inherent"] for b in results["baseline"]]
    inh_med = stats(inh)["median"]
    ratios = [ra["wall"] / rc["wall"] for rc, ra in zip(results["console"], results["ansible"]) if rc["ok"] and ra["ok"]]
    cpu_ratios = [ra["cpu"] / rc["cpu"] for rc, ra in zip(results["console"], results["ansible"]) if rc["ok"] and ra["ok"]]
    print("\n| | console | ansible | ansible / console |")
    print("|---|---|---|---|")
    print(f"| wall time | {fmt([r['wall'] for r in c])} | {fmt([r['wall'] for r in a])} | {fmt(ratios, 'x')} |")
    print(f"| controller CPU (user+sys) | {fmt([r['cpu'] for r in c])} | {fmt([r['cpu'] for r in a])} | {fmt(cpu_ratios, 'x')} |")
    overhead_ratios = [(ra["wall"] - inh_med) / (rc["wall"] - inh_med)
                       for rc, ra in zip(results["console"], results["ansible"]) if rc["ok"] and ra["ok"]]
    print(f"| overhead = wall - inherent ({inh_med:.2f} s) | {fmt([r['wall'] - inh_med for r in c])} | "
          f"{fmt([r['wall'] - inh_med for r in a])} | {fmt(overhead_ratios, 'x')} |")
    print(f"| failed requests at {args.load_rps:g} req/s (keep-alive off) | "
          f"{sum(r['failed_requests'] or 0 for r in c)} of {sum(r['requests'] or 0 for r in c)} | "
          f"{sum(r['failed_requests'] or 0 for r in a)} of {sum(r['requests'] or 0 for r in a)} | |")
    print(f"\ninherent service time per run (3 batches x slowest restart+healthy): {fmt(inh)}")
    print(f"console restart command durations: {fmt([x for r in c for x in r['restart_events']])}; "
          f"traffic (reload) event durations: {fmt([x for r in c for x in r['reloads']], 's', 3)}")
    print(f"runs ok: console {len(c)}/{len(results['console'])}, ansible {len(a)}/{len(results['ansible'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
