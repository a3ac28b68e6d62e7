#!/usr/bin/python3
"""Stand-in agent service for the sandbox fleet (stdlib only).

Runs as ``agent@SLOT.service`` (Type=notify). Environment: PORT, SLOT, and
AGENT_ROOT (default /opt/agent, overridable for local tests). The release is
read once at start from AGENT_ROOT/slots/SLOT/current/{VERSION,behaviour.json}.

Endpoints: GET /health, GET /metrics, anything else -> a small JSON answer
after ``latency_ms``, or an ``error_status`` (500; 502/503 are the ones nginx
retries elsewhere) for a random ``error_rate`` fraction. ``health_flap``
(seconds) makes /health flap: ok for that long after start, failing as long,
ok again, and so on.

Personalities (issue 22: a judge must hold on traffic like a real fleet's):
``host_latency_factors`` ({hostname: factor}) and ``host_latency_spread``
(sigma of a lognormal factor drawn once per hostname, for hosts not in the
map) make some hosts slower than others whatever the release;
``latency_sigma`` spreads each request's time (lognormal); ``error_rate`` is
the background failure rate, and bursts come at random (exponential gaps of
mean ``burst_every`` seconds, each ``burst_seconds`` long at
``burst_error_rate``); ``warmup_seconds`` after a start the first requests
are ``warmup_factor`` times slower, easing linearly to 1; ``tail_share`` of
requests take ``tail_factor`` times as long (a tail-only regression: p95
up, median unchanged).
SIGTERM: stop accepting, finish in-flight requests (up to 10 s), exit 0.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULTS = {
    "start_fail": False,
    "start_delay": 0.0,
    "health_fail": False,
    "health_flap": 0.0,  # seconds: /health ok for that long, failing as long, ok again, ...
    "error_rate": 0.0,
    "error_status": 500,
    "latency_ms": 5,
    "quality": 0.97,
    "cpu_burn": 0.0,
    "host_latency_factors": {},  # hostname -> latency factor of that host
    "host_latency_spread": 0.0,  # sigma of a lognormal per-host factor for the others
    "latency_sigma": 0.0,  # sigma of a lognormal per-request factor
    "burst_every": 0.0,  # mean seconds between failure bursts (0: none)
    "burst_seconds": 2.0,
    "burst_error_rate": 0.5,
    "warmup_seconds": 0.0,  # after a start, requests are slower for this long ...
    "warmup_factor": 3.0,  # ... this many times at first, easing linearly to 1
    "tail_share": 0.0,  # this share of requests ...
    "tail_factor": 1.0,  # ... take this many times as long
}
DRAIN_TIMEOUT = 10.0


def load_release(root: str, slot: str) -> tuple[str, dict[str, Any]]:
    current = os.path.join(root, "slots", slot, "current")
    with open(os.path.join(current, "VERSION"), encoding="utf-8") as f:
        version = f.read().strip()
    behaviour = dict(DEFAULTS)
    try:
        with open(os.path.join(current, "behaviour.json"), encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            behaviour.update({k: v for k, v in data.items() if k in DEFAULTS})
    except FileNotFoundError:
        pass
    return version, behaviour


def host_factor(behaviour: dict[str, Any], hostname: str) -> float:
    """This host's latency factor: named in ``host_latency_factors``, or
    drawn once from the hostname (the same on every start and release: a
    host's personality, not the release's)."""
    named = behaviour["host_latency_factors"]
    if isinstance(named, dict) and hostname in named:
        return float(named[hostname])
    spread = float(behaviour["host_latency_spread"])
    if spread <= 0:
        return 1.0
    seed = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:8], "big")
    return math.exp(random.Random(seed).gauss(0.0, spread))


class Personality:
    """What one request costs and whether it fails, given the release's
    behaviour, this host, and the time since the service started."""

    def __init__(self, behaviour: dict[str, Any], hostname: str, rng: random.Random | None = None) -> None:
        self.b = behaviour
        self.factor = host_factor(behaviour, hostname)
        self.rng = rng or random.Random()
        self.lock = threading.Lock()
        self.next_burst = self._gap(0.0)

    def _gap(self, since: float) -> float:
        every = float(self.b["burst_every"])
        return since + self.rng.expovariate(1.0 / every) if every > 0 else math.inf

    def latency(self, uptime: float) -> float:
        """Seconds this request takes."""
        b = self.b
        seconds = max(0.0, float(b["latency_ms"])) / 1000.0 * self.factor
        sigma = float(b["latency_sigma"])
        with self.lock:
            jitter = self.rng.lognormvariate(0.0, sigma) if sigma > 0 else 1.0
            tail = self.rng.random() < float(b["tail_share"])
        warm = float(b["warmup_seconds"])
        if warm > 0 and uptime < warm:
            seconds *= 1.0 + (float(b["warmup_factor"]) - 1.0) * (1.0 - uptime / warm)
        return seconds * jitter * (float(b["tail_factor"]) if tail else 1.0)

    def fails(self, uptime: float) -> bool:
        """Does this request fail: the background rate, or a burst's."""
        with self.lock:
            while uptime >= self.next_burst + float(self.b["burst_seconds"]):
                self.next_burst = self._gap(self.next_burst + float(self.b["burst_seconds"]))
            rate = float(self.b["burst_error_rate"]) if uptime >= self.next_burst else float(self.b["error_rate"])
            return self.rng.random() < rate


