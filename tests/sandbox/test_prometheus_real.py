"""The Prometheus provider against a real Prometheus server (Debian's
`prometheus` package on the sandbox LB, scraping every agent each second;
sandbox/prometheus_server.py): one instance's series read through
the plan's placeholders, every way a query can fail turned into "no data",
a canary judged on Prometheus series, a bad release caught on a custom
metric alone, and the server going away mid-window. No fake server."""
from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from fault_helpers import journal_ok
from inventory import prometheus
from load import SteadyLoad
from rollout_helpers import console_timeline, plan_file, until, versions
from sandbox import prometheus_server
from strategies.metric_sources import render_query

pytestmark = pytest.mark.sandbox
RATE = 60
COST = ('sum(rate(agent_cost_dollars_total{instance="{instance}"}[{window}])) '
        '/ sum(rate(agent_requests_total{instance="{instance}",status="200"}[{window}]))')


@pytest.fixture
def prom(fleet):
    """The fleet (reset before and after) with its Prometheus server
    running, started again after a test that stops it."""
    url = prometheus_server.start(fleet.state_dir, log=lambda m: None)
    yield fleet, url
    prometheus_server.start(fleet.state_dir, log=lambda m: None)


def one(name: str, fleet, query: str) -> str:
    ip = fleet.ip(name)
    return render_query(query, instance=f"{ip}:8080", host=name, version="1.0.0", window="5s")


async def test_each_instance_series_is_read_and_every_failure_is_no_data(prom):
    fleet, url = prom
    async with prometheus.client() as http:
        for name in fleet.agent_names[:2]:
            q = one(name, fleet, 'agent_quality_score{instance="{instance}",host="{host}",version="{version}"}')
            assert await prometheus.query(http, url, q, 5) == 0.97
        cases = [
            ('agent_quality_score{instance="{instance}"', prometheus.Kind.BAD_QUERY),  # PromQL syntax
            ('no_such_metric{instance="{instance}"}', prometheus.Kind.EMPTY),
            ('agent_quality_score{host!="{host}"}', prometheus.Kind.SEVERAL),  # every other instance
            ('agent_quality_score{instance="{instance}",version="{version}"} / 0 * 0',
             prometheus.Kind.NOT_NUMERIC),  # NaN
            ('agent_quality_score{instance="{instance}"}[{window}]', prometheus.Kind.BAD_QUERY),  # a range
        ]
        for query, kind in cases:
            with pytest.raises(prometheus.NoData) as exc:
                await prometheus.query(http, url, one("agent-01", fleet, query), 5)
            assert exc.value.kind == kind, (query, exc.value)
        # the query cannot be evaluated: two series end up with one label set. The agent's
        # per-status counters exist once it answered a request, and rate() needs two scrapes
        # of each: answer some, then wait until the server scraped them twice (a fresh agent
        # had none in the CI rehearsal: an empty result)
        chat = f"http://{fleet.ip('agent-01')}:8080/v1/chat"
        await asyncio.to_thread(lambda: [urllib.request.urlopen(chat, timeout=10).read() for _ in range(5)])
        scraped = one("agent-01", fleet, 'count_over_time(agent_requests_total{instance="{instance}"}[30s])')
        for _ in range(300):
            try:
                if await prometheus.query(http, url, scraped, 5) >= 2:
                    break
            except prometheus.NoData:
                pass
            await asyncio.sleep(0.1)
        with pytest.raises(prometheus.NoData) as exc:
            await prometheus.query(http, url, one("agent-01", fleet, 'rate({__name__=~"agent_.+_total",'
                                                   'instance="{instance}"}[30s])'), 5)
        assert exc.value.kind == prometheus.Kind.BAD_QUERY and "same labelset" in str(exc.value)
        # a hung server (SIGSTOP: the kernel still accepts the connection)
        fleet.exec_in(fleet.lb_name, ["systemctl", "kill", "-s", "STOP", "prometheus"])
        try:
            with pytest.raises(prometheus.NoData) as exc:
                await prometheus.query(http, url, one("agent-01", fleet, 'up{instance="{instance}"}'), 1)
            assert exc.value.kind == prometheus.Kind.TIMEOUT
        finally:
            fleet.exec_in(fleet.lb_name, ["systemctl", "kill", "-s", "CONT", "prometheus"])
        prometheus_server.stop(fleet.state_dir)
        with pytest.raises(prometheus.NoData) as exc:
            await prometheus.query(http, url, one("agent-01", fleet, 'up{instance="{instance}"}'), 5)
        assert exc.value.kind == prometheus.Kind.UNREACHABLE


