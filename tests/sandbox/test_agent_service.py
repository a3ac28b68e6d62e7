"""The stand-in agent service and install-release, run locally (no container)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from inventory.exposition import Selector, read_metrics
from rollout_helpers import wait_until

SANDBOX = Path(__file__).resolve().parents[2] / "sandbox"
AGENT = SANDBOX / "agent_service.py"
INSTALL = SANDBOX / "install-release.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _install(root: Path, version: str, slot: str = "main") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(INSTALL), "--slot", slot, version],
                          env={**os.environ, "AGENT_ROOT": str(root)},
                          capture_output=True, text=True)


def _get(url: str, method: str = "GET"):
    req = urllib.request.Request(url, method=method, data=b"x" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def _metrics(url: str):
    """/metrics read as the console reads it (inventory/exposition.py)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        return r.status, dict(r.headers), read_metrics(r.read())


class Agent:
    def __init__(self, root: Path, behaviour: dict | None = None, version: str = "1.2.3"):
        (root / "catalog").mkdir(parents=True, exist_ok=True)
        (root / "catalog" / f"{version}.json").write_text(json.dumps(behaviour or {}))
        assert _install(root, version).returncode == 0
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        name = f"rollout-test-{os.getpid()}-{self.port}"
        self.notify.bind("\0" + name)
        self.notify.settimeout(10)
        self.proc = subprocess.Popen(
            [sys.executable, str(AGENT)],
            env={**os.environ, "AGENT_ROOT": str(root), "PORT": str(self.port), "SLOT": "main",
                 "BIND": "127.0.0.1", "NOTIFY_SOCKET": "@" + name},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ready(self) -> str:
        return self.notify.recv(4096).decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.notify.close()


@pytest.fixture
def agent_factory(tmp_path):
    agents = []

    def make(behaviour=None, version="1.2.3"):
        a = Agent(tmp_path / f"opt{len(agents)}", behaviour, version)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.close()


def test_endpoints(agent_factory):
    a = agent_factory()
    assert a.ready().startswith("READY=1")
    assert _get(a.url + "/health")[::2] == (200, {"status": "ok", "version": "1.2.3", "slot": "main"})
    code, headers, body = _get(a.url + "/api/chat", "POST")
    assert code == 200 and headers["X-Agent-Version"] == "1.2.3"
    assert body == {"version": "1.2.3", "slot": "main", "host": socket.gethostname()}
    _get(a.url + "/x")
    code, headers, m = _metrics(a.url)
    assert code == 200 and headers["Content-Type"].startswith("text/plain")
    v = {"version": "1.2.3", "slot": "main"}
    assert m.value(Selector("agent_info", v)) == 1
    assert m.value(Selector("agent_requests_total", {**v, "status": "200"})) == 2
    assert m.value(Selector("agent_errors_total", v)) == 0
    assert m.value(Selector("agent_inflight_requests", v)) == 0
    assert m.value(Selector("agent_quality_score", v)) == 0.97
    assert m.value(Selector("agent_request_duration_seconds_count", v)) == 2
    assert m.value(Selector("agent_request_duration_seconds_bucket", {**v, "le": "0.005"})) == 0  # 5 ms of latency
    assert m.value(Selector("agent_tokens_total", v)) == 800 and m.value(Selector("agent_cost_dollars_total")) == 0.004


def test_metrics_count_tokens_and_cost_per_answered_request(agent_factory):
    a = agent_factory({"tokens_per_request": 1000, "cost_per_request": 0.05, "error_rate": 1.0})
    a.ready()
    for _ in range(3):
        assert _get(a.url + "/w")[0] == 500
    m = _metrics(a.url)[2]
    assert m.value(Selector("agent_requests_total", {"status": "500"})) == 3
    assert m.value(Selector("agent_tokens_total")) == 0 and m.value(Selector("agent_cost_dollars_total")) == 0


def test_error_rate_and_health_fail(agent_factory):
    a = agent_factory({"error_rate": 0.5, "latency_ms": 0, "health_fail": True, "quality": 0.5})
    a.ready()
    codes = [_get(a.url + "/w")[0] for _ in range(300)]
    assert set(codes) == {200, 500}
    assert 0.35 < codes.count(500) / len(codes) < 0.65
    assert _get(a.url + "/health")[::2] == (503, {"status": "failing", "version": "1.2.3",
                                                  "slot": "main"})
    m = _metrics(a.url)[2]
    assert m.value(Selector("agent_requests_total")) == 300
    errors = m.value(Selector("agent_errors_total"))
    assert errors == codes.count(500) == m.value(Selector("agent_requests_total", {"status": "500"}))
    assert m.value(Selector("agent_quality_score")) == 0.5


def test_health_flap_alternates_ok_and_failing(agent_factory):
    a = agent_factory({"health_flap": 0.4})
    a.ready()
    seen = []  # /health codes, consecutive duplicates dropped
    deadline = time.monotonic() + 10
    while len(seen) < 4 and time.monotonic() < deadline:
        code = _get(a.url + "/health")[0]
        if not seen or seen[-1] != code:
            seen.append(code)
        time.sleep(0.05)
    assert seen == [200, 503, 200, 503]


def test_start_fail_exits_1(agent_factory):
    a = agent_factory({"start_fail": True})
    assert a.proc.wait(10) == 1


def test_start_delay_postpones_ready(agent_factory):
    t0 = time.monotonic()
    a = agent_factory({"start_delay": 0.8})
    a.ready()
    assert time.monotonic() - t0 >= 0.8
    assert _get(a.url + "/health")[0] == 200


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_finishes_inflight_request(agent_factory):
    a = agent_factory({"latency_ms": 3000})
    a.ready()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("r", _get(a.url + "/slow")))
    t.start()
    wait_until(lambda: _metrics(a.url)[2].value(Selector("agent_inflight_requests")) == 1, "the slow request reached the agent",
               timeout=10, poll=0.02)
    a.proc.send_signal(signal.SIGTERM)
    assert a.notify.recv(4096).decode().startswith("STOPPING=1")
    wait_until(lambda: _refused(a.port), "the agent stopped accepting", timeout=3, poll=0.02)
    assert "r" not in result  # ...while the slow request is still being answered
    assert a.proc.wait(10) == 0
    t.join(5)
    assert result["r"][0] == 200 and result["r"][2]["version"] == "1.2.3"


