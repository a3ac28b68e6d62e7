"""Sandbox hosts with personalities (`console sandbox release --behaviour`),
each key measured from the client's side: real HTTP requests from this
machine to the agent units on real sandbox hosts, timed here, not read from
the agent's own counters."""
from __future__ import annotations

import statistics
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from rollout_helpers import wait_until
from sandbox.agent_service import host_factor

pytestmark = pytest.mark.sandbox

VERSION = "7.0.0"


def install(fleet, names, behaviour):
    """Ship `behaviour` as VERSION to `names` and restart their main unit on it."""
    fleet.write_release(names, VERSION, behaviour)
    for n in names:
        fleet.ssh(n, f"/opt/agent/bin/install-release {VERSION} >/dev/null && systemctl restart agent@main",
                  check=True)
    for n in names:
        wait_until(lambda n=n: fleet.health(n) == (200, {"status": "ok", "version": VERSION, "slot": "main"}),
                   f"{n} serving {VERSION}", timeout=20)
    return time.monotonic()


def measure(fleet, name, count):
    """`count` requests one after another: (seconds, failed) each, as the client saw them."""
    out = []
    url = f"http://{fleet.ip(name)}:8080/work"
    for _ in range(count):
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
                failed = False
        except urllib.error.HTTPError as e:
            e.read()
            failed = True
        out.append((time.perf_counter() - t0, failed))
    return out


def median(rows):
    return statistics.median(s for s, _ in rows)


def quantile(rows, q):
    data = sorted(s for s, _ in rows)
    return data[min(len(data) - 1, int(q * len(data)))]


def test_a_named_host_is_slower_whatever_the_release(fleet):
    install(fleet, ["agent-01", "agent-02"], {"latency_ms": 20, "host_latency_factors": {"agent-01": 4}})
    slow, plain = measure(fleet, "agent-01", 60), measure(fleet, "agent-02", 60)
    assert median(slow) > 2.5 * median(plain) and median(plain) < 0.045


def test_the_latency_spread_gives_each_host_its_own_factor(fleet):
    names = fleet.agent_names
    install(fleet, names, {"latency_ms": 30, "host_latency_spread": 0.4})
    with ThreadPoolExecutor(len(names)) as pool:
        medians = dict(zip(names, pool.map(lambda n: median(measure(fleet, n, 40)), names)))
    factors = {n: host_factor({"host_latency_factors": {}, "host_latency_spread": 0.4}, n) for n in names}
    assert max(factors.values()) / min(factors.values()) > 1.3  # the spread is visible at all
    for n in names:  # each host near its own factor (the client adds a millisecond or two)
        assert 0.8 * 0.030 * factors[n] < medians[n] < 1.25 * 0.030 * factors[n] + 0.004, (n, medians, factors)


def test_latency_sigma_spreads_each_request(fleet):
    install(fleet, ["agent-01", "agent-02"], {"latency_ms": 20})
    fleet.write_release(["agent-02"], "7.0.1", {"latency_ms": 20, "latency_sigma": 0.5})
    fleet.ssh("agent-02", "/opt/agent/bin/install-release 7.0.1 >/dev/null && systemctl restart agent@main",
              check=True)
    wait_until(lambda: fleet.health("agent-02")[1].get("version") == "7.0.1", "agent-02 serving 7.0.1", timeout=20)
    flat, spread = measure(fleet, "agent-01", 100), measure(fleet, "agent-02", 100)
    assert quantile(flat, 0.9) / quantile(flat, 0.1) < 1.6
    assert quantile(spread, 0.9) / quantile(spread, 0.1) > 2.2  # lognormal sigma 0.5: about 3.6


def test_failures_come_in_bursts(fleet):
    install(fleet, ["agent-01"], {"latency_ms": 20, "error_rate": 0.0, "burst_every": 3.0,
                                  "burst_seconds": 1.0, "burst_error_rate": 1.0})
    rows = measure(fleet, "agent-01", 400)  # about 10 s
    failed = [f for _, f in rows]
    assert 0 < sum(failed) < 0.8 * len(rows)
    # clustered: a failure is mostly next to another failure (independent failures at the same
    # rate would neighbour each other only at that rate)
    neighbours = sum(1 for i in range(1, len(failed) - 1) if failed[i] and (failed[i - 1] or failed[i + 1]))
    assert neighbours > 0.8 * sum(failed)


def test_a_restarted_host_is_slow_while_it_warms_up(fleet):
    started = install(fleet, ["agent-01"], {"latency_ms": 20, "warmup_seconds": 6.0, "warmup_factor": 5.0})
    rows = []
    while time.monotonic() - started < 9.0:  # through the warm-up and past it
        at = time.monotonic() - started
        rows += [(at, *r) for r in measure(fleet, "agent-01", 1)]
    cold = [(s, f) for at, s, f in rows if at < 2.0]
    warm = [(s, f) for at, s, f in rows if at > 6.5]
    assert cold and warm and median(cold) > 2.0 * median(warm)


def test_a_tail_only_release_slows_the_p95_not_the_median(fleet):
    install(fleet, ["agent-01", "agent-02"], {"latency_ms": 40})
    fleet.write_release(["agent-02"], "7.0.1", {"latency_ms": 40, "tail_share": 0.12, "tail_factor": 1.5})
    fleet.ssh("agent-02", "/opt/agent/bin/install-release 7.0.1 >/dev/null && systemctl restart agent@main",
              check=True)
    wait_until(lambda: fleet.health("agent-02")[1].get("version") == "7.0.1", "agent-02 serving 7.0.1", timeout=20)
    base, tail = measure(fleet, "agent-01", 200), measure(fleet, "agent-02", 200)
    assert abs(median(tail) - median(base)) < 0.1 * median(base)
    assert quantile(tail, 0.95) > 1.3 * quantile(base, 0.95)
