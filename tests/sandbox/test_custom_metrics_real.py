"""A custom metric read from each real instance's /metrics (Prometheus's
text format, over the host's SSH connection) catches a release no other
check does: the evaluator's quality score drops, with no errors and no
slowdown, and the built-in quality threshold and alert rule switched off."""
from __future__ import annotations

import json

import pytest

from fault_helpers import journal_ok
from load import SteadyLoad
from rollout_helpers import console, plan_file, versions

pytestmark = pytest.mark.sandbox


async def test_a_release_whose_quality_drops_is_rolled_back_on_a_critical_instance_metric(fleet, tmp_path):
    fleet.write_release(None, "2.3.0-dull", {"quality": 0.5})
    plan = plan_file(tmp_path, "canary", version="2.3.0-dull",
                     canary={"sample_interval": "2s",
                             "steps": [{"set_weight": 30}, {"analysis": "10s"}, {"set_weight": 100}]},
                     thresholds={"error_rate": "5%", "quality_score": 0, "min_requests": 20, "max_window": "40s"},
                     alerts={"critical": ["health_check_failed"], "important": [], "warning": []},
                     metrics={"custom": [{"name": "eval_quality", "instance": "agent_quality_score",
                                          "worse": "lower", "threshold": 0.8, "tier": "critical"}]})
    async with SteadyLoad(f"http://{fleet.lb_ip}/v1/chat", rate=40) as load:
        code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path),
                                          "--headless", "--output", "json", "--record", str(tmp_path / "j.jsonl"))
    assert code == 3, err + json.dumps(events[-3:])
    fail = next(e for e in events if e["kind"] == "gate" and e["verdict"] == "fail")
    assert [r.split()[0] for r in fail["reasons"]] == ["eval_quality"], fail["reasons"]
    assert fail["values"]["eval_quality"] == 0.5 and fail["values"]["baseline_eval_quality"] == 0.97
    alert = next(e for e in events if e["kind"] == "alert" and e["metric"] == "eval_quality")
    assert alert["tier"] == "critical" and alert["threshold"] == 0.8
    assert set(versions(fleet).values()) == {"1.0.0"}
    load.result.assert_no_failures()
    journal_ok(tmp_path / "j.jsonl")
