"""What operators reach for, on the SIMULATED fleet: `status --watch` as
plain lines, `init`, `--limit` with `--list-hosts` (and a rollout refused
on a partial limit), `releases` and `rollback` of a finished run from the
journals' history, and help/version/status starting without the heavy
libraries. Real `python -m console` processes."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from control_helpers import ROOT, HeadlessRun, cli, control_env, status
from simfleet import write_inventory, write_plan
from strategies.plan import load_plan

PAUSE = {"sample_interval": "2s", "steps": [{"set_weight": 25}, {"pause": None}, {"set_weight": 100}]}


def paused(event) -> bool:
    return event["kind"] == "phase" and event["phase"] == "paused"


@pytest.fixture
def paused_run(tmp_path):
    """(env, a headless canary run paused at its promotion step); killed after."""
    env = control_env(tmp_path)
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary", canary=PAUSE)
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused, "the pause step")
        yield env, run
    finally:
        run.kill()


def test_status_watch_prints_a_line_per_change_and_exits_with_the_runs_code(paused_run):
    env, run = paused_run
    watch = subprocess.Popen([sys.executable, "-m", "console", "status", "--watch", "--interval", "0.1"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = watch.stdout.readline()
    assert " paused " in first and "weights canary 25%, stable 75%" in first
    assert cli(env, "promote").returncode == 0
    rest = watch.stdout.read().splitlines()
    assert watch.wait(60) == 0 and run.finish() == 0
    lines = [first.rstrip("\n"), *rest]
    assert all("\x1b" not in line for line in lines)  # plain text: no cursor movement, no colour
    bodies = [line.split(" ", 1)[1] for line in lines]
    assert len(bodies) == len(set(bodies))  # a line per change, never a repeat
    assert any("weights canary 100%" in b for b in bodies)
    assert bodies[-1].endswith("canary promoted: 4 instance(s) on 2.0.0") and " ENDED succeeded (exit 0)" in bodies[-1]


def test_status_watch_json_and_the_exit_code_of_a_rolled_back_run(paused_run):
    env, run = paused_run
    watch = subprocess.Popen([sys.executable, "-m", "console", "status", "--watch", "--output", "json",
                              "--interval", "0.1"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert json.loads(watch.stdout.readline())["phase"] == "paused"
    assert cli(env, "rollback", "--yes").returncode == 0
    records = [json.loads(line) for line in watch.stdout]
    assert watch.wait(60) == 3 and run.finish() == 3
    assert records[-1]["outcome"] == "rolled_back" and records[-1]["exit_code"] == 3


def test_init_writes_a_commented_plan_that_loads_and_runs_dry(tmp_path):
    env = control_env(tmp_path)
    out = tmp_path / "plan.yaml"
    proc = cli(env, "init", "--criticality", "critical", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text.startswith("# Plan written by `console init`") and "path: criticality=critical" in text
    plan = load_plan(str(out))
    assert (plan.strategy, plan.hosts, plan.load_balancers, plan.version) == ("blue_green", "agents", "lb", "2.0.0")
    dry = cli(env, "--plan", str(out), "--dry-run")
    assert dry.returncode == 0 and "DRY RUN" in dry.stdout, dry.stderr


@pytest.mark.parametrize("answers,strategy", [
    (["--criticality", "non-critical", "--budget", "sufficient"], "canary"),          # 10 hosts: medium
    (["--criticality", "non-critical", "--scale", "large"], "rolling"),
    (["--criticality", "non-critical", "--budget", "limited", "--test-env", "limited"], "rolling"),
])
def test_init_follows_the_decision_tree_and_the_plan_runs(tmp_path, answers, strategy):
    env = control_env(tmp_path)
    inv = write_inventory(tmp_path / "inv.yaml", hosts=3)
    out = tmp_path / "plan.yaml"
    proc = cli(env, "init", "--inventory", str(inv), "--service", "agent", *answers, "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert load_plan(str(out)).strategy == strategy
    if strategy == "canary":  # its indefinite pause: the run stops there, exit 7
        run = cli(env, "--plan", str(out), "--inventory", str(inv), "--headless", "--time-scale", "50")
        assert run.returncode == 7, run.stdout[-400:] + run.stderr


def test_init_never_overwrites_without_yes(tmp_path):
    env = control_env(tmp_path)
    out = tmp_path / "plan.yaml"
    out.write_text("mine\n")
    refused = cli(env, "init", "--criticality", "critical", "--output", str(out))
    assert refused.returncode == 2 and "pass --yes" in refused.stderr and out.read_text() == "mine\n"
    assert cli(env, "init", "--criticality", "critical", "--output", str(out), "--yes").returncode == 0
    assert load_plan(str(out)).strategy == "blue_green"


def test_init_names_the_group_it_cannot_guess(tmp_path):
    env = control_env(tmp_path)
    inv = tmp_path / "inv.yaml"
    inv.write_text(yaml.safe_dump({"all": {"vars": {"rollout_simulated": True}, "children": {
        "web": {"hosts": {"w1": None}}, "api": {"hosts": {"a1": None}}, "lb": {"hosts": {"lb-01": None}}}}}))
    proc = cli(env, "init", "--inventory", str(inv), "--criticality", "critical", "--output", "-")
    assert proc.returncode == 2 and "pass --hosts GROUP (candidates: api, web)" in proc.stderr
    ok = cli(env, "init", "--inventory", str(inv), "--hosts", "api", "--criticality", "critical", "--output", "-")
    assert ok.returncode == 0 and "hosts: api " in ok.stdout


def test_list_hosts_with_a_limit_touches_nothing(tmp_path):
    env = control_env(tmp_path)
    proc = cli(env, "--plan", "examples/rolling.yaml", "--limit", "agents:!agent-0[3-9]", "--list-hosts")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["hosts", "(3)", "[SIMULATED]:", "agent-01", "agent-02", "agent-10",
                                   "load", "balancers", "(1):", "lb-01", "left", "out", "by", "--limit,",
                                   "serving", "untouched", "(7):", *[f"agent-0{n}" for n in range(3, 10)]]
    assert status(env) == {"live": [], "ended": []}  # no run started
    assert not (tmp_path / "journals").exists()


def test_dry_run_with_a_limit_shows_only_those_hosts(tmp_path):
    proc = cli(control_env(tmp_path), "--plan", "examples/rolling.yaml", "--limit", "agent-0[12]", "--dry-run")
    assert proc.returncode == 0 and "2 instance(s)" in proc.stdout
    steps = proc.stdout.split("\nstep 1:", 1)[1]
    assert "agent-01$" in steps and "agent-03" not in steps
    assert "left out by --limit, serving untouched: agent-03, agent-04, agent-05" in proc.stdout


def journal_events(env, stdout: str) -> list[dict]:
    path = stdout.rsplit("journal ", 1)[1].split()[0]
    return [r["event"] for r in map(json.loads, open(path)) if r.get("type") == "event"]


def test_a_rollout_on_part_of_the_upstream_changes_only_the_limited_hosts(tmp_path):
    """`--limit` as Ansible reads it: agent-01..04 are updated; agent-05..10
    stay in every nginx change, no command runs on them, they count towards
    capacity, and the journal and the summary name them."""
    env = control_env(tmp_path)
    proc = cli(env, "--plan", "examples/rolling.yaml", "--limit", "agent-0[1-4]", "--headless", "--time-scale", "100")
    assert proc.returncode == 0, proc.stderr
    left = [f"agent-{n:02d}" for n in range(5, 11)]
    assert f"4 instance(s) now on 2.0.0; left out by --limit, untouched and serving: {', '.join(left)}" in proc.stdout
    events = journal_events(env, proc.stdout)
    started = next(e for e in events if e["kind"] == "run_started")
    assert started["untouched"] == left and [i["key"] for i in started["instances"]] == [
        "agent-01", "agent-02", "agent-03", "agent-04"]
    changes = [e for e in events if e["kind"] == "traffic"]
    assert changes and all({f"{h}:8080" for h in left} <= {b for bs in e["pools"].values() for b in bs}
                           for e in changes)
    assert not [e for e in events if e["kind"] == "command" and e["host"] in left]
    assert {e["serving"] for e in events if e["kind"] == "capacity"} == {10}  # the whole upstream serves
    versions = next(e for e in events if e["kind"] == "run_finished")["versions"]
    assert versions == {f"agent-0{n}": "2.0.0" for n in range(1, 5)}


def test_a_limit_on_part_of_a_blue_green_upstream_is_refused(tmp_path):
    env = control_env(tmp_path)
    proc = cli(env, "--plan", "examples/blue-green.yaml", "--limit", "agent-01", "--headless")
    assert proc.returncode == 2 and "a blue-green switch moves the whole upstream" in proc.stderr
    assert not (tmp_path / "journals").exists()  # refused before a journal or a host
    whole = cli(env, "--plan", "examples/rolling.yaml", "--limit", "agents", "--headless", "--time-scale", "100")
    assert whole.returncode == 0 and "left out by --limit" not in whole.stdout  # a limit that keeps all is none


def test_releases_and_rollback_of_a_finished_run(tmp_path):
    env = control_env(tmp_path)
    assert cli(env, "releases").stdout.strip() == "no release recorded"
    shipped = cli(env, "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "100")
    assert shipped.returncode == 0, shipped.stderr
    history = cli(env, "releases").stdout.splitlines()
    assert len(history) == 1 and "agent  1.0.0 -> 2.0.0  succeeded" in history[0]
    other = cli(env, "rollback", "no-such-run", "--yes")
    assert other.returncode == 2 and "no live run matches 'no-such-run'" in other.stderr
    never = cli(env, "rollback", "--to", "9.9.9", "--yes")
    assert never.returncode == 2 and "never ran it" in never.stderr and "1.0.0, 2.0.0" in never.stderr
    asked = cli(env, "rollback")  # no live run: the finished one; stdin is no terminal, so --yes is needed
    assert asked.returncode == 2 and "pass --yes" in asked.stderr and len(cli(env, "releases").stdout.splitlines()) == 1
    run_id = status(env)["ended"][0]["run_id"]  # the finished run, named as `console status` lists it
    back = cli(env, "rollback", run_id, "--yes", "--headless", "--time-scale", "100")
    assert back.returncode == 0, back.stderr
    assert "agent on " in back.stderr and ": 2.0.0 -> 1.0.0 " in back.stderr
    assert "10 instance(s) now on 1.0.0" in back.stdout
    history = cli(env, "releases").stdout.splitlines()
    assert len(history) == 2 and " -> 1.0.0  succeeded" in history[1]
    assert cli(env, "audit", "verify", history[1].split()[-2]).returncode == 0


def test_a_live_rollback_still_goes_to_the_live_run(paused_run):
    env, run = paused_run
    sent = cli(env, "rollback", "--yes")
    assert sent.returncode == 0 and sent.stdout.startswith("accepted: rollback"), sent.stderr
    assert run.finish() == 3


@pytest.mark.parametrize("args", [["--help"], ["version"], ["-V"], ["status"], []])
def test_help_version_and_status_start_without_the_heavy_libraries(tmp_path, args):
    """What makes them fast (bench/cli_latency.py measures it): none of
    Textual, asyncssh, SciPy, pydantic, asyncio or the engine is imported."""
    code = ("import sys, io, contextlib\nfrom console.cli import main\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    code = main({args!r})\n"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'asyncssh', 'scipy', 'pydantic',"
            " 'asyncio', 'strategies', 'yaml'})\nprint(code, heavy)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=control_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "0 []", proc.stdout + proc.stderr


def test_status_lists_live_runs_in_full_and_only_the_last_hours_few_ended(paused_run, tmp_path):
    """A day of ended runs would bury the live one: plain `status` lists the
    live run first and in full, then the newest five that ended in the last
    hour, a line each, and says how many more `--all` lists."""
    import os
    import time
    from pathlib import Path

    env, _run = paused_run
    finished = cli(env, "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "100")
    assert finished.returncode == 0, finished.stderr
    control = Path(env["XDG_RUNTIME_DIR"]) / "rollout-console"
    real = json.loads(next(control.glob("rolling-*.result.json")).read_text())
    now = time.time()
    for n, age in enumerate([60, 120, 600, 900, 1200, 3000, 7200]):  # ended 1 min to 2 h ago
        path = control / f"old-{n}.result.json"
        path.write_text(json.dumps({**real, "run_id": f"old-{n}"}))
        os.utime(path, (now - age, now - age))
    lines = cli(env, "status").stdout.splitlines()
    live = [i for i, line in enumerate(lines) if "phase paused" in line]
    header = lines.index("ended in the last 60 min (newest first; `console status RUN` for one in full):")
    assert live and live[0] < header  # the live run first, in full
    listed = [line.split()[0] for line in lines[header + 1:] if line.startswith("  ")]
    assert listed == [real["run_id"], "old-0", "old-1", "old-2", "old-3"]  # newest first, five at most
    assert lines[-1].startswith("3 more ended run(s) not listed") and "`console status --all`" in lines[-1]
    assert "ENDED" not in "\n".join(lines) and "old-0 SIMULATED  1 min ago  succeeded (exit 0): " in lines[header + 2]
    everything = cli(env, "status", "--all").stdout
    assert [f"old-{n} " in everything for n in range(7)] == [True] * 7 and "more ended" not in everything
    named = cli(env, "status", "old-6").stdout  # a run asked for by name: in full, however old
    assert named.startswith("old-6  pid ") and "  ENDED succeeded (exit 0): " in named and "  journal " in named
    assert len(status(env)["ended"]) == 8  # JSON, for scripts: every kept ended run


def test_a_resumed_limited_run_keeps_its_limit(tmp_path):
    """A limited canary that stopped at its manual gate (exit 7) resumed from
    its journal: the same five hosts, the other five still left alone."""
    env = control_env(tmp_path)
    journal = tmp_path / "limited.jsonl"
    paused = cli(env, "--plan", "examples/canary-manual.yaml", "--limit", "agent-0[1-5]", "--headless",
                 "--time-scale", "100", "--record", str(journal))
    assert paused.returncode == 7, paused.stderr
    resumed = cli(env, "resume", str(journal), "--headless", "--auto-promote", "--time-scale", "100",
                  "--record", str(tmp_path / "resumed.jsonl"))
    assert resumed.returncode == 0, resumed.stderr
    left = ["agent-06", "agent-07", "agent-08", "agent-09", "agent-10"]
    assert "canary promoted: 5 instance(s) on 2.0.0; left out by --limit, untouched and serving: " \
           + ", ".join(left) in resumed.stdout
    events = journal_events(env, resumed.stdout)
    assert next(e for e in events if e["kind"] == "run_started")["untouched"] == left
    assert set(next(e for e in events if e["kind"] == "run_finished")["versions"]) == {
        f"agent-0{n}" for n in range(1, 6)}


def test_headless_text_prints_failed_remote_commands_and_the_others_only_with_verbose(tmp_path):
    """A newcomer's blue-green run printed a hundred `host $ command -> exit
    0` lines among the fifty worth reading: headless text now prints a
    remote command only when it failed, or with --verbose; JSON and the
    journal keep every one."""
    env = control_env(tmp_path)
    quiet = cli(env, "--plan", "examples/rolling.yaml", "--release", "9.9.9", "--headless", "--time-scale", "100")
    lines = quiet.stdout.splitlines()
    assert [line for line in lines if "-> exit 1" in line and "release 9.9.9 not found" in line], quiet.stdout
    assert not [line for line in lines if "-> exit 0" in line]
    verbose = cli(env, "--plan", "examples/rolling.yaml", "--headless", "--time-scale", "100", "--verbose")
    assert verbose.returncode == 0 and "agent-01 $ [simulated] systemctl restart agent@main.service -> exit 0" \
        in verbose.stdout
    recorded = [e for e in journal_events(env, quiet.stdout) if e["kind"] == "command"]
    assert len(recorded) > 1 and [e["exit_status"] for e in recorded].count(0) >= 1  # the journal keeps them
