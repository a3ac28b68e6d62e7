#!/usr/bin/env python3
"""Blue-green switch time and canary rollback time on real hosts under steady load.

    sudo ROLLOUT_SANDBOX_NET=1 python3 bench/traffic_switch.py [--repeats 2] [--rate 100]

Sandbox: lb-01 + 6 agents (network 1). For keep-alive off and on, --repeats each:
  * blue-green (units form: agent@blue on 8081 active, green 8082 gets 2.0.0):
    the switch = from the engine's decision (its "switch" step event, index 2,
    time-stamped as this process reads it) until 100 % of responses come from
    the new version (the last response by 1.0.0), from the load's per-response
    X-Agent-Version timeline; the overlap window = last 1.0.0 response - first
    2.0.0 response (negative: none); the console's `traffic` event durations
    (nginx write + test + reload + verified generation).
  * canary of a release with error_rate 0.2 (write_release): exposure = first
    to last response by the bad version (detection included), and how many
    responses it served; rollback = the failing gate event's arrival here to
    the last response by the bad version.
Failed requests (non-200 or transport errors) are counted for every run.
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
from rollout_helpers import plan_file  # noqa: E402  (the tests' plan defaults: same plans as the tests)

CONF = "/etc/nginx/conf.d/rollout-agent.conf"
BAD = "2.1.0"


async def console(*args: str) -> tuple[int, list[tuple[float, dict]]]:
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "console", *args, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    events: list[tuple[float, dict]] = []

    async def read():
        while line := await proc.stdout.readline():
            if line.startswith(b"{"):
                events.append((time.monotonic(), json.loads(line)))
    err_task = asyncio.create_task(proc.stderr.read())
    await asyncio.wait_for(read(), 300)
    await proc.wait()
    err = await err_task
    if proc.returncode not in (0, 3):
        print("  console stderr:", err.decode()[-1500:], flush=True)
    return proc.returncode, events


def setup_blue(fleet: Fleet) -> None:
    from inventory.nginx_config import Backend, LbState, render
    from inventory.nginx_workers import reload_and_settle
    fleet.parallel("/opt/agent/bin/install-release --slot blue 1.0.0 >/dev/null && systemctl restart agent@blue")
    text = render(LbState(upstream="agent", pools={"blue": tuple(Backend(ip, 8081) for ip in fleet.agents.values())},
                          default_pool="blue", generation="bench-blue",
                          access_log="/var/log/nginx/rollout-agent.log", marker_port=8099))
    fleet.ssh(fleet.lb_ip, f"cat > {CONF} && nginx -t -q && {reload_and_settle()}", input_text=text)


async def run_under_load(fleet: Fleet, tmp: Path, plan_path: Path, rate: float, keepalive: bool,
                         settle: float):
    """One headless console run inside 1 s of load before and `settle` s
    after; returns (exit code, time-stamped events, the load's result)."""
    from load import SteadyLoad
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=rate, keepalive=keepalive, max_seconds=200) as load:
        await asyncio.sleep(1)
        code, events = await console("--plan", str(plan_path), "--inventory", str(fleet.inventory), "--headless",
                                     "--output", "json", "--record", str(tmp / f"j-{time.monotonic_ns()}.jsonl"))
        await asyncio.sleep(settle)
    return code, events, load.result


async def blue_green(fleet: Fleet, tmp: Path, rate: float, keepalive: bool) -> dict:
    fleet.reset_agents()
    setup_blue(fleet)
    await asyncio.sleep(0.5)
    p = plan_file(tmp, "blue_green", version="2.0.0", blue_green={"mode": "units", "active": "blue", "rollback_window": "5s",
                                                      "pre_switch_delay": "1s"})
    code, events, res = await run_under_load(fleet, tmp, p, rate, keepalive, settle=1)
    first_new, last_old = res.first_time_of("2.0.0"), res.last_time_of("1.0.0")
    traffic = [e for _, e in events if e["kind"] == "traffic"]
    switch_ev = [e for e in traffic if "green" in e.get("pools", {}) and "blue" not in e.get("pools", {})]
    decided = next((t for t, e in events if e["kind"] == "step_started" and e["index"] == 2), None)
    return {"rc": code, "window": (last_old - first_new) if first_new and last_old else None,
            "switch": (last_old - decided) if decided and last_old else None,
            "requests": res.sent, "failed": len(res.failed),
            "failed_detail": sorted({(r.status, r.error[:60]) for r in res.failed})[:3],
            "reloads": len(traffic), "reload_durations": [e["duration"] for e in traffic],
            "switch_event_duration": switch_ev[0]["duration"] if switch_ev else None,
            "fail_reasons": [e.get("reasons") for _, e in events if e["kind"] == "gate" and e["verdict"] == "fail"][:2]
            + [e.get("reason") for _, e in events if e["kind"] == "phase" and e.get("phase") == "rolling back"][:1]}


