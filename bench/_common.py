"""Shared helpers for the benchmark scripts (not a benchmark itself)."""
from __future__ import annotations

import datetime as _dt
import gzip
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for p in (str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "sandbox")):
    if p not in sys.path:
        sys.path.insert(0, p)


def read_text(path: Path) -> str:
    """A raw result file, as written or as kept in the repository: `path`
    itself, else `path`.gz (bench/results keeps its large files gzipped);
    a `.gz` path named as such is read through gzip."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes()).decode()
    if path.exists():
        return path.read_text()
    return gzip.decompress(path.with_name(path.name + ".gz").read_bytes()).decode()


KEEP_PLAIN = (".txt", ".md", ".yaml", ".json")  # summaries, schedules, plans: read as they are
COMPRESS_ABOVE = 16 * 1024  # bytes: larger raw files (journals, event streams, logs) are kept gzipped


def keep_compressed(path: Path) -> Path:
    """Replace `path` by `path`.gz (deterministic: no name or time in the
    header, so the same bytes give the same blob). Returns the new path."""
    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=9, mtime=0))
    path.unlink()
    return gz


def should_compress(path: Path) -> bool:
    """Is `path` a raw result bench/results keeps gzipped?"""
    return path.suffix != ".gz" and path.suffix not in KEEP_PLAIN and path.stat().st_size > COMPRESS_ABOVE


def machine() -> str:
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0]
    return (f"nproc {os.cpu_count()}, RAM {mem_kb / 1024 / 1024:.1f} GiB, kernel {platform.release()}, "
            f"{cpu or platform.machine()}, Python {platform.python_version()}, load avg at start {load:.2f}")


def today() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _git(*args: str) -> str:
    proc = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30)
    return proc.stdout if proc.returncode == 0 else ""


def provenance() -> tuple[str, str]:
    """(short commit, dirty state) of the tree being measured."""
    commit = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    # a run's own raw output (bench/results/) is not a change to what it measures
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines()
               if not line[3:].startswith("bench/results/")]
    if not changed:
        return commit, "clean"
    more = f", +{len(changed) - 5} more" if len(changed) > 5 else ""
    return commit, f"DIRTY: {len(changed)} file(s) changed or untracked ({', '.join(changed[:5])}{more})"


class _Tee:
    """sys.stdout/stderr that also writes into the run's raw-output file."""

    def __init__(self, stream, file) -> None:
        self.stream, self.file = stream, file

    def write(self, text: str) -> int:
        self.file.write(text)
        self.file.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.file.flush()
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def start(name: str, command_prefix: str = "", folder_suffix: str = "") -> Path:
    """Begin a benchmark run: print the header (commit and dirty state,
    machine, UTC date, command) and, from here on, copy everything the
    script prints into bench/results/<YYYY-MM-DD>-<commit>/<name>.txt
    ($ROLLOUT_BENCH_RESULTS instead of bench/results; `folder_suffix` after
    the commit, e.g. "-judge"), so each figure in
    RESULTS.md and the README can be traced to the raw run that made it.
    Returns that file's path."""
    commit, dirty = provenance()
    now = _dt.datetime.now(_dt.UTC)
    base = Path(os.environ.get("ROLLOUT_BENCH_RESULTS", BENCH / "results"))
    folder = base / f"{now:%Y-%m-%d}-{commit}{folder_suffix}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.txt"
    n = 2
    while path.exists():  # a second run the same day at the same commit keeps the first
        path, n = folder / f"{name}-{n}.txt", n + 1
    raw = open(path, "w", encoding="utf-8")
    sys.stdout, sys.stderr = _Tee(sys.stdout, raw), _Tee(sys.stderr, raw)
    u = platform.uname()
    print(f"# {name}  {now:%Y-%m-%d %H:%M:%S} UTC\n"
          f"# commit {commit} ({dirty})\n"
          f"# machine: {u.system} {u.node} {u.release} {u.version} {u.machine}\n"
          f"# {machine()}\n"
          f"# command: {command_prefix}python3 bench/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}\n"
          f"# raw output: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}\n", flush=True)
    return path


# -- before/after on one machine: two source trees, alternating run by run -----------------------------

def git_head(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True).stdout.strip()


def trees(tree: Path, against: Path | None) -> dict[str, Path]:
    """{"this": tree, "against": against}: the source trees a before/after
    benchmark runs the console from (printed with their commits)."""
    out = {"this": tree.resolve(), **({"against": against.resolve()} if against is not None else {})}
    for label, path in out.items():
        print(f"console ({label}) from {path}" + (f" at commit {git_head(path)}" if path != ROOT else ""))
    return out


def alternating(labels: list[str], i: int) -> list[str]:
    """The order of run `i`: the labels, reversed every other run, so no
    side always goes first (after the other warmed the caches, or under a
    load that rises through the sitting)."""
    return list(labels) if i % 2 == 0 else list(reversed(labels))


def ratio_of_medians(this: list[float], against: list[float]) -> float | None:
    a, b = stats(this), stats(against)
    return a["median"] / b["median"] if a["n"] and b["n"] and b["median"] else None


