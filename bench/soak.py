"""Randomized fault soak on the real sandbox (issue 15).

Runs N rollouts on the sandbox fleet (ROLLOUT_SANDBOX_NET) under about
100 req/s of client load through the LB, keep-alive off and on in turn.
Every choice comes from one seed: run i of seed S draws its strategy
(rolling, canary, blue-green units or groups), its release (good, or bad in
one of the sandbox agent's behaviours), 0-2 faults and the moment of each,
picked from the run's own JSON Lines events (the n-th event of a kind), and
what `console resume` does afterwards. Each run's schedule is printed.
A run that drew fewer than two faults gets, one time in two, an operator
command from another shell as well (pause then resume, promote, promote
--full, rollback, abort over the control socket), at a moment drawn the
same way; those draws come after the others, so the fleet faults of a
seed's runs are the ones they were before operator commands existed.

After each run, and after its resume when the run left something to
resume, the invariants of the README's "Faults and guards" are checked on
the hosts themselves (`Checks`). A run with a violation is saved as a case
directory (schedule, plan, journals, console output, load summary);
`bench/soak.py --replay CASE` runs that schedule again. What clients saw is
judged by bench/soak_rules.py: every excuse bounded in time (a fault's
injection to its repair plus a few seconds), at least 90 % of the due
requests sent; each record keeps the failed requests and the faults' times,
and `bench/soak.py --recheck RUNS_JSONL...` judges recorded runs again.

    ROLLOUT_SANDBOX_NET=5 PYTHONPATH=$PWD python3 bench/soak.py --runs 40 --seed 1

A fault is one entry of FAULTS: how to inject it at its moment, how the
operator heals it before `resume`, and whether it voids the zero-failure
promise to clients. An operator command is an entry of OPERATOR whose
`inject` sends the command (`console VERB PID`) and records the run's
answer in the fired entry (`reply`), which the checks read.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, keep_compressed, machine, read_text, start, today
from console.control.runs import SOCKET_SUFFIX, control_dir
from console.journal import read_journal, verify
from inventory.nginx_config import parse_pools
from load import SteadyLoad
from rollout_helpers import (
    groups_setup,
    install_lb,
    managed_config,
    plan_file,
    units_setup,
)
from soak_rules import (
    Request,
    clean_good_run_failed,
    during_outage,
    in_flight_on_vanished_host,
    left_for_a_human,
    lost_after_last_change,
    names,
    on_a_degraded_link_now,
    on_degraded_link,
    recheck,
    refused_by_a_host_powered_off,
    refused_by_a_restarted_unit,
    retried_release,
    routes_disagree,
    sent_share,
    too_few_sent,
)

RATE = 100  # requests per second; the generator's workers follow it (tests/load.py: workers_for)
LOCKS = "/var/lib/rollout-console/locks"
SITE = "/etc/nginx/sites-enabled/agent"
OLD = "1.0.0"
FINISHED = {"succeeded", "rolled_back", "refused"}  # console/resume.py: nothing left to resume
DEADLINE = 6  # health.deadline (s); a bad start_delay is beyond it
TIMINGS = {"health": {"interval": "0.5s", "passes": 2, "deadline": f"{DEADLINE}s", "timeout": "1s"},
           "drain": {"timeout": "3s"}, "deploy": {"timeout": "15s"}}
STRATEGIES = ("rolling", "canary", "blue_green/units", "blue_green/groups")
BAD = {  # behaviour -> a draw of a clearly bad value (the judge or the deploy must stop it)
    "error_rate": lambda r: {"error_rate": round(r.uniform(0.1, 0.3), 2)},
    "error_status": lambda r: {"error_rate": round(r.uniform(0.1, 0.3), 2), "error_status": r.choice([502, 503])},
    "latency_ms": lambda r: {"latency_ms": r.choice([300, 500, 800])},
    "health_fail": lambda r: {"health_fail": True},
    "start_fail": lambda r: {"start_fail": True},
    "start_delay": lambda r: {"start_delay": DEADLINE + 4},
}
MOMENTS = [("run_started", None, 1), ("step_started", None, 1), ("step_started", None, 2),
           ("step_started", None, 3), ("traffic", None, 1), ("traffic", None, 2), ("gate", None, 1),
           ("gate", None, 3), ("gate", None, 6)] + [
    ("instance", phase, n) for phase in ("draining", "deploying", "restarting", "checking", "live") for n in (1, 2, 4)]


# -- the schedule ------------------------------------------------------------------------------------

def schedule_for(seed: int, index: int, agents: list[str]) -> dict:
    """Run `index` of `seed`: every random choice of the run, as JSON."""
    r = random.Random(f"{seed}/{index}")
    strategy = r.choice(STRATEGIES)
    kind = r.choice(["good", "good", *BAD])  # one in four good
    release = {"version": f"2.{index}.{seed}" + ("" if kind == "good" else f"-{kind.replace('_', '')}"),
               "bad": kind if kind != "good" else None,
               "behaviour": {} if kind == "good" else BAD[kind](r)}
    faults = []
    harder = seed >= HARDER_FROM
    kinds = sorted([*FAULTS, TOGETHER] if harder else set(FAULTS) - HARDER)
    for _ in range(r.choice([0, 1, 1, 2, 2])):
        name = r.choice(kinds)
        if name == TOGETHER:
            pair = r.sample(sorted(FAULTS), 2)
            event, phase, nth = r.choice(MOMENTS)
            faults += [{"fault": x, "host": r.choice(agents), "together": True,
                        "moment": {"kind": event, "phase": phase, "nth": nth}} for x in pair]
            continue
        event, phase, nth = r.choice(MOMENTS_OF.get(name, MOMENTS) if harder else MOMENTS)
        faults.append({"fault": name, "host": r.choice(agents),
                       "moment": {"kind": event, "phase": phase, "nth": nth}})
    shape = {"rolling": {"batch": r.choice([1, 2, "34%"]), "interval": "2s"},
             "canary": {"weights": sorted(r.sample([10, 20, 50], r.choice([1, 2])))}}
    if len(faults) < 2 and r.random() < 0.5:  # drawn last: the draws above stay what they were
        event, phase, nth = r.choice(MOMENTS)
        faults.append({"fault": r.choice(sorted(OPERATOR)), "host": "-",
                       "moment": {"kind": event, "phase": phase, "nth": nth}})
    return {"seed": seed, "index": index, "strategy": strategy, "keepalive": index % 2 == 1,
            "release": release, "faults": faults, "resume": r.choice(["rollback", "continue"]),
            "shape": shape.get(strategy, {})}


def describe(s: dict) -> str:
    rel = s["release"]
    faults = ", ".join(f"{f['fault']}" + (f"({f['host']})" if f["host"] != "-" else "") + f" at {f['moment']['kind']}"
                       + (f"/{f['moment']['phase']}" if f["moment"]["phase"] else "") + f"#{f['moment']['nth']}"
                       for f in s["faults"]) or "none"
    return (f"run {s['index']} seed {s['seed']}: {s['strategy']} {json.dumps(s['shape'])} "
            f"keep-alive {'on' if s['keepalive'] else 'off'}; release {rel['version']} "
            f"{json.dumps(rel['behaviour'])}; faults: {faults}; resume: {s['resume']}")


def write_plan(s: dict, work: Path, fleet) -> tuple[Path, Path]:
    """(plan path, inventory path) for the schedule."""
    # max_window 60 s: a canary window passes only once the tail test has told the release's tail
    # (about 300 of its latencies, docs/judge.md); at a 10 % step of 100 req/s 30 s was not always
    # enough: seed 15 run 33, a good release, 137 of its latencies judged when the window ended at
    # 36 s, inconclusive (exit 7), as the judge should say.
    th = {"error_rate": "1%", "persistence": 2, "min_requests": 20, "max_window": "60s"}
    common = {**TIMINGS, "version": s["release"]["version"], "thresholds": th,
              "canary": {"sample_interval": "1s"}}
    strategy, _, form = s["strategy"].partition("/")
    if strategy == "rolling":
        return plan_file(work, "rolling", **common, rolling=s["shape"]), fleet.inventory_path
    if strategy == "canary":
        steps = [x for w in s["shape"]["weights"] for x in ({"set_weight": w}, {"analysis": "8s"})]
        common["canary"] = {"sample_interval": "1s", "steps": [*steps, {"set_weight": 100}]}
        return plan_file(work, "canary", **common), fleet.inventory_path
    bg = {"mode": form, "active": "blue", "rollback_window": "6s"}
    if form == "groups":
        inventory, _ = groups_setup(fleet, work)
        return plan_file(work, "blue_green", **common, blue_green={**bg, "blue": "blue", "green": "green"}), inventory
    return plan_file(work, "blue_green", **common, blue_green=bg), fleet.inventory_path


# -- faults --------------------------------------------------------------------------------------------

@dataclass
class Fault:
    inject: Callable[[Run, dict], None]  # blocking; runs in a thread at the fault's moment
    heal: Callable[[Run, dict], None] = lambda run, f: None  # what an operator does before `resume`
    ends_output: bool = False  # the console's output stops (killed, or its terminal is gone)


def _flap(run: Run, f: dict) -> None:
    """Health fails on an updated instance for 3 s, then recovers: the
    behaviour is flipped in the release's directory and the unit restarted,
    twice (only where that unit already runs the new version)."""
    slot, version = run.new_slot, run.schedule["release"]["version"]
    base = run.schedule["release"]["behaviour"]
    for behaviour in ({**base, "health_fail": True}, base):
        run.fleet.ssh(f["host"], f"d=/opt/agent/releases/{version}; [ -d $d ] && "
                      f"echo '{json.dumps(behaviour)}' > $d/behaviour.json && "
                      f"[ \"$(cat /opt/agent/slots/{slot}/current/VERSION)\" = {version} ] && "
                      f"systemctl restart agent@{slot}")
        time.sleep(3)


def _release_on(behaviour: dict) -> Callable[[Run, dict], None]:
    def inject(run: Run, f: dict) -> None:
        run.fleet.write_release([f["host"]], run.schedule["release"]["version"],
                                {**run.schedule["release"]["behaviour"], **behaviour})
    return inject


def _signal(sig: signal.Signals) -> Callable[[Run, dict], None]:
    return lambda run, f: run.proc.send_signal(sig) if run.proc.returncode is None else None


def _lb(command: str) -> Callable[[Run, dict], None]:
    return lambda run, f: run.fleet.ssh(run.fleet.lb_name, command)


# nginx running: a repair that fixes a broken line also starts nginx, which a boot of the LB with
# that line in place could not (seed 39 run 98: `nginx -t` broken, then the LB powered off)
NGINX_UP = "{ systemctl is-active -q nginx || systemctl start nginx; }"


def _boot_lb(run: Run, f: dict) -> None:
    """The operator boots the LB and waits for its sshd. nginx starts at
    boot unless a broken line someone left in its files stops it: then the
    repair of that line starts it (the repairs run last fault first, so
    the LB is back before its files are fixed), and the boot does not wait
    for it (it waited, 60 s, then ended the soak on net 8)."""
    from sandbox import start_host
    start_host(run.fleet.lb_name, state_dir=run.fleet.state_dir, wait=False)
    deadline = time.monotonic() + 60
    while run.fleet.ssh(run.fleet.lb_name, "true").returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{run.fleet.lb_name}: no sshd 60 s after its boot")
        time.sleep(0.5)
    run.fleet.ssh(run.fleet.lb_name, f"! nginx -t -q 2>/dev/null || {NGINX_UP}")


def _control(run: Run, f: dict, verb: str, *extra: str) -> str:
    """`console VERB PID [EXTRA]` from another shell, as an operator types
    it; returns its answer (accepted/refused: ..., or why it could not ask)."""
    if run.proc is None:
        return "no process"
    done = subprocess.run([sys.executable, "-m", "console", verb, str(run.proc.pid), *extra], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60)
    answer = (done.stdout.strip() or done.stderr.strip() or f"exit {done.returncode}").splitlines()[-1]
    f.setdefault("replies", []).append(f"{verb}: {answer}")
    return answer


def _operator(verb: str, *extra: str) -> Callable[[Run, dict], None]:
    def inject(run: Run, f: dict) -> None:
        f["accepted"] = _control(run, f, verb, *extra).startswith("accepted")
    return inject


PAUSE_HOLD = 3.0  # seconds the operator keeps a run paused (a duration chosen by the operator, not a wait for an event)


def _pause_then_resume(run: Run, f: dict) -> None:
    """`console pause`, then, once the run says it is paused (its phase
    event) or has ended, PAUSE_HOLD s of operator's pause, then `console
    resume`."""
    f["accepted"] = _control(run, f, "pause").startswith("accepted")
    if not f["accepted"]:
        return
    run.paused.wait(400)
    if run.proc is not None and run.proc.returncode is None:
        time.sleep(PAUSE_HOLD)
        _control(run, f, "resume")


# Operator commands from another shell; `accepted` in the fired entry says
# whether the run took the command (the checks hold it to it).
OPERATOR: dict[str, Fault] = {
    "op_pause_resume": Fault(_pause_then_resume),
    "op_promote": Fault(_operator("promote")),
    "op_promote_full": Fault(_operator("promote", "--full")),
    "op_rollback": Fault(_operator("rollback", "--yes")),
    "op_abort": Fault(_operator("abort", "--yes")),
}
STOPS = {"sigkill", "hangup", "sigint", "sigterm", "op_abort", "op_rollback"}  # end a run early, each its own way

# A lossy, slow link (issue 26). This kernel has no netem (CONFIG_NET_SCH_NETEM
# is not set, and it loads no modules), so the delay is a token bucket's
# queue on the host's egress (a 64 kbit/s link: queueing delay up to 400 ms,
# drops beyond it) and the loss is 10 % of its incoming packets dropped at
# random by nftables, run from this machine in the host's network namespace
# (the image carries no nft).
SLOW_LINK = ["tc", "qdisc", "replace", "dev", "host0", "root", "tbf", "rate", "64kbit", "burst", "4kb",
             "latency", "400ms"]
LOSSY_LINK = "add table inet soak; add chain inet soak in { type filter hook input priority 0; }; " \
             "add rule inet soak in numgen random mod 100 < 10 drop"


def _degrade(run: Run, f: dict) -> None:
    from sandbox import net_exec
    run.fleet.exec_in(f["host"], SLOW_LINK, check=True)
    done = net_exec(f["host"], ["nft", LOSSY_LINK], state_dir=run.fleet.state_dir)
    if done.returncode != 0:
        raise RuntimeError(f"nft on {f['host']}: {done.stderr.strip()}")


def _restore_link(run: Run, f: dict) -> None:
    from sandbox import net_exec
    run.fleet.exec_in(f["host"], ["tc", "qdisc", "del", "dev", "host0", "root"])
    net_exec(f["host"], ["nft", "delete table inet soak"], state_dir=run.fleet.state_dir)


# A full disk where releases are written: a 2 MB tmpfs holding a copy of
# /opt/agent/releases is bound over it and filled to the last block (the
# sandbox's own disk is the machine's, shared: never filled). The units
# keep the files they run; `install-release` of a new version finds no
# space. The operator frees the space (the filler goes); `clean` unmounts.
FULL = "/run/soak-full"
RELEASES = "/opt/agent/releases"
FILL = (f"mkdir -p {FULL} && mount -t tmpfs -o size=2m soak-full {FULL} && cp -a {RELEASES}/. {FULL}/ && "
        f"mount --bind {FULL} {RELEASES} && {{ dd if=/dev/zero of={RELEASES}/.filler bs=4k 2>/dev/null; true; }}")
UNFILL = f"umount {RELEASES} 2>/dev/null; umount {FULL} 2>/dev/null; true"


def _host_sh(command: str) -> Callable[[Run, dict], None]:
    return lambda run, f: run.fleet.exec_in(f["host"], ["sh", "-c", command], check=True)


# Someone else edits the console's managed file between two of its changes:
# a valid edit reloaded, or a broken one left on disk. The console must not
# write over either without saying so (Checks.foreign_edits), nor leave
# nginx broken; the operator takes the edit out before `resume`.
CONF = "/etc/nginx/conf.d/rollout-agent.conf"
FOREIGN = "# edited by someone else (soak)"
FOREIGN_BROKEN = "soak_bogus_directive on;"
FOREIGN_LINES = (FOREIGN, FOREIGN_BROKEN)
UNEDIT = f"sed -i -e '/^{FOREIGN}$/d' -e '/^{FOREIGN_BROKEN}$/d' {CONF}"

# The console's clocks jump between a run and its resume: a host's wall
# clock cannot be moved (the containers share the machine's kernel clock,
# and moving it moves every process on the machine), a time namespace
# cannot move a running process's clocks (offsets are fixed before its
# first process enters) nor CLOCK_REALTIME at all. So the run is killed
# (-9) at the moment, and its resume runs in a time namespace whose
# monotonic and boot-time clocks are a day ahead of the run's.
CLOCK_JUMP = ["unshare", "--time", "--monotonic", "86400", "--boottime", "86400"]

FAULTS: dict[str, Fault] = {
    "host_off": Fault(lambda run, f: run.fleet.stop_host(f["host"]),
                      lambda run, f: run.fleet.start_host(f["host"])),
    "link_cut": Fault(lambda run, f: run.fleet.exec_in(f["host"], ["ip", "link", "set", "host0", "down"]),
                      lambda run, f: run.fleet.exec_in(f["host"], ["ip", "link", "set", "host0", "up"])),
    "sshd_stop": Fault(lambda run, f: run.fleet.exec_in(f["host"], ["systemctl", "stop", "ssh"]),
                       lambda run, f: run.fleet.exec_in(f["host"], ["systemctl", "start", "ssh"])),
    "start_fail": Fault(_release_on({"start_fail": True})),
    "slow_start": Fault(_release_on({"start_delay": DEADLINE + 4})),
    "health_flap": Fault(_flap),
    # the backup is the file before the first injection: a second draw of this kind in the same
    # run (seed 26 run 55) must not back up the first one's line, which its repair then put back
    "nginx_t_rejects": Fault(_lb(f"{{ [ -f /root/site.bak ] || cp {SITE} /root/site.bak; }} && "
                                 f"echo 'bogus_directive;' >> {SITE}"),
                             _lb(f"[ -f /root/site.bak ] && mv /root/site.bak {SITE}; nginx -t -q && {NGINX_UP}")),
    "reload_no_take": Fault(_lb("kill -STOP $(cat /run/nginx.pid)"), _lb("kill -CONT $(cat /run/nginx.pid)")),
    "lb_off": Fault(lambda run, f: run.fleet.stop_host(run.fleet.lb_name), _boot_lb),
    "sigkill": Fault(_signal(signal.SIGKILL), ends_output=True),
    "hangup": Fault(_signal(signal.SIGHUP), ends_output=True),
    "sigint": Fault(_signal(signal.SIGINT)),
    "sigterm": Fault(_signal(signal.SIGTERM)),
    "slow_lossy_link": Fault(_degrade, _restore_link),
    "disk_full": Fault(_host_sh(FILL), _host_sh(f"rm -f {RELEASES}/.filler")),
    "foreign_edit": Fault(_lb(f"echo '{FOREIGN}' >> {CONF} && nginx -t -q && nginx -s reload"),
                          _lb(f"{UNEDIT} && nginx -t -q && nginx -s reload")),
    "foreign_broken": Fault(_lb(f"echo '{FOREIGN_BROKEN}' >> {CONF}"), _lb(f"{UNEDIT} && nginx -t -q && {NGINX_UP}")),
    "sigkill_mid_change": Fault(_signal(signal.SIGKILL), ends_output=True),
    "clock_jump": Fault(_signal(signal.SIGKILL), ends_output=True),
}
# Kinds drawn at moments of their own: a kill in the middle of a change
# (an instance restarting or drained out of nginx), a full disk as
# releases are installed, an edit between two of the console's changes.
MOMENTS_OF = {
    "sigkill_mid_change": [("instance", p, n) for p in ("draining", "restarting") for n in (1, 2, 4)],
    "disk_full": [("run_started", None, 1), ("step_started", None, 1), *(("instance", "deploying", n) for n in (1, 2))],
    "foreign_edit": [("traffic", None, n) for n in (1, 2, 3)],
    "foreign_broken": [("traffic", None, n) for n in (1, 2, 3)],
}
# The kinds of issue 26 (and two faults at one moment) are drawn from seed
# HARDER_FROM on: the runs of earlier seeds (their records, CI's fixed runs)
# keep the schedules they had.
HARDER = {"slow_lossy_link", "disk_full", "foreign_edit", "foreign_broken", "sigkill_mid_change", "clock_jump"}
TOGETHER = "two_at_once"  # a draw of two faults at one moment
HARDER_FROM = 9
ALL_FAULTS = {**FAULTS, **OPERATOR}


# -- one run -------------------------------------------------------------------------------------------

@dataclass
class Run:
    fleet: object
    schedule: dict
    work: Path
    proc: asyncio.subprocess.Process | None = None
    fired: list[dict] = field(default_factory=list)  # {fault, host, at (s since start), event}
    violations: list[str] = field(default_factory=list)
    outcome: dict = field(default_factory=dict)
    exit_lag: float = 0.0  # the longest a console process took to end after printing its result
    paused: threading.Event = field(default_factory=threading.Event)  # the run said "paused", or its output ended
    consoles: list[tuple[int, int | None]] = field(default_factory=list)  # (pid, exit code) of each console process
    last_change: dict[str, float] = field(default_factory=dict)  # output name -> when its last traffic event was read
    first_change: dict[str, float] = field(default_factory=dict)  # output name -> when its first traffic event was read
    decided: dict[str, float] = field(default_factory=dict)  # output name -> when its result line was read
    ended: dict[str, float] = field(default_factory=dict)  # output name -> when its console process ended

    @property
    def new_slot(self) -> str:
        return "green" if self.schedule["strategy"] == "blue_green/units" else "main"


def _key(event: dict) -> tuple[str, str | None]:
    return event.get("kind", ""), event.get("phase") if event.get("kind") == "instance" else None


def _matches(moment: dict, event: dict, counts: Counter) -> bool:
    """Is `event` the moment: the n-th event of its kind (and instance phase)?
    `counts` already includes this event."""
    return (moment["kind"], moment["phase"]) == _key(event) and counts[_key(event)] == moment["nth"]


async def _console(run: Run, args: list[str], journal: Path, out_name: str, t0: float,
                   faults: list[dict], clock: list[str] | None = None) -> tuple[int, float]:
    """Run one console process, firing `faults` at their moments; returns
    (exit code, seconds). Output goes to `out_name` in the run directory.
    `clock`: a command it runs under (CLOCK_JUMP), whose child it is."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run.proc = proc = await asyncio.create_subprocess_exec(
        *(clock or []), sys.executable, "-m", "console", *args, "--headless", "--output", "json", "--record", str(journal),
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, limit=64 * 2**20)
    started = time.monotonic()
    counts: Counter = Counter()
    pending = list(faults)
    tasks = []
    result_at = None
    pid = proc.pid
    with open(run.work / f"{out_name}.jsonl", "wb") as out, open(run.work / f"{out_name}.stderr", "wb") as err:
        errors = asyncio.create_task(_copy(proc.stderr, err))
        async for raw in proc.stdout:
            out.write(raw)
            if clock and pid == proc.pid:  # the console is running by its first line: its pid, not unshare's
                pid = int((Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split() or [pid])[0])
            if not raw.startswith(b"{"):
                continue
            event = json.loads(raw)
            if event.get("kind") == "result":
                result_at = time.monotonic()
            if event.get("kind") == "phase" and event.get("phase") == "paused":
                run.paused.set()
            counts[_key(event)] += 1
            if event.get("kind") == "traffic":
                run.last_change[out_name] = time.monotonic()
                run.first_change.setdefault(out_name, run.last_change[out_name])
            ending = False
            for f in [f for f in pending if _matches(f["moment"], event, counts)]:
                pending.remove(f)
                fired = {**f, "at": time.monotonic() - t0, "t": time.monotonic(), "event": event.get("kind")}
                run.fired.append(fired)
                tasks.append(asyncio.create_task(asyncio.to_thread(inject, run, fired)))
                ending = ending or ALL_FAULTS[f["fault"]].ends_output
            if ending:  # killed, or its terminal went away: nobody reads its output any more
                for fd in (1, 2):
                    proc._transport.get_pipe_transport(fd).close()
                errors.cancel()
                break
        await asyncio.gather(errors, return_exceptions=True)
    run.paused.set()  # no more output: nobody waits for a "paused" that cannot come
    try:
        await asyncio.wait_for(proc.wait(), 400)
    except TimeoutError:
        run.violations.append("the console did not end within 400 s: killed")
        proc.kill()
        await proc.wait()
    run.consoles.append((pid, proc.returncode))
    run.ended[out_name] = time.monotonic()
    run.decided[out_name] = result_at if result_at is not None else run.ended[out_name]
    if result_at is not None:  # from the result line to the process's end: shutdown
        run.exit_lag = max(run.exit_lag, time.monotonic() - result_at)
    for t in tasks:
        await t
    return proc.returncode, time.monotonic() - started


async def _copy(stream: asyncio.StreamReader, out) -> None:
    async for line in stream:
        out.write(line)


def prepare(fleet, s: dict, work: Path) -> tuple[Path, Path, str]:
    """Clean fleet, release shipped, LB matching the plan; (plan, inventory,
    managed file before the run)."""
    clean(fleet)
    plan, inventory = write_plan(s, work, fleet)
    fleet.write_release(None, s["release"]["version"], s["release"]["behaviour"])
    if s["strategy"] == "blue_green/units":
        install_lb(fleet, units_setup(fleet))
    elif s["strategy"] == "blue_green/groups":
        install_lb(fleet, groups_setup(fleet, work)[1])
    return plan, inventory, managed_config(fleet)


def clean(fleet) -> None:
    """The fleet as `sandbox up` left it: every host running, links and sshd
    up, nginx running the initial config, no lock, agents on 1.0.0."""
    running = {h["name"]: h["running"] for h in fleet.status()}
    for name in [fleet.lb_name, *fleet.agent_names]:
        if not running.get(name):
            fleet.start_host(name)
    from sandbox import net_exec
    for name in fleet.agent_names:
        fleet.exec_in(name, ["sh", "-c", f"ip link set host0 up; systemctl start ssh; tc qdisc del dev host0 root "
                                         f"2>/dev/null; {UNFILL}"])
        net_exec(name, ["nft", "delete table inet soak"], state_dir=fleet.state_dir)
    # a soak that ended mid-run may have left the site file broken (its backup beside it) and nginx
    # stopped: seed 39's runs 98-127 ran against an LB whose nginx had failed at a boot that way.
    # reset_lb's reload then fails (set-up fails) unless nginx runs again by then
    fleet.exec_in(fleet.lb_name, ["sh", "-c", f"kill -CONT $(cat /run/nginx.pid) 2>/dev/null; "
                                              f"[ -f /root/site.bak ] && mv /root/site.bak {SITE}; "
                                              f"nginx -t -q 2>/dev/null && {NGINX_UP}; true"])
    fleet.reset_lb()
    fleet.reset_agents()


async def run_one(fleet, s: dict, work: Path, log: Callable[[str], None] = print) -> Run:
    """Prepare, run under load with the schedule's faults, check, heal,
    resume if needed, check again. Returns the run with its violations."""
    shutil.rmtree(work, ignore_errors=True)  # a crashed soak's journal there made `--record` refuse (seed 2 run 93)
    work.mkdir(parents=True, exist_ok=True)
    (work / "schedule.json").write_text(json.dumps(s, indent=1))
    log(describe(s))
    try:
        plan, inventory, before = prepare(fleet, s, work)
    except (AssertionError, OSError, subprocess.SubprocessError) as exc:
        # The sandbox itself broke (seen once: systemd in a container failing
        # a unit with 219/CGROUP): reboot the agents and set up once more.
        log(f"  set-up failed ({str(exc).splitlines()[0][:160]}); rebooting the agents and retrying")
        for name in fleet.agent_names:
            fleet.stop_host(name)
        plan, inventory, before = prepare(fleet, s, work)
    run = Run(fleet, s, work)
    journal, resumed = work / "run.journal.jsonl", work / "resume.journal.jsonl"
    args = ["--plan", str(plan), "--inventory", str(inventory)]
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=RATE, keepalive=s["keepalive"],
                          retry_reset=s["keepalive"], max_seconds=900) as load:
        await asyncio.sleep(0.5)
        t0 = time.monotonic()
        code, took = await _console(run, args, journal, "run", t0, s["faults"])
        run_end = time.monotonic()
        # The checks and repairs block (SSH, nsenter): in a thread, so the
        # load's workers on this event loop keep their rate meanwhile (seed 9
        # run 209 at f47952b: a burst of 34 client connect time-outs to the LB
        # as the loop came back from checks run on it, 20 s after the console ended).
        checks = Checks(run, before, journal)
        await asyncio.to_thread(checks.after, code, False)
        await asyncio.to_thread(heal_faults, run)
        resume_code = None
        close = read_journal(journal).close if journal.exists() else None
        if journal.exists() and (close is None or close.outcome not in FINISHED):
            extra = ["--rollback"] if s["resume"] == "rollback" else ["--auto-promote"]
            jumped = any(f["fault"] == "clock_jump" for f in run.fired)
            resume_code, _ = await _console(run, ["resume", str(journal), *extra], resumed, "resume", t0, [],
                                            clock=CLOCK_JUMP + ["--fork", "--kill-child"] if jumped else None)
            for f in (f for f in run.fired if f["fault"] == "host_off"):  # until when its refusals are excused
                f["rerouted"] = run.first_change.get("resume")  # (soak_rules.refused_by_a_host_powered_off)
            await asyncio.to_thread(Checks(run, before, resumed).after, resume_code, True)
        else:
            await asyncio.to_thread(checks.finals)
        done = time.monotonic()
        await asyncio.sleep(0.5)
    first = min((f["at"] for f in run.fired), default=None)
    run.outcome = {"exit": code, "seconds": round(took, 1), "resume_exit": resume_code,
                   "fired": [f["fault"] for f in run.fired], "exit_lag": round(run.exit_lag, 1),
                   "to_safe": None if first is None else round(run_end - t0 - first, 2),
                   "to_resumed": None if first is None or resume_code is None else round(done - t0 - first, 2),
                   "operator": [{"fault": f["fault"], "accepted": f.get("accepted"), "replies": f.get("replies", [])}
                                for f in run.fired if f["fault"] in OPERATOR]}
    if clean_good_run_failed(s, run.outcome["fired"], code, resume_code):
        run.violations.append(f"a good release with nothing injected ended {code}"
                              + (f", resume {resume_code}" if resume_code is not None else ""))
    client_checks(run, load.result)
    (work / "load.json").write_text(json.dumps(run.outcome["clients"], indent=1))
    log(f"  -> exit {code} in {took:.1f}s" + (f", resume exit {resume_code}" if resume_code is not None else "")
        + f"; exit lag {run.exit_lag:.1f}s; fired {run.outcome['fired'] or 'nothing'}"
        + f"; clients {run.outcome['clients']['summary']}"
        + (f"; VIOLATIONS: {run.violations}" if run.violations else "; ok"))
    return run


def inject(run: Run, fired: dict) -> None:
    """Inject a fault at its moment. One whose host an earlier fault of the
    run powered off cannot be (seed 40 run 27: a slow, lossy link due on a
    host already off, whose namespace is gone, ended the soak): it never
    came, so it is not in `run.fired`, excuses nothing and is not repaired."""
    from sandbox.common import SandboxError
    try:
        ALL_FAULTS[fired["fault"]].inject(run, fired)
    except SandboxError as exc:
        if "is not running" not in str(exc):
            raise
        run.fired.remove(fired)


def heal_faults(run: Run) -> None:
    """What the operator does before `console resume`: every host back,
    links and sshd up, the site file fixed, the nginx master running. The
    last fault is undone first: sshd cannot be started on a host that was
    then powered off until the host is back (soak run 93 of seed 2 ended
    there). Each fault's repair time bounds what it may excuse
    (soak_rules.window)."""
    for f in reversed(run.fired):
        ALL_FAULTS[f["fault"]].heal(run, f)
        f["healed"] = time.monotonic()


# -- the invariants ------------------------------------------------------------------------------------

SLOT_OF_PORT = {8080: "main", 8081: "blue", 8082: "green"}


class Checks:
    """The README's promises, read from the hosts after a console process
    ended: who nginx routes to, what each routed instance runs, the managed
    file, the journal, the lock, the exit code."""

    def __init__(self, run: Run, before: str, journal: Path):
        self.run, self.fleet, self.before, self.journal = run, run.fleet, before, journal
        self.s = run.schedule
        self.new = self.s["release"]["version"]

    def fail(self, what: str) -> None:
        self.run.violations.append(f"{self.journal.name}: {what}")

    def result(self) -> dict:
        name = "resume" if self.journal.name.startswith("resume") else "run"
        out = self.run.work / f"{name}.jsonl"
        lines = out.read_bytes().splitlines() if out.exists() else []
        found = [json.loads(x) for x in lines if x.startswith(b'{"kind":"result"')]
        if found:
            return found[-1]
        # Its output was cut (a terminal hangup): the journal's run_finished holds the same message (seed 2 run 94).
        records = [json.loads(x) for x in self.journal.read_bytes().splitlines() if b'"run_finished"' in x] \
            if self.journal.exists() else []
        return next((r["event"] for r in reversed(records) if r.get("event", {}).get("kind") == "run_finished"), {})

    def down(self) -> set[str]:
        """Hosts the controller cannot reach now (powered off, link cut)."""
        running = {h["name"]: h["running"] for h in self.fleet.status()}
        out = {n for n in [self.fleet.lb_name, *self.fleet.agent_names] if not running.get(n)}
        for f in self.run.fired:
            if f["fault"] == "link_cut" and running.get(f["host"]):
                up = self.fleet.exec_in(f["host"], ["cat", "/sys/class/net/host0/operstate"], check=False)
                if "up" not in (up.stdout or ""):
                    out.add(f["host"])
        return out

    def after(self, code: int, final: bool) -> None:
        if code == 1:
            self.fail("exit 1 (internal error)")
        if code == -signal.SIGKILL and not final:
            return  # killed by the soak: the resume is checked
        if not self.journal.exists():
            self.fail("no journal")
            return
        v = verify(self.journal)
        if not v.ok:
            self.fail(f"journal does not verify: {v.message}")
        closed = read_journal(self.journal).close
        if closed is not None and closed.exit_code not in (None, code) and code >= 0:
            self.fail(f"exit {code} but the journal closed with {closed.exit_code}")
        exit_code = closed.exit_code if closed is not None and closed.exit_code is not None else code
        self.fleet_agrees(exit_code, self.result().get("message", ""), final)
        if self.s["release"]["bad"] and exit_code == 0 and not self.unseen_by_design() and not self.promoted():
            self.fail(f"a bad release ({self.s['release']['bad']}) succeeded")
        if not final:
            self.operator_obeyed(exit_code)
        if final:
            self.finals()

    def accepted(self, name: str) -> bool:
        return any(f["fault"] == name and f.get("accepted") for f in self.run.fired)

    def promoted(self) -> bool:
        """An operator's promote ends an analysis window as a pass (README,
        operator commands): a bad release may then succeed, by the
        operator's choice."""
        return self.accepted("op_promote") or self.accepted("op_promote_full")

    def operator_obeyed(self, code: int) -> None:
        """A run that accepted rollback ends rolled back (3) or failed
        naming what it could not put back (4, checked by fleet_agrees); one
        that accepted abort ends aborted (5), or 3/4 when a failure was
        already being rolled back. Another stop (a signal) may come first."""
        others = {f["fault"] for f in self.run.fired} & STOPS
        if self.accepted("op_rollback") and code not in (3, 4) and others <= {"op_rollback"}:
            self.fail(f"rollback accepted, but the run ended with exit {code}")
        if self.accepted("op_abort") and code not in (3, 4, 5) and others <= {"op_abort"}:
            self.fail(f"abort accepted, but the run ended with exit {code}")

    def unseen_by_design(self) -> bool:
        """Blue-green's new colour has no baseline after the switch (README,
        "How a release is judged"): a slower release under the absolute p95
        ceiling passes there by design."""
        return self.s["release"]["bad"] == "latency_ms" and self.s["strategy"].startswith("blue_green")

    @property
    def process(self) -> str:
        """The output name of the console process this journal is of."""
        return "resume" if self.journal.name.startswith("resume") else "run"

    def lost_after_last_change(self, host: str) -> bool:
        """`host` vanished after this process's last nginx change, just
        before it gave its result (soak_rules.lost_after_last_change)."""
        return lost_after_last_change(self.run.fired, host, self.fleet.lb_name,
                                      self.run.last_change.get(self.process), self.run.decided[self.process],
                                      self.run.ended[self.process])

    def journaled_routes(self) -> set[str]:
        """Where the journals say traffic goes: the last traffic change of
        the run and its resume so far, else the pools before the run."""
        from strategies.events import TrafficChanged
        journals = [self.run.work / "run.journal.jsonl", *([self.journal] if self.process == "resume" else [])]
        changes = [e for j in journals if j.exists() for e in read_journal(j).events if isinstance(e, TrafficChanged)]
        if changes:
            return {member for pool in changes[-1].pools.values() for member in pool}
        return {f"{b.address}:{b.port}" for pool in parse_pools(self.before, "agent").values() for b in pool}

    def fleet_agrees(self, code: int, message: str, final: bool) -> None:
        down = self.down()
        if self.fleet.lb_name in down:
            if (code not in (4, 6) or not names(message, self.fleet.lb_name)) and \
                    not self.lost_after_last_change(self.fleet.lb_name):
                self.fail(f"LB down, exit {code}, message does not name it: {message!r}")
            return
        conf = managed_config(self.fleet)
        nginx_broken = any(f["fault"] in ("nginx_t_rejects", "foreign_broken") for f in self.run.fired) and not final
        if not final:
            self.foreign_edits(conf)
        conf = without_foreign(conf)
        if not nginx_broken and self.fleet.ssh(self.fleet.lb_name, "nginx -t -q").returncode != 0:
            self.fail("nginx -t fails on the LB")
        routed = {(b.address, b.port) for pool in parse_pools(conf, "agent").values() for b in pool}
        host_of = {ip: n for n, ip in self.fleet.agents.items()}
        expected = self.expected(routed)
        for ip, port in sorted(expected - routed):
            if not names(message, host_of[ip]):
                self.fail(f"{host_of[ip]}:{port} is out of nginx and the result does not name it: {message!r}")
        versions = {}
        for ip, port in sorted(routed):
            if host_of.get(ip) in down:
                if not left_for_a_human(code, host_of[ip], message) and not self.lost_after_last_change(host_of[ip]):
                    self.fail(f"nginx routes to {host_of.get(ip)}:{port}, which is down")
                continue
            code_h, body = self.health(ip, port)
            if code_h == 0 and on_a_degraded_link_now(self.run.fired, host_of[ip]) \
                    and left_for_a_human(code, host_of[ip], message):
                continue  # no answer through its degraded link, and the run stopped naming it for a human
            installed = self.fleet.exec_in(host_of[ip], ["cat", f"/opt/agent/slots/{SLOT_OF_PORT[port]}/current/VERSION"],
                                           check=False).stdout.strip()
            versions[(ip, port)] = body.get("version")
            if body.get("version") != installed:
                self.fail(f"{host_of[ip]}:{port} runs {body.get('version')} but has {installed!r} installed")
            if code_h != 200:
                self.fail(f"{host_of[ip]}:{port} is in nginx but its health answers {code_h}")
        if routes_disagree(code, {f"{ip}:{port}" for ip, port in routed}, self.journaled_routes()):
            self.fail(f"exit {code} but nginx routes to {sorted(routed)}, not where the journal last put traffic")
        seen = set(versions.values())
        if not seen <= {OLD, self.new}:
            self.fail(f"routed instances run {sorted(map(str, seen))}")
        if code == 0 and seen != {self.new}:
            self.fail(f"exit 0 but nginx routes to {sorted(map(str, seen))}")
        if code in (3, 6) and seen != {OLD}:
            self.fail(f"exit {code} but nginx routes to {sorted(map(str, seen))}")
        same_shape = code in (3, 6) or (code == 0 and not self.s["strategy"].startswith("blue_green"))
        if same_shape and conf != self.before:
            self.fail(f"exit {code}: the managed file is not the original")

    def foreign_edits(self, conf: str) -> None:
        """Someone else's edit of the managed file (foreign_edit,
        foreign_broken) is still there when the console process ends: the
        console may refuse to go on, never write over it unsaid."""
        for f in self.run.fired:
            line = {"foreign_edit": FOREIGN, "foreign_broken": FOREIGN_BROKEN}.get(f["fault"])
            if line and line not in conf.splitlines():
                self.fail(f"someone else's edit of the managed file ({line!r}) was written over")

    def health(self, ip: str, port: int) -> tuple[int, dict]:
        try:
            return self.fleet.health(ip, port)
        except OSError as exc:  # refused, timed out
            return 0, {"error": repr(exc)}

    def expected(self, routed: set[tuple[str, int]]) -> set[tuple[str, int]]:
        """The instances that should serve, given what is routed: every
        host's instance on each routed port (rolling, canary, blue-green
        units); in the groups form, every host of the routed group."""
        ips = self.fleet.agent_ips
        if self.s["strategy"] == "blue_green/groups":
            groups = [ips[:3], ips[3:]]
            return {(ip, 8080) for g in groups if any((x, 8080) in routed for x in g) for ip in g}
        ports = {p for _, p in routed} or {8080}
        return {(ip, p) for ip in ips for p in ports}

    def finals(self) -> None:
        """Nothing left behind on the LB or the controller: no lock, no
        control socket, no console process."""
        if self.fleet.lb_name not in self.down():
            locks = self.fleet.ssh(self.fleet.lb_name, f"ls {LOCKS} 2>/dev/null").stdout.split()
            if locks:
                self.fail(f"lock left on the LB: {locks}")
        for pid, code in self.run.consoles:  # a SIGKILLed one cannot remove its socket: the next client does
            left = [p.name for p in control_dir().glob(f"*-{pid}{SOCKET_SUFFIX}")] if code != -signal.SIGKILL else []
            if left:
                self.fail(f"control socket left by console pid {pid} (exit {code}): {left}")
        work = str(self.run.work)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "-m console" in cmd and work in cmd:
                self.fail(f"console process left: {pid} {cmd[:120]}")


def without_foreign(conf: str) -> str:
    """The managed file without the lines someone else added (the soak's
    foreign edits): what the console wrote."""
    return "".join(line for line in conf.splitlines(keepends=True) if line.rstrip("\n") not in FOREIGN_LINES)


def client_checks(run: Run, result) -> None:
    """0 failed requests, and at least MIN_SENT_SHARE of the due ones sent;
    a failure is set apart only when the bad release answered it itself
    (X-Agent-Version names it), or it falls in the window of a fault that
    explains it (soak_rules: in flight on a vanished host or refused by one
    powered off, an LB outage, a slow, lossy link, a unit the fault restarted
    under a release of retried errors).
    The failed requests and the faults' times are recorded, relative to the
    load's start, so `--recheck` can judge the run again."""
    bad = run.schedule["release"]["version"] if run.schedule["release"]["bad"] else None
    failed = [Request(r.t, r.status, r.version, r.error) for r in result.failed]
    retried = retried_release(run.schedule["release"])
    # each failure goes to the first excuse that holds for it, else it is foreign
    excuses: list[tuple[str, Callable[[Request], bool]]] = [
        ("own", lambda r: bad is not None and r.version == bad),
        ("lost", lambda r: in_flight_on_vanished_host(run.fired, r) or refused_by_a_host_powered_off(run.fired, r)),
        ("outage", lambda r: during_outage(run.fired, r)),
        ("slow", lambda r: on_degraded_link(run.fired, r)),
        ("restarted", lambda r: refused_by_a_restarted_unit(run.fired, r, retried)),
    ]
    kinds: dict[str, list[Request]] = {name: [] for name, _ in excuses} | {"foreign": []}
    for r in failed:
        kinds[next((name for name, holds in excuses if holds(r)), "foreign")].append(r)
    own, lost, outage, slow, restarted, foreign = (kinds[k] for k in ("own", "lost", "outage", "slow", "restarted",
                                                                       "foreign"))
    if foreign:
        run.violations.append(f"clients: {len(foreign)} failed requests not by the bad release, e.g. "
                              + "; ".join(f"{r.status} {r.version} {r.error[:80]}" for r in foreign[:3]))
    share = sent_share(result.sent, result.rate, result.duration)
    if too_few_sent(result.sent, result.rate, result.duration):
        run.violations.append(f"clients: only {share:.0%} of the requests due were sent ({result.summary()})")
    t0 = result.started

    def since(x: float | None) -> float | None:
        return None if x is None else round(x - t0, 3)
    run.outcome["fired_at"] = [{"fault": f["fault"], "host": f["host"], "t": since(f["t"]), "healed": since(f.get("healed")),
                                **({"rerouted": since(f["rerouted"])} if "rerouted" in f else {})}
                               for f in run.fired]
    run.outcome["clients"] = {"sent": result.sent, "due": round(result.rate * result.duration),
                              "sent_share": round(share, 3), "rate": result.rate,
                              "duration": round(result.duration, 2), "failed": len(failed), "own": len(own),
                              "in_flight_lost": len(lost), "outage": len(outage), "degraded_link": len(slow),
                              "restarted_unit": len(restarted),
                              "foreign": len(foreign),
                              "voided": bool(outage), "resets_retried": result.resets,
                              "failed_requests": [{"t": round(r.t - t0, 3), "status": r.status, "version": r.version,
                                                   "error": r.error[:120]} for r in failed],
                              "summary": result.summary() + (f" ({len(own)} by the bad release)" if own else "")
                              + (f" ({len(lost)} in flight on a vanished host)" if lost else "")
                              + (f" ({len(outage)} during the LB's outage)" if outage else "")
                              + (f" ({len(slow)} on a slow, lossy link)" if slow else "")
                              + (f" ({len(restarted)} refused by a unit the fault restarted)" if restarted else "")}


# -- the soak ------------------------------------------------------------------------------------------

def save_case(run: Run, cases: Path) -> Path:
    s = run.schedule
    case = cases / f"seed{s['seed']}-run{s['index']}"
    if case.exists():
        shutil.rmtree(case)
    shutil.copytree(run.work, case, ignore=shutil.ignore_patterns("run.jsonl", "resume.jsonl"))  # = the journals
    for journal in case.glob("*.journal.jsonl"):  # kept small in the repository; `--replay` reads schedule.json
        keep_compressed(journal)
    (case / "violations.txt").write_text("\n".join(run.violations) + "\n")
    (case / "outcome.json").write_text(json.dumps(run.outcome, indent=1))
    return case


def table(runs: list[Run]) -> list[str]:
    """Per fault kind: runs it fired in, how often it was injected, exits,
    client-visible failures, and the time from the fault to the end of the
    run (a safe state) and to the end of its resume."""
    by: dict[str, list[Run]] = defaultdict(list)
    injected: Counter = Counter()
    for run in runs:
        injected.update(run.outcome["fired"])
        for name in set(run.outcome["fired"]) or {"(none)"}:
            by[name].append(run)

    def med(xs):
        xs = sorted(x for x in xs if x is not None)
        return f"{xs[len(xs) // 2]:.1f} s (max {xs[-1]:.1f})" if xs else "-"
    lines = ["| fault | runs | injected | exits (run -> resume) | clients failed, not the release's (total, max/run) "
             "| in flight on a vanished host | bad release's own errors | fault to end of run "
             "| fault to end of resume | violations |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in sorted(by):
        rs = by[name]
        exits = Counter(f"{r.outcome['exit']}" + (f"->{r.outcome['resume_exit']}" if r.outcome["resume_exit"]
                                                  is not None else "") for r in rs)
        foreign = [r.outcome["clients"]["foreign"] for r in rs]
        lines.append(f"| {name} | {len(rs)} | {injected[name] or '-'} "
                     f"| {', '.join(f'{k} x{v}' for k, v in sorted(exits.items()))} "
                     f"| {sum(foreign)}, {max(foreign)} | {sum(r.outcome['clients'].get('in_flight_lost', 0) for r in rs)} "
                     f"| {sum(r.outcome['clients']['own'] for r in rs)} "
                     f"| {med(r.outcome['to_safe'] for r in rs)} | {med(r.outcome['to_resumed'] for r in rs)} "
                     f"| {sum(bool(r.violations) for r in rs)} |")
    return lines


def totals(runs: list[Run], label: str = "") -> str:
    """One line: rollouts, faults injected (and scheduled at moments that
    never came), client requests, runs with violations."""
    fired = sum(len(r.outcome["fired"]) for r in runs)
    sent = sum(r.outcome["clients"]["sent"] for r in runs)
    return (f"{label}{len(runs)} rollouts, {fired} faults injected "
            f"({sum(len(r.schedule['faults']) for r in runs) - fired} scheduled at moments that never came), "
            f"{sent:,} client requests, {sum(bool(r.violations) for r in runs)} runs with violations")


def load_runs(path: Path) -> list[Run]:
    """The runs of one runs.jsonl, each with the commit it ran at: the
    commit in the headers of the soak.txt beside it when they name one,
    else each record's own."""
    commits: set[str] = set()
    if (path.parent / "soak.txt").exists():
        commits = set(re.findall(r"^# bench/soak\.py, commit (\w+)", (path.parent / "soak.txt").read_text(), re.M))
    header = commits.pop() if len(commits) == 1 else None
    runs = []
    for line in read_text(path).splitlines():
        r = json.loads(line)
        runs.append(Run(None, r["schedule"], Path(), outcome={**r["outcome"], "commit": header or r.get("commit", "?")},
                        violations=r["violations"]))
    return runs


def combined_table(paths: list[str]) -> list[str]:
    """Several soaks' runs.jsonl as one: a totals line per file and for all,
    then one per-fault table over every run."""
    runs, lines = [], []
    for path in map(Path, paths):
        some = load_runs(path)
        commits = sorted({r.outcome["commit"] for r in some})
        lines.append(totals(some, f"{path} ({', '.join(commits)}): "))
        runs += some
    seen = Counter((r.schedule["seed"], r.schedule["index"]) for r in runs)
    again = sorted(k for k, n in seen.items() if n > 1)
    if len(paths) > 1:
        lines.append(totals(runs, "all: "))
    if again:
        lines.append(f"(run again, each counted every time: {', '.join(f'seed {s} run {i}' for s, i in again)})")
    return [*lines, "", *table(runs)]


def fleet_from_state():
    import sandbox
    from conftest import SANDBOX_HOSTS, SandboxFleet
    state = sandbox.DEFAULT_STATE_DIR
    inventory = sandbox.up(hosts=SANDBOX_HOSTS, state_dir=state, log=lambda m: None)
    return SandboxFleet(state_dir=state, inventory_path=inventory, key=state / "id_ed25519",
                        known_hosts=state / "known_hosts", lb_ip=sandbox.LB_IP,
                        agents={sandbox.agent_name(i): sandbox.agent_ip(i) for i in range(1, SANDBOX_HOSTS + 1)},
                        owned=False)


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


def header() -> str:
    dirty = subprocess.run(["git", "status", "--porcelain", "--", ".", ":!bench/results"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    return (f"# bench/soak.py, commit {commit()}{' (dirty: ' + ', '.join(dirty.split()[1::2]) + ')' if dirty else ''}\n"
            f"# {today()}; {machine()}; sandbox net {os.environ.get('ROLLOUT_SANDBOX_NET', '0')}")


def recheck_lines(paths: list[str]) -> list[str]:
    """Each soak's recorded runs judged again by today's rules
    (soak_rules.recheck): per file, the runs flagged then, the runs flagged
    now, and the runs whose record cannot decide an excuse; then every
    run flagged now."""
    lines = ["| runs.jsonl | runs | flagged then | flagged now | sent < 90 % | clean good run failed "
             "| undecidable from the record |", "| --- | --- | --- | --- | --- | --- | --- |"]
    detail = []
    for path in paths:
        records = [json.loads(x) for x in read_text(Path(path)).splitlines()]
        judged = [(r, *recheck(r)) for r in records]
        now = [(r, f) for r, f, _ in judged if f]
        lines.append(f"| {path} | {len(records)} | {sum(bool(r['violations']) for r in records)} | {len(now)} "
                     f"| {sum(any(x.startswith('sent') for x in f) for _, f in now)} "
                     f"| {sum(any(x.startswith('a good') for x in f) for _, f in now)} "
                     f"| {sum(bool(u) for _, _, u in judged)} |")
        detail += [f"{path}: seed {r['schedule']['seed']} run {r['schedule']['index']}: {'; '.join(f)}" for r, f in now]
    return [*lines, "", *detail]


async def soak(args) -> int:
    if args.recheck:
        start("soak-recheck")
        for line in recheck_lines(args.recheck):
            print(line)
        return 0
    if args.table:
        for line in combined_table(args.table):
            print(line)
        return 0
    fleet = fleet_from_state()
    out = Path(args.out or ROOT / "bench" / "results" / f"{time.strftime('%Y-%m-%d', time.gmtime())}-{commit()}")
    out.mkdir(parents=True, exist_ok=True)
    text = open(out / "soak.txt", "a")

    def log(line: str) -> None:
        print(line, flush=True)
        text.write(line + "\n")
        text.flush()
    log(header())
    started_at = commit()  # the code every run of this soak runs (later commits do not change a running soak)
    if args.replay:
        schedules = [json.loads((Path(args.replay) / "schedule.json").read_text())]
    else:
        schedules = [schedule_for(args.seed, i, fleet.agent_names) for i in range(args.start, args.start + args.runs)]
    runs = []
    work_root = Path(args.work)
    for s in schedules:
        run = await run_one(fleet, s, work_root / f"seed{s['seed']}-run{s['index']}", log)
        runs.append(run)
        with open(out / "runs.jsonl", "a") as f:
            f.write(json.dumps({"schedule": s, "outcome": run.outcome, "violations": run.violations,
                                "commit": started_at}) + "\n")
        if run.violations:
            log(f"  case saved: {save_case(run, out / 'cases')}")
    clean(fleet)
    log("\n" + totals(runs))
    for line in table(runs):
        log(line)
    return 1 if any(r.violations for r in runs) else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0, help="first run index (runs are independent per index)")
    p.add_argument("--replay", metavar="CASE", help="run a saved case's schedule again")
    p.add_argument("--table", metavar="RUNS_JSONL", nargs="+",
                   help="print one per-fault table of one or more soaks' runs.jsonl (with a totals line each)")
    p.add_argument("--recheck", metavar="RUNS_JSONL", nargs="+",
                   help="judge the recorded runs again by today's rules (no hosts): old vs new flags")
    p.add_argument("--out", help="where soak.txt and cases/ go (default bench/results/<date>-<commit>/)")
    p.add_argument("--work", default="/tmp/rollout-soak")
    return asyncio.run(soak(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
