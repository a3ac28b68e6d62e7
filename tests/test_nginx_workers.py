"""The reload's worker bookkeeping, run by the local /bin/sh against real
processes titled like nginx workers (the remote side runs the same text)."""
import subprocess
import time
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("wait,counted,other", [
    # the reload's wait: a worker counts while it accepts; one shutting down no longer does
    (wait_retired, "nginx: worker process", "nginx: worker process is shutting down"),
    # the drain's wait: a retired worker still forwards the requests it holds (soak seed 9
    # run 274), so it counts until it has exited; another process never does
    (wait_exited, "nginx: worker process is shutting down", "sshd: root"),
], ids=["retired", "exited"])
def test_waits_while_a_worker_counts_and_returns_once_it_is_gone(wait, counted, other):
    worker, bystander = titled(counted), titled(other)
    try:
        still = sh(wait([worker.pid, bystander.pid], 0.2))
        assert still.returncode == 1
        assert still.stdout.split() == [str(worker.pid)]
    finally:
        worker.kill()
        worker.wait()
    try:
        assert sh(wait([worker.pid, bystander.pid], 0.2)).returncode == 0
    finally:
        bystander.kill()
        bystander.wait()