def sd_notify(message: str) -> None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(message.encode())


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.inflight = 0
        self.latencies: deque[float] = deque(maxlen=1000)
        self.idle = threading.Condition(self.lock)

    def p95(self) -> float:
        with self.lock:
            data = sorted(self.latencies)
        return round(data[int(0.95 * (len(data) - 1))], 2) if data else 0.0


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, addr: tuple[str, int], version: str, slot: str, behaviour: dict[str, Any]) -> None:
        super().__init__(addr, Handler)
        self.version, self.slot, self.behaviour = version, slot, behaviour
        self.stats = Stats()
        self.started = time.monotonic()
        self.hostname = socket.gethostname()
        self.personality = Personality(behaviour, self.hostname)
        self.draining = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AgentServer
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Agent-Version", self.server.version)
        if self.server.draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _read_body(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)

    def _handle(self) -> None:
        srv, st = self.server, self.server.stats
        path = self.path.split("?", 1)[0]
        if path == "/health":
            flap = float(srv.behaviour["health_flap"])
            flapped = flap > 0 and int((time.monotonic() - srv.started) / flap) % 2 == 1
            if srv.behaviour["health_fail"] or flapped:
                self._send(503, {"status": "failing", "version": srv.version, "slot": srv.slot})
            else:
                self._send(200, {"status": "ok", "version": srv.version, "slot": srv.slot})
            return
        if path == "/metrics":
            with st.lock:
                body = {"version": srv.version, "slot": srv.slot, "requests": st.requests,
                        "errors": st.errors, "inflight": st.inflight}
            body["quality_score"] = float(srv.behaviour["quality"])
            body["latency_ms_p95"] = st.p95()
            body["uptime_s"] = round(time.monotonic() - srv.started, 3)
            self._send(200, body)
            return
        t0 = time.monotonic()
        with st.lock:
            st.requests += 1
            st.inflight += 1
        try:
            self._read_body()
            uptime = time.monotonic() - srv.started
            time.sleep(srv.personality.latency(uptime))
            failed = srv.personality.fails(uptime)
            if failed:
                with st.lock:
                    st.errors += 1
                self._send(int(srv.behaviour["error_status"]), {"version": srv.version, "slot": srv.slot,
                                 "host": srv.hostname, "error": "injected"})
            else:
                self._send(200, {"version": srv.version, "slot": srv.slot, "host": srv.hostname})
        finally:
            with st.lock:
                st.latencies.append((time.monotonic() - t0) * 1000.0)
                st.inflight -= 1
                st.idle.notify_all()

    do_GET = _handle
    do_POST = _handle


def burn_cpu(fraction: float, stop: threading.Event) -> None:
    fraction = min(max(fraction, 0.0), 1.0)
    while not stop.is_set():
        end = time.monotonic() + 0.1 * fraction
        while time.monotonic() < end:
            pass
        stop.wait(0.1 * (1.0 - fraction))


def main() -> int:
    port = int(os.environ.get("PORT", "8080"))
    slot = os.environ.get("SLOT", "main")
    root = os.environ.get("AGENT_ROOT", "/opt/agent")
    host = os.environ.get("BIND", "0.0.0.0")
    version, behaviour = load_release(root, slot)
    print(f"agent {version} slot {slot} port {port}", flush=True)
    if behaviour["start_fail"]:
        print("start_fail set in behaviour.json: exiting", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if float(behaviour["start_delay"]) > 0:
        if stop.wait(float(behaviour["start_delay"])):
            return 0
    server = AgentServer((host, port), version, slot, behaviour)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                               daemon=True)
    serving.start()
    if float(behaviour["cpu_burn"]) > 0:
        threading.Thread(target=burn_cpu, args=(float(behaviour["cpu_burn"]), stop),
                         daemon=True).start()
    sd_notify("READY=1\nSTATUS=serving " + version)
    print("ready", flush=True)
    while not stop.wait(1.0):
        pass
    sd_notify("STOPPING=1")
    server.draining = True
    server.shutdown()
    server.socket.close()
    deadline = time.monotonic() + DRAIN_TIMEOUT
    st = server.stats
    with st.lock:
        while st.inflight > 0 and time.monotonic() < deadline:
            st.idle.wait(deadline - time.monotonic())
        left = st.inflight
    print(f"stopped, {left} request(s) abandoned", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
