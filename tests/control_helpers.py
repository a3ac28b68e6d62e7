"""Real processes around the control socket: a console run in a child
process, the CLI as another, and waiting on what they report (never on a
fixed delay)."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def control_env(tmp_path: Path) -> dict[str, str]:
    """An environment with its own (short: sun_path is 108 bytes) runtime
    directory and journal directory, and this worktree's code."""
    runtime = tempfile.mkdtemp(prefix="rc-", dir="/tmp")
    atexit.register(shutil.rmtree, runtime, True)
    return {**os.environ, "XDG_RUNTIME_DIR": runtime, "ROLLOUT_JOURNAL_DIR": str(tmp_path / "journals"),
            "PYTHONPATH": str(ROOT)}


def cli(env, *args, input=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL)


class HeadlessRun:
    """`console --plan P --headless --output json ...` in a child process;
    its JSON events are read as they come."""

    def __init__(self, env, plan, inventory, *extra: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "console", "--plan", str(plan), "--inventory",
                                      str(inventory), "--headless", "--output", "json", *extra],
                                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.events: list[dict] = []

    def wait_for(self, predicate, what: str) -> dict:
        """Read events until one satisfies `predicate`."""
        for line in self.proc.stdout:
            event = json.loads(line)
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(f"the run ended before {what}: exit {self.proc.wait()}: {self.proc.stderr.read()}")

    def finish(self, timeout=120) -> int:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def status(env, *args) -> dict:
    proc = cli(env, "status", *args, "--output", "json")
    assert proc.returncode in (0, 9), proc.stderr
    return json.loads(proc.stdout)


def until(condition, what: str, timeout: float = 60.0, every: float = 0.05):
    """Poll an observable condition (a status answer, a file) until true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


class PtyConsole:
    """A console command on a pseudo-terminal of its own, as in an SSH
    session: the process leads a new session whose controlling terminal is
    the pty. `hang_up` closes the terminal under it (the kernel sends
    SIGHUP), as a dropped SSH connection or a killed tmux does."""

    def __init__(self, env, *args: str, size=(120, 40)) -> None:
        import fcntl
        import pty
        import struct
        import termios
        import threading

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        self.proc = subprocess.Popen([sys.executable, "-m", "console", *args], cwd=ROOT,
                                     env={**env, "TERM": "xterm-256color"}, stdin=slave, stdout=slave,
                                     stderr=slave, preexec_fn=controlling_terminal)
        os.close(slave)
        self.master = master
        self.output = bytearray()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        """Keep reading, so the application never blocks on a full terminal."""
        import select

        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                self.output.extend(data)

    def send(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def hang_up(self) -> None:
        self._stop.set()
        self._reader.join()
        os.close(self.master)
        self.master = -1

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.master >= 0:
            self.hang_up()