def test_install_release(tmp_path):
    root = tmp_path / "opt"
    assert _install(root, "1.0.0").returncode == 0
    assert _install(root, "2.0.0").returncode == 0
    slot = root / "slots" / "main"
    assert os.readlink(slot / "current") == str(root / "releases" / "2.0.0")
    assert os.readlink(slot / "previous") == str(root / "releases" / "1.0.0")
    assert (root / "releases/2.0.0/VERSION").read_text() == "2.0.0\n"
    assert json.loads((root / "releases/2.0.0/behaviour.json").read_text()) == {}
    (root / "catalog").mkdir()
    (root / "catalog/3.0.0.json").write_text('{"error_rate": 0.2}')
    assert _install(root, "3.0.0", slot="blue").returncode == 0
    assert json.loads((root / "releases/3.0.0/behaviour.json").read_text()) == {"error_rate": 0.2}
    assert os.readlink(root / "slots/blue/current") == str(root / "releases/3.0.0")
    for bad in ("../x", "-rf", ".hidden", "a" * 65, "a b", ""):
        assert _install(root, bad).returncode == 2, bad
    assert os.readlink(slot / "current") == str(root / "releases" / "2.0.0")


def test_a_release_behaviour_is_checked_before_any_catalog_is_written(tmp_path):
    """write_release ships each value only when it is of its default's kind (what the agent reads
    with float() or as a {hostname: factor} map); the state file is written here, no container runs."""
    from sandbox import hosts
    from sandbox.common import SandboxError

    state, agent_root = tmp_path / "state", tmp_path / "agent-01"
    state.mkdir()
    (state / "state.json").write_text(json.dumps({"hosts": {
        "agent-01": {"role": "agent", "root": str(agent_root)}, "lb-01": {"role": "lb", "root": str(tmp_path / "lb")}}}))
    for bad, why in (({"error_rate": "high"}, "error_rate: 'high' is not a float"),
                     ({"host_latency_factors": {"agent-01": "slow"}}, "host_latency_factors: {'agent-01': 'slow'} is not a dict"),
                     ({"start_fail": 1}, "start_fail: 1 is not a bool"),
                     ({"latency_ms": True}, "latency_ms: True is not a int")):
        with pytest.raises(SandboxError, match=f"^behaviour key {why}$"):
            hosts.write_release(None, "2.0.0", bad, state_dir=state)
    assert not (agent_root / "opt/agent/catalog").exists()
    behaviour = {"error_rate": 0.2, "host_latency_factors": {"agent-01": 3}, "health_fail": True}
    assert hosts.write_release(None, "2.0.0", behaviour, state_dir=state) == [agent_root / "opt/agent/catalog/2.0.0.json"]
    assert json.loads((agent_root / "opt/agent/catalog/2.0.0.json").read_text()) == behaviour


