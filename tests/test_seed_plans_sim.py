"""The article's three YAML blocks (examples/seed/), verbatim, run to exit 0
on the embedded SIMULATED fleet with the README's command; and the seed's
`rollback.delay` is used: it bounds how long a failing check may stand
before the rollback starts (strategies/plan/seed.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from simfleet import write_inventory

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "seed"


def run(plan: Path, tmp_path: Path, version: str = "2.0.0", *extra: str) -> tuple[int, list[dict], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "console", "--plan", str(plan), "--version", version, *extra, "--headless",
         "--auto-promote", "--time-scale", "100", "--output", "json", "--record", str(tmp_path / "j.jsonl")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def succeeded(code: int, events: list[dict], err: str) -> dict:
    assert code == 0, err + json.dumps(events[-2:])[:3000]
    result = events[-1]
    assert result["kind"] == "result" and result["outcome"] == "succeeded" and result["simulated"] is True
    return result


def test_seed_rolling_block_runs_verbatim(tmp_path):
    code, events, err = run(SEEDS / "rolling.yaml", tmp_path)
    result = succeeded(code, events, err)
    assert set(result["versions"].values()) == {"2.0.0"} and len(result["versions"]) == 10
    steps = [e for e in events if e["kind"] == "step_started"]
    assert [len(s["instances"]) for s in steps] == [1] * 10  # replacement_rate 0.1 of 10 hosts


def test_seed_canary_block_runs_verbatim(tmp_path):
    code, events, err = run(SEEDS / "canary.yaml", tmp_path)
    result = succeeded(code, events, err)
    assert set(result["versions"].values()) == {"2.0.0"}
    traffic = [e for e in events if e["kind"] == "traffic"]
    weights = list(dict.fromkeys(e["weights"]["canary"] for e in traffic if e["weights"]))
    assert weights[:4] == [1.0, 5.0, 9.0, 13.0] and weights == sorted(weights)  # 1 %, then steps of 4 %
    assert {p: len(b) for p, b in traffic[-1]["pools"].items()} == {"stable": 10}


def test_seed_blue_green_block_runs_verbatim_with_green_live(tmp_path):
    """production_env: green is the live colour: green serves 1.0.0 before,
    the new release goes to blue (staging_env), blue is live after."""
    code, events, err = run(SEEDS / "blue-green.yaml", tmp_path)
    result = succeeded(code, events, err)
    started = next(e for e in events if e["kind"] == "run_started")
    assert {k: v for k, v in started["old_versions"].items() if k.endswith("/green")} == \
        {f"agent-{n:02d}/green": "1.0.0" for n in range(1, 11)}
    assert all(v == "2.0.0" for k, v in result["versions"].items() if k.endswith("/blue"))
    last = [e for e in events if e["kind"] == "traffic"][-1]
    assert set(last["pools"]) == {"blue"}
    assert "blue live on 2.0.0" in result["message"]


def first_breach(events: list[dict]) -> dict:
    """The first gate sample that breaks a threshold (a failing sample also closes its window)."""
    return next(e for e in events if e["kind"] == "gate" and (not e["final"] or e["verdict"] == "fail")
                and any(r.startswith("quality_score") for r in e["reasons"]))


@pytest.mark.parametrize("delay,verdict", [("300s # 5 分鐘", "pending"), ("0s", "fail")])
def test_rollback_delay_bounds_how_long_a_failing_check_stands(tmp_path, delay, verdict):
    """The canary seed shipping a release whose quality score is too low (a
    per-sample reading: error rates are judged on the pooled window and fail
    at once). With the article's 300s, the gate waits for a second failing
    sample (persistence 2, 5s apart, within 300s); with `delay: 0s` the first
    failing sample starts the rollback."""
    plan = tmp_path / "canary.yaml"
    plan.write_text((SEEDS / "canary.yaml").read_text(encoding="utf-8").replace("300s # 5 分鐘", delay),
                    encoding="utf-8")
    inv = write_inventory(tmp_path / "inv.yaml", hosts=10, releases={"1.0.0": {}, "2.5.0-dull": {"quality": 0.5}})
    code, events, err = run(plan, tmp_path, "2.5.0-dull", "--inventory", str(inv))
    started = next(e for e in events if e["kind"] == "run_started")
    assert started["thresholds"]["persistence"] == {"pending": 2, "fail": 1}[verdict]
    first = first_breach(events)
    assert first["verdict"] == verdict and first["name"].startswith("step 2")
    assert code == 3, err + json.dumps(events[-2:])[:3000]  # rolled back at the first step either way


def test_settings_beside_the_block_that_exceed_rollback_delay_are_refused(tmp_path):
    plan = tmp_path / "bg.yaml"
    plan.write_text((SEEDS / "blue-green.yaml").read_text(encoding="utf-8") + "thresholds:\n  persistence: 3\n",
                    encoding="utf-8")
    code, events, err = run(plan, tmp_path)
    assert code == 2 and events == []
    assert err.startswith(f"console: error: {plan}:11: blue_green_deployment.rollback.delay: ") \
        and "persistence 3" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "j.jsonl").exists()
