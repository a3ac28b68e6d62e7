"""Runs the whole suite in lanes, so CI's wall time is the work's, not its sum.

Called by tests/run.sh with pytest's arguments. Four kinds of work:

- the fast tests (no hosts), in this process's machine alone;
- the article's seed blocks verbatim on real hosts (tests/sandbox/test_seed_real.py):
  slow but light (the canary block's 1 % step waits minutes for evidence), on
  a fleet of their own (ROLLOUT_SANDBOX_NET=2) from the start;
- every other real-host file, one pytest session per file, pulled from one
  queue (longest first, by tests/sandbox/durations.json) by two workers: the
  first starts on fleet 0 once the fast tests are done, the second on fleet 1
  once the seed blocks are. Never more than two fleets under client load at
  once: a third starved the load generators of the shortest runs below the
  90 % of rate x duration every zero-failure test requires (seen twice on
  this project's 2-core machine);
- a third worker, on fleet 3 from the start, takes only the QUIET files: those
  that put no client load on their fleet (no load generator, no curl loop),
  so it cannot starve the others' generators, and their 13 minutes leave the
  two loaded lanes' queue. Before them it runs the BESIDE files, the fast
  lane's longest (about 6 minutes), so the fast lane, and fleet 0's share of
  the queue after it, start and end sooner.

A line per finished file says how long it took, so durations.json can be
refreshed from a CI log (`tests/lanes.py --durations LOG > tests/sandbox/durations.json`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = "tests/sandbox/test_seed_real.py"
DURATIONS = ROOT / "tests" / "sandbox" / "durations.json"
# Real-host files with no client load (tests/test_lanes.py checks none imports a load generator).
QUIET = frozenset({"tests/sandbox/test_hostile_real.py", "tests/sandbox/test_lock_real.py",
                   "tests/sandbox/test_personalities_real.py", "tests/sandbox/test_cli_operator_real.py",
                   "tests/sandbox/test_sandbox_fleet.py", "tests/sandbox/test_record_replay_real.py",
                   "tests/sandbox/test_notify_real.py", "tests/sandbox/test_sshfleet.py",
                   "tests/sandbox/test_bastion_real.py", "tests/sandbox/test_agent_service.py",
                   "tests/sandbox/test_sandbox_deps.py"})
# Fast files (no hosts) the quiet lane runs before its real-host files: the documented commands
# run as written and the wheel installed into a fresh venv, the fast lane's longest files.
BESIDE = ("tests/test_doc_blocks.py", "tests/test_wheel_install.py")
FINISHED = re.compile(r"lanes: (?P<file>\S+) (?:passed|FAILED) in (?P<s>[0-9.]+) s")


def real_files() -> list[str]:
    """Every real-host file but the seed's, longest first (unknown ones first of all)."""
    known: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "sandbox").glob("test_*.py"))
    files.remove(SEED)
    return sorted(files, key=lambda f: -known.get(f, float("inf")))


class Lanes:
    """The lanes' shared queue, logs and verdict."""

    def __init__(self, pytest_args: list[str]) -> None:
        self.args = pytest_args
        self.queue = real_files()
        self.lock = threading.Lock()
        self.logs: list[tuple[str, str]] = []
        self.failed = False

    def pytest(self, targets: list[str], net: int | None, name: str, capture: bool) -> None:
        env = dict(os.environ)
        if net is not None:
            env["ROLLOUT_SANDBOX_NET"] = str(net)
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", *self.args, *targets], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT,
                              text=True, check=False)
        seconds = time.monotonic() - t0
        with self.lock:
            self.failed |= proc.returncode != 0
            if capture:
                self.logs.append((name, proc.stdout))
            verdict = "passed" if proc.returncode == 0 else "FAILED"
            print(f"lanes: {name} {verdict} in {seconds:.0f} s (fleet {net})", flush=True)

    def take(self, quiet_only: bool) -> str | None:
        """The longest file left in the queue (the longest QUIET one for the quiet lane)."""
        with self.lock:
            for i, file in enumerate(self.queue):
                if not quiet_only or file in QUIET:
                    return self.queue.pop(i)
            return None

    def worker(self, net: int, after: threading.Thread | None, quiet_only: bool = False) -> None:
        """Pulls real-host files once `after` (the lane it follows) is done;
        the quiet one runs the BESIDE files first."""
        if after is not None:
            after.join()
        if quiet_only:
            self.pytest(list(BESIDE), None, "fast tests beside", capture=True)
        while (file := self.take(quiet_only)) is not None:
            self.pytest([file], net, file, capture=True)

    def run(self) -> int:
        seed = threading.Thread(target=self.pytest, args=([SEED], 2, SEED, True))
        fast = threading.Thread(target=self.pytest, args=(fast_targets(), None, "fast tests", False))
        seed.start()
        fast.start()
        workers = [threading.Thread(target=self.worker, args=(0, fast)),
                   threading.Thread(target=self.worker, args=(1, seed)),
                   threading.Thread(target=self.worker, args=(3, None, True))]
        for w in workers:
            w.start()
        for t in (seed, fast, *workers):
            t.join()
        for name, log in self.logs:
            print(f"\n===== {name} =====\n{log}", end="")
        return 1 if self.failed else 0


def fast_targets() -> list[str]:
    """The fast lane's pytest targets: everything but the real-host files and BESIDE."""
    return ["--ignore=tests/sandbox", *(f"--ignore={f}" for f in BESIDE)]


def durations_from(log: str) -> dict[str, float]:
    """Each file's seconds from a log of this script's lines, for durations.json."""
    # anywhere in a line: the fast lane's progress dots share stdout with the other lanes' lines
    found = (FINISHED.search(line) for line in Path(log).read_text(errors="replace").splitlines())
    return {m["file"]: float(m["s"]) for m in found if m and m["file"].startswith("tests/")}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--durations"]:
        print(json.dumps(durations_from(argv[1]), indent=1, sort_keys=True))
        return 0
    return Lanes(argv).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
