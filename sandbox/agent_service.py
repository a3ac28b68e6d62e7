#!/usr/bin/python3
"""Stand-in agent service for the sandbox fleet (stdlib and prometheus_client).

Runs as ``agent@SLOT.service`` (Type=notify). Environment: PORT, SLOT, and
AGENT_ROOT (default /opt/agent, overridable for local tests). The release is
read once at start from AGENT_ROOT/slots/SLOT/current/{VERSION,behaviour.json}.

Endpoints: GET /health, GET /metrics (Prometheus's text format, through
prometheus_client: requests by status, a latency histogram, in-flight
requests, a quality gauge, tokens and cost counters, each labelled with the
version and slot), anything else -> a small JSON answer
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

# A release's behaviour: each key's value is of its default's kind (a flag, a
# number, a {hostname: number} map); hosts.write_release checks that before
# it ships a catalog, so the agent reads behaviour.json as given.
BehaviourValue = bool | int | float | dict[str, float]
Behaviour = dict[str, BehaviourValue]

DEFAULTS: Behaviour = {
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
# -- metrics behaviour (issue 25): the AI signals an agent exports ----------
# What one answered request costs: tokens (half prompt, half completion) and
# dollars; `quality` above is the evaluator's score gauge.
DEFAULTS.update({
    "tokens_per_request": 400,
    "cost_per_request": 0.002,
})
# -- end of metrics behaviour -----------------------------------------------
DRAIN_TIMEOUT = 10.0


def number(behaviour: Behaviour, key: str) -> float:
    """A numeric behaviour value (a flag reads as 0 or 1, as float() reads it)."""
    value = behaviour[key]
    if isinstance(value, dict):
        raise TypeError(f"behaviour {key}: a map where a number belongs")
    return float(value)


def load_release(root: str, slot: str) -> tuple[str, Behaviour]:
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


def host_factor(behaviour: Behaviour, hostname: str) -> float:
    """This host's latency factor: named in ``host_latency_factors``, or
    drawn once from the hostname (the same on every start and release: a
    host's personality, not the release's)."""
    named = behaviour["host_latency_factors"]
    if isinstance(named, dict) and hostname in named:
        return float(named[hostname])
    spread = number(behaviour, "host_latency_spread")
    if spread <= 0:
        return 1.0
    seed = int.from_bytes(hashlib.sha256(hostname.encode()).digest()[:8], "big")
    return math.exp(random.Random(seed).gauss(0.0, spread))


class Personality:
    """What one request costs and whether it fails, given the release's
    behaviour, this host, and the time since the service started."""

    def __init__(self, behaviour: Behaviour, hostname: str, rng: random.Random | None = None) -> None:
        self.b = behaviour
        self.factor = host_factor(behaviour, hostname)
        self.rng = rng or random.Random()
        self.lock = threading.Lock()
        self.next_burst = self._gap(0.0)

    def _gap(self, since: float) -> float:
        every = number(self.b, "burst_every")
        return since + self.rng.expovariate(1.0 / every) if every > 0 else math.inf

    def latency(self, uptime: float) -> float:
        """Seconds this request takes."""
        b = self.b
        seconds = max(0.0, number(b, "latency_ms")) / 1000.0 * self.factor
        sigma = number(b, "latency_sigma")
        with self.lock:
            jitter = self.rng.lognormvariate(0.0, sigma) if sigma > 0 else 1.0
            tail = self.rng.random() < number(b, "tail_share")
        warm = number(b, "warmup_seconds")
        if warm > 0 and uptime < warm:
            seconds *= 1.0 + (number(b, "warmup_factor") - 1.0) * (1.0 - uptime / warm)
        return seconds * jitter * (number(b, "tail_factor") if tail else 1.0)

    def fails(self, uptime: float) -> bool:
        """Does this request fail: the background rate, or a burst's."""
        with self.lock:
            while uptime >= self.next_burst + number(self.b, "burst_seconds"):
                self.next_burst = self._gap(self.next_burst + number(self.b, "burst_seconds"))
            rate = number(self.b, "burst_error_rate") if uptime >= self.next_burst else number(self.b, "error_rate")
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
    """In-flight requests (a drain waits for them) and the exported metrics."""

    def __init__(self, version: str, slot: str, behaviour: Behaviour) -> None:
        self.lock = threading.Lock()
        self.inflight = 0
        self.idle = threading.Condition(self.lock)
        self.registry = CollectorRegistry()
        names = ("version", "slot")
        reg = self.registry
        Info("agent", "the release this agent runs", names, registry=reg).labels(version, slot).info({})
        self.requests = Counter("agent_requests", "requests answered, by HTTP status",
                                (*names, "status"), registry=reg)
        self.errors = Counter("agent_errors", "requests answered with an error", names,
                              registry=reg).labels(version, slot)
        self.latency = Histogram("agent_request_duration_seconds", "time to answer a request", names,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
                                 registry=reg).labels(version, slot)
        self.gauge = Gauge("agent_inflight_requests", "requests being answered", names,
                           registry=reg).labels(version, slot)
        Gauge("agent_quality_score", "the evaluator's quality score of this release's answers", names,
              registry=reg).labels(version, slot).set(number(behaviour, "quality"))
        tokens = Counter("agent_tokens", "model tokens spent", (*names, "kind"), registry=reg)
        self.prompt, self.completion = tokens.labels(version, slot, "prompt"), tokens.labels(version, slot, "completion")
        self.cost = Counter("agent_cost_dollars", "model cost spent, in dollars", names,
                            registry=reg).labels(version, slot)
        self.labels = (version, slot)

    def answered(self, status: int, seconds: float, behaviour: Behaviour) -> None:
        self.requests.labels(*self.labels, str(status)).inc()
        self.latency.observe(seconds)
        if status >= 400:
            self.errors.inc()
            return
        tokens = max(0.0, number(behaviour, "tokens_per_request"))
        self.prompt.inc(tokens / 2)
        self.completion.inc(tokens / 2)
        self.cost.inc(max(0.0, number(behaviour, "cost_per_request")))


class AgentServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    # http.server listens with a queue of 5: a burst of new connections (nginx's
    # fresh workers after a reload, all routed to one instance) overflowed it, the
    # kernel dropped the SYNs beyond it and nginx's 1 s connect time-out answered
    # 504 (soak seed 9 run 267: 14 ListenOverflows on the one stable host a canary
    # rollback routed to). A real server's queue (gunicorn, uvicorn: 2048) holds it.
    request_queue_size = 1024

    def __init__(self, addr: tuple[str, int], version: str, slot: str, behaviour: Behaviour) -> None:
        super().__init__(addr, Handler)
        self.version, self.slot, self.behaviour = version, slot, behaviour
        self.stats = Stats(version, slot, behaviour)
        self.started = time.monotonic()
        self.hostname = socket.gethostname()
        self.personality = Personality(behaviour, self.hostname)
        self.draining = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: AgentServer
    timeout = 60
    # TCP_NODELAY, as real HTTP servers set it: the handler writes the headers
    # and the body apart, and on nginx's kept-alive upstream connections Nagle
    # held the body until the headers' delayed ACK (~40 ms) for about a
    # quarter of the answers of freshly started instances. That tail is this
    # stand-in's, not a release's: the judge's tail test stopped a good seed
    # canary on it (CI rehearsal at ac9f7d4: 35 of 137 at ~50 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass

    def _send(self, code: int, body: dict[str, str] | bytes, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
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
            flap = number(srv.behaviour, "health_flap")
            flapped = flap > 0 and int((time.monotonic() - srv.started) / flap) % 2 == 1
            if srv.behaviour["health_fail"] or flapped:
                self._send(503, {"status": "failing", "version": srv.version, "slot": srv.slot})
            else:
                self._send(200, {"status": "ok", "version": srv.version, "slot": srv.slot})
            return
        if path == "/metrics":
            self._send(200, generate_latest(st.registry), CONTENT_TYPE_LATEST)
            return
        t0 = time.monotonic()
        with st.lock:
            st.inflight += 1
        st.gauge.inc()
        counted = False
        try:
            self._read_body()
            uptime = time.monotonic() - srv.started
            time.sleep(srv.personality.latency(uptime))
            body: dict[str, str] = {"version": srv.version, "slot": srv.slot, "host": srv.hostname}
            status = 200
            if srv.personality.fails(uptime):
                status = int(number(srv.behaviour, "error_status"))
                body["error"] = "injected"
            # Counted before the answer is written: a client that holds its
            # answer and then scrapes /metrics must find it counted (counted
            # after, a scrape raced the handler thread; CI at f5aa3a8).
            st.answered(status, time.monotonic() - t0, srv.behaviour)
            st.gauge.dec()
            counted = True
            self._send(status, body)
        finally:
            if not counted:  # the client went away mid-request: still one answered request, failed
                st.answered(500, time.monotonic() - t0, srv.behaviour)
                st.gauge.dec()
            with st.lock:
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
    if number(behaviour, "start_delay") > 0:
        if stop.wait(number(behaviour, "start_delay")):
            return 0
    server = AgentServer((host, port), version, slot, behaviour)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                               daemon=True)
    serving.start()
    if number(behaviour, "cpu_burn") > 0:
        threading.Thread(target=burn_cpu, args=(number(behaviour, "cpu_burn"), stop),
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