async def canary_rollback(fleet: Fleet, tmp: Path, rate: float, keepalive: bool) -> dict:
    fleet.reset_agents()
    fleet.reset_lb()
    p = plan_file(tmp, "canary", version=BAD, canary={"sample_interval": "1s",
                                         "steps": [{"set_weight": 10}, {"analysis": "30s"}, {"set_weight": 100}]})
    code, events, res = await run_under_load(fleet, tmp, p, rate, keepalive, settle=2)
    fail_t = next((t for t, e in events if e["kind"] == "gate" and e["verdict"] == "fail"), None)
    last_bad, first_bad = res.last_time_of(BAD), res.first_time_of(BAD)
    traffic = [e for _, e in events if e["kind"] == "traffic"]
    bad_failed = [r for r in res.failed if r.version == BAD]
    return {"rc": code, "rollback": (last_bad - fail_t) if fail_t and last_bad else None,
            "exposure": (last_bad - first_bad) if first_bad and last_bad else None,
            "bad_served": sum(r.version == BAD for r in res.responses),
            "requests": res.sent, "failed": len(res.failed), "failed_bad": len(bad_failed),
            "failed_other": len(res.failed) - len(bad_failed),
            "other_detail": [(r.status, r.error[:60], round(r.t - fail_t, 3) if fail_t else None)
                             for r in res.failed if r.version != BAD][:4],
            "reloads": len(traffic), "reload_durations": [e["duration"] for e in traffic]}


async def amain(args) -> dict:
    sb = sandbox_module()
    out = {}
    fleet = None
    try:
        fleet = Fleet(sb, 6)
        sb.write_release(None, BAD, {"error_rate": 0.2}, state_dir=fleet.state_dir)
        with tempfile.TemporaryDirectory(prefix="traffic-switch-") as d:
            tmp = Path(d)
            for keepalive in (False, True):
                ka = "keep-alive on" if keepalive else "keep-alive off"
                for i in range(args.repeats):
                    r = await blue_green(fleet, tmp, args.rate, keepalive)
                    out.setdefault(("bg", ka), []).append(r)
                    print(f"{ka} blue-green {i + 1}: {r}", flush=True)
                    r = await canary_rollback(fleet, tmp, args.rate, keepalive)
                    out.setdefault(("canary", ka), []).append(r)
                    print(f"{ka} canary-rollback {i + 1}: {r}", flush=True)
    finally:
        if fleet is not None:
            try:
                fleet.reset_agents()
                fleet.reset_lb()
            except Exception:  # noqa: BLE001
                pass
            if not args.keep:
                fleet.down()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    start("traffic_switch", f"ROLLOUT_SANDBOX_NET={os.environ.get('ROLLOUT_SANDBOX_NET')} ")
    out = asyncio.run(amain(args))
    print("\n| measure | keep-alive | median (min-max, n) | failed requests | anchor |")
    print("|---|---|---|---|---|")
    for ka in ("keep-alive off", "keep-alive on"):
        bg = out.get(("bg", ka), [])
        c = out.get(("canary", ka), [])
        print(f"| blue-green switch (engine's switch decision -> last 1.0.0 response) | {ka} | "
              f"{fmt([r['switch'] * 1000 for r in bg if r['switch'] is not None], 'ms', 0)} | | "
              f"the article's configured traffic_switch.delay: 45 s |")
        print(f"| blue-green overlap (first 2.0.0 -> last 1.0.0 response) | {ka} | "
              f"{fmt([r['window'] * 1000 for r in bg if r['window'] is not None], 'ms', 0)} | "
              f"{sum(r['failed'] for r in bg)} of {sum(r['requests'] for r in bg)} | |")
        print(f"| blue-green switch traffic event (write+test+reload+verify) | {ka} | "
              f"{fmt([r['switch_event_duration'] * 1000 for r in bg if r['switch_event_duration']], 'ms', 0)} | | |")
        print(f"| canary rollback (gate fail -> last bad response) | {ka} | "
              f"{fmt([r['rollback'] for r in c if r['rollback'] is not None], 's', 2)} | "
              f"{sum(r['failed_bad'] for r in c)} by {BAD} (expected, 20 % errors), "
              f"{sum(r['failed_other'] for r in c)} other, of {sum(r['requests'] for r in c)} | |")
        print(f"| canary exposure (first -> last bad response, detection included) | {ka} | "
              f"{fmt([r['exposure'] for r in c if r['exposure'] is not None], 's', 2)} | "
              f"{fmt([r['bad_served'] for r in c], 'responses by ' + BAD, 0)} | the article's 5-10 min rollback |")
        durs = [x * 1000 for r in bg + c for x in r["reload_durations"]]
        print(f"| nginx reloads per run / duration per reload step | {ka} | "
              f"bg {fmt([r['reloads'] for r in bg], '', 0)}, canary {fmt([r['reloads'] for r in c], '', 0)} / "
              f"{fmt(durs, 'ms', 0)} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