def compile_trees(sides: dict[str, Path]) -> None:
    """Byte-compile each console tree before the first run, as an installed
    copy is (pip compiles what it installs; a checkout writes its .pyc on
    its first run). Where PYTHONDONTWRITEBYTECODE is set, as on the
    project's shared VM, a tree never gets them: every run would compile
    the console's own modules from source again (2 of 11 s of a dry run's
    start-up under load), a cost neither a user nor the peer's runs pay
    (Ansible runs from its installed, compiled package)."""
    import compileall
    for label, tree in sides.items():
        ok = all(compileall.compile_dir(str(tree / pkg), quiet=1) for pkg in ("console", "strategies", "inventory"))
        print(f"console ({label}): bytecode compiled before the first run" + ("" if ok else " (some files failed)")
              + (f"; PYTHONDONTWRITEBYTECODE={os.environ['PYTHONDONTWRITEBYTECODE']} in this environment"
                 if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))


def tree_env(tree: Path, env: dict | None = None) -> dict:
    """The environment that makes `python -m console` import `tree`'s code."""
    return {**(env if env is not None else os.environ), "PYTHONPATH": str(tree)}


def stats(values: list[float]) -> dict:
    v = sorted(values)
    if not v:
        return {"n": 0, "median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"n": len(v), "median": statistics.median(v), "min": v[0], "max": v[-1]}


def fmt(values: list[float], unit: str = "s", digits: int = 2) -> str:
    s = stats(values)
    if s["n"] == 0:
        return "n/a"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f} {unit} (n=1)"
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}-{s['max']:.{digits}f}, n={s['n']})"


def run_child(argv: list[str], *, timeout: float, env: dict | None = None, stdout=subprocess.DEVNULL,
              stderr=subprocess.PIPE, cwd: Path = ROOT, input_bytes: bytes | None = None) -> dict:
    """Run argv; return wall, user+sys CPU and max RSS of exactly that child
    (os.wait4), its exit code and stderr tail. Killed after `timeout`."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=stderr,
                            stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL)
    err = b""
    try:
        if input_bytes is not None:
            proc.stdin.write(input_bytes)
            proc.stdin.close()
        # read stderr without deadlock, bounded by timeout
        deadline = t0 + timeout
        import selectors
        sel = selectors.DefaultSelector()
        if proc.stderr is not None:
            sel.register(proc.stderr, selectors.EVENT_READ)
        while proc.stderr is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(argv, timeout)
            ready = sel.select(min(left, 1.0))
            if ready:
                chunk = os.read(proc.stderr.fileno(), 65536)
                if not chunk:
                    break
                err = (err + chunk)[-20000:]
        left = max(0.01, deadline - time.monotonic())
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(0.01)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = -9
        return {"wall": time.monotonic() - t0, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_mb": ru.ru_maxrss / 1024,
                "rc": None, "timeout": True, "stderr": err.decode(errors="replace")[-2000:]}
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"wall": wall, "cpu": ru.ru_utime + ru.ru_stime, "user": ru.ru_utime, "sys": ru.ru_stime,
            "maxrss_mb": ru.ru_maxrss / 1024, "rc": proc.returncode, "timeout": False,
            "stderr": err.decode(errors="replace")[-2000:]}


# --------------------------------------------------------------- real sandbox
def sandbox_module():
    """sandbox on this benchmark's own network (ROLLOUT_SANDBOX_NET
    must name one other than the test fleet's 0, so both can run at once)."""
    net = os.environ.get("ROLLOUT_SANDBOX_NET")
    if not net or net == "0":
        raise SystemExit("set ROLLOUT_SANDBOX_NET=1 (network 0 is the test fleet's)")
    import sandbox
    return sandbox


class Fleet:
    """Minimal handle on the booted sandbox (names, addresses, ssh)."""

    def __init__(self, sandbox, hosts: int):
        self.sb = sandbox
        self.state_dir = sandbox.DEFAULT_STATE_DIR
        self.inventory = Path(sandbox.up(hosts=hosts, log=lambda m: None))
        self.key = self.state_dir / "id_ed25519"
        self.known_hosts = self.state_dir / "known_hosts"
        self.lb_ip = sandbox.LB_IP
        self.agents = {sandbox.agent_name(i): sandbox.agent_ip(i) for i in range(1, hosts + 1)}

    def ssh_argv(self, ip: str) -> list[str]:
        return ["ssh", "-i", str(self.key), "-o", f"UserKnownHostsFile={self.known_hosts}",
                "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
                "-o", "LogLevel=ERROR", f"root@{ip}"]

    def ssh(self, ip: str, command: str, input_text: str | None = None, timeout: float = 60) -> str:
        p = subprocess.run([*self.ssh_argv(ip), command], input=input_text, capture_output=True, text=True,
                           timeout=timeout)
        if p.returncode:
            raise RuntimeError(f"ssh {ip} {command!r}: {p.returncode} {p.stderr.strip()}")
        return p.stdout

    def parallel(self, command: str, ips=None) -> None:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(8) as ex:
            list(ex.map(lambda ip: self.ssh(ip, command), list(ips or self.agents.values())))

    def reset_agents(self, version: str = "1.0.0") -> None:
        self.parallel("systemctl stop agent@blue agent@green; systemctl reset-failed 'agent@*';"
                      f" /opt/agent/bin/install-release --slot main {version} >/dev/null &&"
                      " systemctl restart agent@main")

    def reset_lb(self) -> None:
        from inventory.nginx_workers import reload_and_settle
        from sandbox import provision
        provision.load_balancer(self.sb.host_root(self.sb.LB_NAME, state_dir=self.state_dir),
                                list(self.agents.values()))
        self.ssh(self.lb_ip, "nginx -t -q && " + reload_and_settle())

    def down(self) -> None:
        self.sb.down(self.state_dir, log=lambda m: None)
