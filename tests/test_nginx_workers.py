"""The reload's worker bookkeeping, run by the local /bin/sh against real
processes titled like nginx workers (the remote side runs the same text)."""
import subprocess

from inventory.nginx_workers import old_workers, wait_retired


def test_only_digit_tokens_become_pids():
    assert old_workers("12\n 345\n$(reboot)\n-1\n7;id\n") == [12, 345]
    assert wait_retired([], 5.0) == "true"


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=30)


def test_waits_while_a_worker_accepts_and_returns_once_it_is_gone():
    # `cat` with no arguments: /proc/PID/cmdline is exactly the title
    worker = subprocess.Popen(["bash", "-c", "exec -a 'nginx: worker process' cat"],
                              stdin=subprocess.PIPE)
    other = subprocess.Popen(["bash", "-c", "exec -a 'nginx: worker process is shutting down' cat"],
                             stdin=subprocess.PIPE)
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
