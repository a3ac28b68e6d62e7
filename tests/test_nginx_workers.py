"""The reload's worker bookkeeping, run by the local /bin/sh against real
processes titled like nginx workers (the remote side runs the same text)."""
import subprocess
import time
from pathlib import Path

from inventory.nginx_workers import old_workers, wait_exited, wait_retired


def test_only_digit_tokens_become_pids():
    assert old_workers("12\n 345\n$(reboot)\n-1\n7;id\n") == [12, 345]
    assert wait_retired([], 5.0) == "true" and wait_exited([], 5.0) == "true"


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def titled(title: str) -> subprocess.Popen:
    """A process whose /proc/PID/cmdline is exactly `title` (`cat` with no
    arguments), returned once it is: Popen returns before bash has exec'd,
    and a loaded machine checked the bash first (CI rehearsal at 6b66f50)."""
    proc = subprocess.Popen(["bash", "-c", f"exec -a '{title}' cat"], stdin=subprocess.PIPE)
    cmdline = Path(f"/proc/{proc.pid}/cmdline")
    deadline = time.monotonic() + 30
    while cmdline.read_bytes().rstrip(b"\0") != title.encode():
        assert time.monotonic() < deadline, f"{title!r} never exec'd"
        time.sleep(0.01)
    return proc


def test_waits_while_a_worker_accepts_and_returns_once_it_is_gone():
    worker = titled("nginx: worker process")
    other = titled("nginx: worker process is shutting down")
    try:
        still = sh(wait_retired([worker.pid, other.pid], 0.2))
        assert still.returncode == 1
        assert still.stdout.split() == [str(worker.pid)]
    finally:
        worker.kill()
        worker.wait()
    try:
        assert sh(wait_retired([worker.pid, other.pid], 0.2)).returncode == 0
    finally:
        other.kill()
        other.wait()


def test_a_worker_shutting_down_counts_until_it_has_exited():
    """A retired worker still forwards the requests it holds (soak seed 9
    run 274): the drain waits for its exit, not its new title."""
    retiring = titled("nginx: worker process is shutting down")
    other = titled("sshd: root")
    try:
        still = sh(wait_exited([retiring.pid, other.pid], 0.2))
        assert still.returncode == 1 and still.stdout.split() == [str(retiring.pid)]
    finally:
        retiring.kill()
        retiring.wait()
    try:
        assert sh(wait_exited([retiring.pid, other.pid], 0.2)).returncode == 0
    finally:
        other.kill()
        other.wait()