def _personality(**keys):
    import random

    from sandbox import agent_service
    return agent_service, agent_service.Personality({**agent_service.DEFAULTS, **keys}, "agent-03",
                                                    random.Random(5))


def test_a_host_keeps_its_latency_factor_on_every_start():
    agent_service, p = _personality(host_latency_spread=0.3, latency_ms=100)
    again = agent_service.Personality(p.b, "agent-03")
    other = agent_service.Personality(p.b, "agent-04")
    assert p.factor == again.factor != other.factor != 1.0
    assert p.latency(100.0) == 0.1 * p.factor


def test_the_warm_up_eases_to_the_release_latency():
    _, p = _personality(latency_ms=100, warmup_seconds=10.0, warmup_factor=3.0)
    assert [round(p.latency(t), 3) for t in (0.0, 5.0, 10.0, 60.0)] == [0.3, 0.2, 0.1, 0.1]


def test_failures_come_only_in_bursts_of_their_length():
    _, p = _personality(error_rate=0.0, burst_every=5.0, burst_seconds=1.0, burst_error_rate=1.0)
    failing = [t / 100 for t in range(0, 100_000) if p.fails(t / 100)]  # 1,000 s, every 10 ms
    runs, start = [], failing[0]
    for a, b in zip(failing, failing[1:] + [None]):
        if b is None or b - a > 0.011:
            runs.append(a - start + 0.01)
            start = b
    assert all(abs(r - 1.0) < 0.02 for r in runs[:-1])  # every burst lasts burst_seconds
    assert 100 < len(runs) < 300  # about 1,000 s / (5 s + 1 s)


BURST = 64  # connections opened at once: more than nginx's workers hold to one upstream after a reload


def test_a_burst_of_connections_waits_in_the_listen_queue_not_in_syn_retries(agent_factory):
    """A reload sends a burst of new connections to one instance (soak seed 9
    run 267: a canary rollback routed every request to the one stable
    instance left, and nginx's fresh workers opened their upstream
    connections at once). With http.server's listen queue of 5, the kernel
    dropped the SYNs beyond it (14 ListenOverflows on that host), nginx's 1 s
    connect time-out ran out and, with one server in the pool, answered 504.
    A real server's queue holds such a burst: this stand-in's must too."""
    a = agent_factory()
    a.ready()
    a.proc.send_signal(signal.SIGSTOP)  # accepts nothing: every connection waits in the queue
    try:
        burst = []
        for _ in range(BURST):
            s = socket.socket()
            s.settimeout(2)
            s.connect(("127.0.0.1", a.port))  # times out once the queue is full (the SYN is dropped)
            burst.append(s)
    finally:
        a.proc.send_signal(signal.SIGCONT)
    for s in burst:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert s.recv(64).startswith(b"HTTP/1.1 200")
        s.close()
