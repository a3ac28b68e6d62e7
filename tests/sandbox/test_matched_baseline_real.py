"""canary.baseline: matched on the real sandbox, under about 100 req/s of
client load through nginx: the matched baseline restarts on the old version
with the canary, nginx gives it the canary's share, the canary is judged
against it, and at the end (promoted or rolled back) the managed nginx file
is byte-identical to the one before the run. No mocks."""
from __future__ import annotations

import json

import pytest

from fault_helpers import journal_ok
from load import SteadyLoad
from rollout_helpers import console, managed_config, plan_file, versions

pytestmark = pytest.mark.sandbox


@pytest.fixture
def fleet(kept_lb_fleet):
    return kept_lb_fleet


async def matched_run(fleet, tmp_path, version):
    plan = plan_file(tmp_path, "canary", version=version,
                     canary={"sample_interval": "2s", "baseline": "matched",
                             "steps": [{"set_weight": 10}, {"analysis": "20s"}, {"set_weight": 100}]},
                     thresholds={"error_rate": "1%", "persistence": 2, "min_requests": 20, "max_window": "120s"})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=100) as load:
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
    return code, events, err, load.result


def split(events):
    return next(n for n, e in enumerate(events) if e["kind"] == "traffic" and "baseline" in e["pools"])


async def test_a_good_canary_with_a_matched_baseline_is_promoted_and_nginx_ends_as_it_started(fleet, tmp_path):
    before = managed_config(fleet)
    code, events, err, load = await matched_run(fleet, tmp_path, "2.0.0")
    assert code == 0, err + json.dumps(events[-3:])
    n = split(events)
    assert events[n]["weights"] == {"canary": 10.0, "baseline": 10.0, "stable": 80.0}
    assert events[n]["pools"]["baseline"] == [f"{fleet.ip('agent-06')}:8080"]
    restarted = {e["instance"] for e in events[:n] if e["kind"] == "instance" and e["phase"] == "restarting"}
    assert restarted == {"agent-01", "agent-06"}  # the canary and its matched baseline, side by side
    gate = next(e for e in events if e["kind"] == "gate" and e["final"])
    assert gate["verdict"] == "pass" and gate["values"]["baseline_requests"] > 0
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert managed_config(fleet) == before
    load.assert_no_failures()
    journal_ok(tmp_path / "j.jsonl")


async def test_a_bad_canary_with_a_matched_baseline_rolls_back_to_the_original_file(fleet, tmp_path):
    fleet.write_release(None, "2.1.0-bad", {"error_rate": 0.3})
    before = managed_config(fleet)
    code, events, err, load = await matched_run(fleet, tmp_path, "2.1.0-bad")
    assert code == 3, err + json.dumps(events[-3:])
    assert "baseline" in events[split(events)]["pools"]
    assert set(versions(fleet).values()) == {"1.0.0"}
    assert managed_config(fleet) == before
    assert [r for r in load.failed if r.version != "2.1.0-bad"] == []  # only the bad release's own answers
    journal_ok(tmp_path / "j.jsonl")
