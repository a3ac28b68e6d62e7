"""Every documented command still works: each shell block of README.md and
docs/*.md that uses the embedded SIMULATED fleet is run as written (see
tests/doc_blocks.py for how a block says what it needs). A block fails when
a command exits other than its comment says, or prints a traceback."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from doc_blocks import ROOT, Block, blocks

ALL = blocks()
SIM = [b for b in ALL if b.kind == "sim"]
TUI = [b for b in ALL if b.kind == "tui"]
PACKAGE_SOURCES = ["pyproject.toml", "README.md", "console", "inventory", "strategies", "examples"]


@pytest.fixture
def docenv(tmp_path: Path):
    work, env = scratch(tmp_path)
    yield work, env
    shutil.rmtree(env["XDG_RUNTIME_DIR"], ignore_errors=True)


def scratch(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A directory with a copy of examples/ (what the docs' relative paths
    name) and an environment whose `console` is this tree's, with its own
    state, journals and control sockets."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "console"
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m console "$@"\n')
    shim.chmod(0o755)
    # short: a control socket's path must fit AF_UNIX's 108 bytes (pytest's tmp_path may not)
    runtime = Path(tempfile.mkdtemp(prefix="rc-doc-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLOUT_", "XDG_"))}
    env.update(PATH=f"{bin_dir}:{env.get('PATH', '/usr/bin:/bin')}", PYTHONPATH=str(ROOT), NO_COLOR="1",
               HOME=str(tmp_path / "home"), XDG_STATE_HOME=str(tmp_path / "state"), XDG_RUNTIME_DIR=str(runtime))
    return work, env


def live_runs(env: dict[str, str]) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "console", "status", "--output", "json"], env=env,
                          capture_output=True, text=True, timeout=60)
    return json.loads(proc.stdout or "{}").get("live", []) if proc.returncode == 0 else []


def let_detached_runs_finish(env: dict[str, str], timeout: float = 120.0) -> list[dict]:
    """A block may leave a detached run going on: wait for it to end (a
    run's end is what `console status` reports), kill what does not."""
    deadline = time.monotonic() + timeout
    while (left := live_runs(env)) and time.monotonic() < deadline:
        time.sleep(0.5)  # polling the runs' own status
    for run in left:
        os.kill(int(run["pid"]), 9)
    return left


@pytest.mark.parametrize("block", SIM, ids=[b.where for b in SIM])
def test_documented_commands_run_as_written(block: Block, docenv) -> None:
    work, env = docenv
    proc = subprocess.run(["bash", "-c", block.script()], cwd=work, env=env, capture_output=True, text=True,
                          timeout=600)
    left = let_detached_runs_finish(env)
    assert proc.returncode == 0, f"{block.where}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert not left, f"{block.where} left runs going that did not end: {left}"


def test_every_shell_block_says_how_it_runs() -> None:
    unlabelled = [f"{b.where} ({b.info or 'no info string'})" for b in ALL if not b.kind]
    assert not unlabelled, "shell blocks nobody runs: label them sh, sh tui, sh sandbox or sh suite"
    assert SIM and TUI  # the extraction found what the README holds


def test_the_suite_command_is_what_ci_runs() -> None:
    suite = [b for b in ALL if b.kind == "suite"]
    assert [b.path.name for b in suite] == ["README.md"]
    (command,) = [c for _, c, _ in suite[0].commands()]
    ci = (ROOT / ".ci" / "run").read_text()
    assert command == "bash tests/run.sh" and f"\n{command} " in ci, ci


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.parametrize("block", TUI, ids=[b.where for b in TUI])
def test_documented_tui_commands_run_in_a_terminal(block: Block, tmp_path: Path, docenv) -> None:
    """In a real terminal (tmux), from a copy of the package sources: README
    command 1 makes its own venv and installs into it, as a newcomer would.
    Each command is followed to its RESULT banner, then quit with `q`."""
    work, env = docenv
    for name in PACKAGE_SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy(src, work / name)
    env.pop("PYTHONPATH")  # command 1's venv must hold everything itself
    for line, command, code in block.commands():
        rc_file = tmp_path / f"rc-{line}"
        session = f"rc-doc-{os.getpid()}-{line}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        shell = f"cd {shlex.quote(str(work))} && export {exports} && {command}; echo $? > {rc_file}; sleep 600"
        subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", shell], check=True)
        try:
            deadline = time.monotonic() + 900  # pip installs the dependencies first
            while "RESULT" not in (screen := tmux("capture-pane", "-p", "-t", session)):
                assert time.monotonic() < deadline and not rc_file.exists(), f"{block.where}:{line}: {screen}"
                time.sleep(0.5)  # polling what the terminal shows
            tmux("send-keys", "-t", session, "q")
            while not rc_file.exists():
                assert time.monotonic() < deadline, f"{block.where}:{line}: q did not quit: {screen}"
                time.sleep(0.2)
        finally:
            tmux("kill-session", "-t", session)
        assert int(rc_file.read_text()) == code, f"{block.where}:{line}: {screen}"
        assert "RESULT succeeded" in screen and "x3" in screen.splitlines()[0] + screen, screen
        assert "Traceback" not in screen
