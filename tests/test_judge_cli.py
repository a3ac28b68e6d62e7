"""Shadow mode on the SIMULATED fleet, and `console judge backtest` (good
and bad input, exit codes, the formats of issue 22, a journal's samples)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from console.cli import main
from console.journal import read_journal
from simfleet import write_inventory, write_plan

ROOT = Path(__file__).resolve().parents[1]


def backtest(*args):
    return subprocess.run([sys.executable, "-m", "console", "judge", "backtest", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def line(trial, t, canary, baseline=None):
    return json.dumps({"trial": trial, "t": t, "canary": canary, "baseline": baseline})


def test_a_shadow_judge_records_its_failing_verdict_and_the_run_goes_on(tmp_path):
    """SIMULATED: a release failing 30 % of requests, judged in shadow
    (--judge-shadow): the judge's fail is journalled, marked shadow, and
    the rollout succeeds anyway; the start said the judge only shadows.
    The journal's samples then backtest to the same verdict."""
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"error_rate": 0.3}})
    plan = write_plan(tmp_path / "plan.yaml", "canary")
    journal = tmp_path / "j.jsonl"
    code = main(["--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                 "--record", str(journal), "--judge-shadow"])
    assert code == 0
    events = [e.to_dict() for e in read_journal(journal).events]
    budget = [e for e in events if e["kind"] == "judge_budget"]
    assert budget and budget[0]["shadow"] is True and budget[0]["windows"] == 2 and budget[0]["alpha"] == 0.01
    fails = [e for e in events if e["kind"] == "gate" and e["verdict"] == "fail"]
    assert fails and all(e["shadow"] for e in fails)
    assert [e for e in events if e["kind"] == "run_finished"][0]["outcome"] == "succeeded"
    out = backtest("--from-journal", str(journal), "--plan", str(plan))
    assert out.returncode == 0, out.stderr
    verdicts = [json.loads(x) for x in out.stdout.splitlines()]
    assert verdicts[0]["verdict"] == "fail" and verdicts[0]["trial"].startswith("step 2")


def test_without_shadow_the_same_release_is_rolled_back(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"error_rate": 0.3}})
    plan = write_plan(tmp_path / "plan.yaml", "canary")
    assert main(["--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                 "--record", str(tmp_path / "j.jsonl")]) == 3


def test_the_plan_key_turns_shadow_on_too(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"error_rate": 0.3}})
    plan = write_plan(tmp_path / "plan.yaml", "canary", analysis={"shadow": True, "false_alarm_budget": "2%"})
    journal = tmp_path / "j.jsonl"
    assert main(["--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                 "--record", str(journal)]) == 0
    budget = [e for e in read_journal(journal).events if e.kind == "judge_budget"][0]
    assert budget.shadow and budget.alpha == 0.02 and budget.per_window == 0.01


def test_backtest_gives_one_verdict_per_trial_in_the_issue_s_format(tmp_path):
    clean = {"requests": 100, "failed": 0, "latencies": [0.04] * 100}
    stable = {"requests": 900, "failed": 2, "latencies": [0.04] * 300}
    bad = {"requests": 5, "failed": 3, "latencies": [0.05] * 5}
    rows = [line("bad", t, bad, stable) for t in (5, 10)]  # the comparison's null is set by the first sample
    rows += [line(7, t, clean, stable) for t in range(5, 65, 5)]
    rows += [line("thin", 5, {"requests": 2, "failed": 0, "latencies": [0.04, 0.04]}, stable)]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(rows) + "\n")
    out = backtest(str(samples))
    assert out.returncode == 0, out.stderr
    got = [json.loads(x) for x in out.stdout.splitlines()]
    assert [(g["trial"], g["verdict"]) for g in got] == [("bad", "fail"), (7, "pass"), ("thin", "inconclusive")]
    assert got[0]["at"] == 10 and got[0]["findings"][0].startswith("error_rate")
    assert got[1]["at"] == 60 and got[1]["findings"] == []  # the seed's 60 s window
    assert set(got[0]) == {"trial", "verdict", "at", "findings"}


def test_backtest_takes_the_policy_from_the_plan(tmp_path):
    """The same samples: the seed's 1 % error threshold fails them, a plan
    with a 20 % threshold does not find the difference material."""
    rows = [line("x", t, {"requests": 50, "failed": 2}, {"requests": 950, "failed": 0}) for t in range(5, 65, 5)]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("\n".join(rows) + "\n")
    assert json.loads(backtest(str(samples)).stdout)["verdict"] == "fail"
    loose = write_plan(tmp_path / "plan.yaml", "canary", thresholds={"error_rate": "20%"},
                       alerts={"critical": [], "important": [], "warning": []})
    assert json.loads(backtest(str(samples), "--plan", str(loose)).stdout)["verdict"] != "fail"


def test_bad_backtest_input_names_file_line_and_field_and_exits_2(tmp_path):
    cases = {
        "not JSON": "{trial: 1",
        "canary.failed: 7 failed of 5 requests": line(1, 5, {"requests": 5, "failed": 7}),
        "t: expected seconds": line(1, -1, {"requests": 5, "failed": 0}),
        "canary.latencies: expected a list": line(1, 5, {"requests": 5, "failed": 0, "latencies": ["x"]}),
        "colour: unknown field": json.dumps({"trial": 1, "t": 5, "canary": {"requests": 1, "failed": 0},
                                             "colour": "blue"}),
        "t: 5 is before": line(1, 10, {"requests": 5, "failed": 0}) + "\n" + line(1, 5, {"requests": 5, "failed": 0}),
    }
    for expected, text in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(line(0, 5, {"requests": 1, "failed": 0}) + "\n" + text + "\n")
        out = backtest(str(bad))
        assert out.returncode == 2 and out.stdout == "", (expected, out)
        number = 3 if "before" in expected else 2  # the first line is good
        assert f"{bad}:{number}: " in out.stderr and expected in out.stderr, (expected, out.stderr)
        assert "Traceback" not in out.stderr
    assert backtest(str(tmp_path / "missing.jsonl")).returncode == 2
    assert backtest().returncode == 2  # neither FILE nor --from-journal
    bad_plan = tmp_path / "plan.yaml"
    bad_plan.write_text("strategy: canary\nanalysis:\n  false_alarm_budget: 50%\n")
    out = backtest(str(tmp_path / "bad.jsonl"), "--plan", str(bad_plan))
    assert out.returncode == 2 and "false_alarm_budget" in out.stderr


def test_a_journal_without_judge_samples_is_bad_input(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "rolling", rolling={"batch": 2, "interval": 0})
    journal = tmp_path / "j.jsonl"
    assert main(["--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "100",
                 "--record", str(journal)]) == 0
    out = backtest("--from-journal", str(journal))
    assert out.returncode == 2 and "no judge samples" in out.stderr and f"{journal}:" in out.stderr