def cost_plan(tmp_path, fleet, url, version, *, analysis="10s", tier="important"):
    return plan_file(tmp_path, "canary", version=version,
                     canary={"sample_interval": "2s",
                             "steps": [{"set_weight": 30}, {"analysis": analysis}, {"set_weight": 100}]},
                     thresholds={"error_rate": "5%", "persistence": 2, "min_requests": 20, "max_window": "40s"},
                     metrics={"prometheus": {"url": url, "window": "6s", "timeout": "3s"},
                              "custom": [{"name": "cost_per_request", "query": COST, "worse": "higher",
                                          "tolerance": "50%", "tier": tier}]})


async def run(fleet, tmp_path, plan, timeline=None):
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=RATE) as load:
        code, events, err = await console_timeline(
            "--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless",
            "--record", str(tmp_path / "j.jsonl"), timeline=timeline)
    return code, [e for _, e in events], err, load.result


def gates(events):
    return [e for e in events if e["kind"] == "gate"]


async def test_a_canary_judged_on_prometheus_series_is_promoted(prom, tmp_path):
    fleet, url = prom
    fleet.write_release(None, "2.0.0", {})
    code, events, err, result = await run(fleet, tmp_path, cost_plan(tmp_path, fleet, url, "2.0.0"))
    assert code == 0, err + json.dumps(events[-3:])
    final = [g for g in gates(events) if g["final"]]
    assert final and final[0]["verdict"] == "pass"
    values = final[0]["values"]  # the release's and baseline's cost per request, from Prometheus
    assert values["cost_per_request"] == pytest.approx(0.002, rel=0.01)
    assert values["baseline_cost_per_request"] == pytest.approx(0.002, rel=0.01)
    assert set(versions(fleet).values()) == {"2.0.0"}
    result.assert_no_failures()
    journal_ok(tmp_path / "j.jsonl")


async def test_a_release_costing_five_times_more_is_rolled_back_on_that_metric_alone(prom, tmp_path):
    fleet, url = prom
    fleet.write_release(None, "2.2.0-costly", {"cost_per_request": 0.01})  # no errors, no slowdown
    code, events, err, result = await run(fleet, tmp_path, cost_plan(tmp_path, fleet, url, "2.2.0-costly"))
    assert code == 3, err + json.dumps(events[-3:])  # rolled back
    fail = next(g for g in gates(events) if g["verdict"] == "fail")
    assert [r.split()[0] for r in fail["reasons"]] == ["cost_per_request"], fail["reasons"]
    assert fail["values"]["cost_per_request"] == pytest.approx(0.01, rel=0.01)
    assert fail["values"]["error_rate"] == 0
    assert set(versions(fleet).values()) == {"1.0.0"}
    result.assert_no_failures()


async def test_the_server_going_away_mid_window_never_passes_it(prom, tmp_path):
    fleet, url = prom
    fleet.write_release(None, "2.0.0", {})
    timeline: list = []
    plan = cost_plan(tmp_path, fleet, url, "2.0.0", analysis="16s")

    async def stop_when_judging():
        await until(timeline, "gate")  # the window has begun on real series
        prometheus_server.stop(fleet.state_dir)

    stopper = asyncio.create_task(stop_when_judging())
    code, events, err, _ = await run(fleet, tmp_path, plan, timeline)
    await stopper
    assert code == 7, err + json.dumps(events[-3:])  # inconclusive: headless asks a human
    assert not any(g["verdict"] == "pass" for g in gates(events))
    final = [g for g in gates(events) if g["final"]][-1]
    assert final["verdict"] == "inconclusive"
    assert any(r.startswith("cost_per_request: no data (server unreachable") for r in final["reasons"]), final
    assert final["values"]["cost_per_request"] is None
