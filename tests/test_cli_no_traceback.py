"""No traceback on any user path, and no warning on a clean run: bad flags
and missing files for every subcommand, a closed stdout, Ctrl-C and
Ctrl-D at a prompt, Ctrl-C while watching, `console status` by a user
who may not use the control directory, and a headless run ending with a
`console attach` viewer connected. Real processes; the SIMULATED fleet."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from control_helpers import ROOT, HeadlessRun, PtyConsole, cli, control_env, status, until
from simfleet import write_inventory, write_plan


def clean(proc: subprocess.CompletedProcess, max_lines: int = 1) -> None:
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= max_lines, proc.stderr


BAD = [
    (["--plan", "missing.yaml", "--headless"], 2),
    (["--plan", "examples/rolling.yaml", "--inventory", "missing.ini", "--headless"], 2),
    (["--plan", "examples/rolling.yaml", "--limit", "~[", "--list-hosts"], 2),
    (["--plan", "examples/rolling.yaml", "--limit", "@missing-hosts.txt", "--list-hosts"], 2),
    (["--plan", "examples/rolling.yaml", "--release", "not a version", "--dry-run"], 2),
    (["--plan"], 2),
    (["replay", "missing.jsonl", "--headless"], 2),
    (["replay", "README.md", "--headless"], 2),
    (["replay", "examples", "--headless"], 2),
    (["audit", "verify", "missing.jsonl"], 2),
    (["audit"], 2),
    (["resume", "--headless"], 2),
    (["resume", "examples", "--headless"], 2),
    (["check", "--plan", "missing.yaml"], 2),
    (["lock", "status", "--plan", "missing.yaml"], 2),
    (["lock", "frobnicate"], 2),
    (["init", "--inventory", "missing.yaml", "--criticality", "critical", "--output", "-"], 2),
    (["init", "--hosts", "nope", "--criticality", "critical", "--output", "-"], 2),
    (["init", "--release", "2.0 beta", "--criticality", "critical", "--output", "-"], 2),
    (["init", "--criticality", "critical", "--output", "/nonexistent-dir/plan.yaml"], 2),
    (["init", "--criticality", "critical", "--output", "/tmp", "--yes"], 2),
    (["recommend"], 2),
    (["sandbox", "up", "--hosts", "0"], 2),
    (["sandbox", "release", "2.0.0", "--behaviour", '["error_rate"]'], 2),
    (["sandbox", "release", "2.0.0", "--behaviour", "{error_rate: 0.05"], 2),
    (["status", "--interval", "0"], 2),
    (["status", "no-such-run"], 9),
    (["pause", "no-such-run"], 9),
    (["rollback", "--plan", "missing.yaml", "--yes"], 2),
    (["rollback", "--to", "1.0.0", "--plan", "examples/rolling.yaml", "--journals", "/nonexistent", "--yes"], 2),
    (["help", "nope"], 2),
    (["stauts"], 2),
]


@pytest.mark.parametrize("args,code", BAD, ids=[" ".join(args) for args, _code in BAD])
def test_bad_flags_and_missing_files_are_one_line(tmp_path, args, code):
    proc = cli(control_env(tmp_path), *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    clean(proc)


@pytest.mark.parametrize("args", [["--help"], ["completion", "zsh"], ["--plan", "examples/rolling.yaml", "--dry-run"]])
def test_a_reader_that_left_is_no_error(tmp_path, args):
    """`console ... | head -1` where head has gone: the write meets a closed pipe."""
    env = {k: v for k, v in control_env(tmp_path).items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as usual
    proc = subprocess.Popen([sys.executable, "-m", "console", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader leaves before the first line
    err = proc.stderr.read()
    assert proc.wait(120) == 0
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err, err


def waiting_in_read(pid: int) -> bool:
    """The process is blocked in read(2) on fd 0 (x86-64 syscall 0): the
    question is asked. A Ctrl-C that lands between printing the prompt and
    that read is only acted on at the next key (CPython's input()), so a
    test sends it once the read has started."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return fields[:2] == ["0", "0x0"]


@pytest.mark.parametrize("key,code", [(b"\x03", 5), (b"\x04", 2)])
def test_ctrl_c_and_ctrl_d_at_a_question(tmp_path, key, code):
    prompt = PtyConsole(control_env(tmp_path), "recommend")
    try:
        until(lambda: b"critical" in prompt.output and waiting_in_read(prompt.proc.pid), "the first question")
        prompt.send(key)
        assert prompt.proc.wait(60) == code
        until(lambda: prompt.proc.poll() is not None, "the exit")
    finally:
        prompt.close()
    assert b"Traceback" not in prompt.output and b"KeyboardInterrupt" not in prompt.output


def test_ctrl_c_at_an_overwrite_question_overwrites_nothing(tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("mine\n")
    prompt = PtyConsole(control_env(tmp_path), "init", "--criticality", "critical", "--output", str(plan))
    try:
        until(lambda: b"Overwrite?" in prompt.output and waiting_in_read(prompt.proc.pid), "the question")
        prompt.send(b"\x03")
        assert prompt.proc.wait(60) == 11  # not confirmed
    finally:
        prompt.close()
    assert plan.read_text() == "mine\n" and b"Traceback" not in prompt.output


@pytest.fixture
def canary(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary",
                      canary={"sample_interval": "2s", "steps": [{"set_weight": 25}, {"pause": None}, {"set_weight": 100}]})
    return control_env(tmp_path), plan, inv


def test_a_run_ending_with_an_attached_viewer_prints_no_traceback_and_no_warning(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(run.kill)
        run.wait_for(lambda e: e["kind"] == "phase" and e["phase"] == "paused", "the pause step")
        cleanup.callback(PtyConsole(env, "attach").close)  # a real `console attach` TUI, on a terminal
        until(lambda: status(env)["live"][0]["viewers"] == 1, "the TUI attached")
        assert cli(env, "promote").returncode == 0
        assert run.finish() == 0
    err = run.proc.stderr.read()
    # the one line a headless run writes to stderr: where to reach it
    assert err.splitlines() == [line for line in err.splitlines() if line.startswith("control: run ")], err
    assert len(err.splitlines()) == 1


def test_watching_stops_on_ctrl_c_without_a_traceback(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(lambda e: e["kind"] == "phase" and e["phase"] == "paused", "the pause step")
        watch = subprocess.Popen([sys.executable, "-m", "console", "status", "--watch", "--interval", "0.2"], cwd=ROOT,
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert " paused " in watch.stdout.readline()  # it is watching
        watch.send_signal(signal.SIGINT)
        assert watch.wait(60) == 0
        assert "Traceback" not in watch.stderr.read()
        assert run.proc.poll() is None  # watching never stops the run
        assert cli(env, "promote").returncode == 0
        assert run.finish() == 0
    finally:
        run.kill()


@pytest.mark.parametrize("args", [["status"], ["status", "--watch"], ["pause"], ["rollback", "--yes"]])
def test_another_user_pointed_at_my_control_directory_gets_one_line(canary, other_user, args):
    """Their XDG_RUNTIME_DIR names mine (0700, mine): the CLI, started as root
    (the interpreter lives under /root) then switched to their uid before it
    runs, says "refused" with exit 10."""
    env, plan, inv = canary
    assert cli(env, "status").returncode == 0  # makes my control directory, 0700
    os.chmod(env["XDG_RUNTIME_DIR"], 0o755)   # theirs to see, not to enter
    code = (f"import os, sys, console.cli, console.control.watch, console.control.client\n"
            f"console.cli.parser_of({args[0]!r})  # imports what parsing needs while the interpreter is readable\n"
            f"os.setgroups([]); os.setgid({other_user.pw_gid}); os.setuid({other_user.pw_uid})\n"
            f"sys.exit(console.cli.main({args!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "HOME": "/nonexistent"},
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 10, proc.stdout + proc.stderr
    clean(proc)
    assert "permission denied" in proc.stderr
