"""Notifications against a real HTTP receiver on a sandbox host (lb-01):
per-tier routing, Slack and generic JSON bodies, a command target, retries
against a receiver that is down or answers 500, a slow receiver cut by the
timeout, secrets kept out of the journal, and a rollout that never waits
for any of it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from console.journal import read_journal
from console.notify import NotificationDelivered, Notifier
from simfleet import write_inventory, write_plan
from strategies.events import AlertRaised, EventBus, GateEvaluated, RunFinished
from strategies.plan import load_plan

pytestmark = pytest.mark.sandbox

ROOT = Path(__file__).resolve().parents[2]
PORT, DOWN_PORT = 9099, 9098
LOG = "/tmp/webhook-receiver.jsonl"
TOKEN = "s3cr3t-token-value"


@pytest.fixture
def receiver(sandbox_fleet):
    """The receiver running on lb-01; yields (base URL, reader of what it got)."""
    fleet = sandbox_fleet
    script = (Path(__file__).parent / "webhook_receiver.py").read_text()
    subprocess.run([*fleet.ssh_argv("lb-01"), f"rm -f {LOG}; cat > /tmp/webhook_receiver.py"], input=script,
                   text=True, check=True, timeout=30)
    fleet.ssh("lb-01", f"nohup python3 /tmp/webhook_receiver.py {PORT} {LOG} 30 >/dev/null 2>&1 & "
                       f"for i in $(seq 50); do python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {PORT}), 1)' "
                       f"2>/dev/null && exit 0; sleep 0.1; done; exit 1", check=True)

    def received() -> list[dict]:
        out = fleet.ssh("lb-01", f"cat {LOG} 2>/dev/null").stdout
        return [json.loads(line) for line in out.splitlines()]

    try:
        yield f"http://{fleet.lb_ip}:{PORT}", received
    finally:
        fleet.ssh("lb-01", "pkill -f /tmp/webhook_receiver.py; rm -f /tmp/webhook_receiver.py " + LOG)


def plan_with(tmp_path: Path, notify: dict) -> Path:
    """The receiver speaks plain HTTP: each target says it may (allow_http)."""
    targets = [{**t, "allow_http": True} if t.get("url", "").startswith("http://") else t
               for t in notify.get("targets", [])]
    return write_plan(tmp_path / "plan.yaml", notify={**notify, "targets": targets}, rolling={"batch": 2})


async def test_proxy_settings_from_the_environment_are_ignored_unless_asked(tmp_path, receiver, monkeypatch):
    """Issue 23 finding 9: a root shell may carry a user's HTTP(S)_PROXY;
    webhooks go straight to their URL unless the plan sets use_proxy_env."""
    base, received = receiver
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens: through it, nothing arrives
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    for use_proxy, expected in ((False, "delivered"), (True, "failed")):
        plan = load_plan(plan_with(tmp_path, {"retries": 0, "use_proxy_env": use_proxy, "targets": [
            {"name": f"direct-{use_proxy}", "kind": "json", "url": f"{base}/ok/proxy-{use_proxy}"}]}))
        bus = EventBus()
        seen: list = []
        bus.subscribe(seen.append)
        notifier = Notifier(plan, bus, redact=lambda text: text)
        bus.subscribe(notifier)
        bus.publish(RunFinished(outcome="succeeded", message="ok", duration=1.0))
        await notifier.drain()
        assert [e.outcome for e in seen if isinstance(e, NotificationDelivered)] == [expected]
        assert len([r for r in received() if r["path"] == f"/ok/proxy-{use_proxy}"]) == (not use_proxy)


async def test_routing_bodies_retries_and_timeouts(tmp_path, receiver, sandbox_fleet):
    base, received = receiver
    cmd_out = tmp_path / "command.jsonl"
    plan = load_plan(plan_with(tmp_path, {
        "timeout": "1s", "retries": 2, "backoff": "0.2s", "flush": "20s",
        "targets": [
            {"name": "all-json", "kind": "json", "url": f"{base}/ok/json",
             "headers": {"Authorization": f"Bearer {TOKEN}"}},
            {"name": "chat", "kind": "slack", "url": f"{base}/ok/slack", "tiers": ["critical"]},
            {"name": "script", "kind": "command", "events": ["result"],
             "command": ["sh", "-c", f"cat >> {cmd_out}; echo >> {cmd_out}"]},
            {"name": "down", "kind": "json", "url": f"http://{sandbox_fleet.lb_ip}:{DOWN_PORT}/x", "events": ["result"]},
            {"name": "broken", "kind": "json", "url": f"{base}/fail", "events": ["result"]},
            {"name": "slow", "kind": "json", "url": f"{base}/slow", "events": ["result"]},
        ]}))
    bus = EventBus()
    seen: list = []
    bus.subscribe(seen.append)
    notifier = Notifier(plan, bus, redact=lambda text: text.replace(base, "[redacted]").replace(
        f"http://{sandbox_fleet.lb_ip}:{DOWN_PORT}/x", "[redacted]"))
    bus.subscribe(notifier)
    bus.publish(AlertRaised(tier="warning", metric="p95_ms", value=900.0, threshold=800.0, where="canary"))
    bus.publish(AlertRaised(tier="critical", metric="error_rate", value=0.2, threshold=0.05, where="canary"))
    bus.publish(GateEvaluated(name="canary", verdict="fail", reasons=["error_rate 20%"], values={}, final=True))
    bus.publish(GateEvaluated(name="canary", verdict="pass", reasons=[], values={}, final=False))  # not final: quiet
    bus.publish(RunFinished(outcome="rolled_back", message="gate failed", duration=12.0))
    # the bus only queued: nothing has been delivered while publishing
    assert not [e for e in seen if isinstance(e, NotificationDelivered)]
    await notifier.drain()

    got = received()
    json_bodies = [json.loads(r["body"]) for r in got if r["path"] == "/ok/json"]
    assert [(b["about"], b["tier"]) for b in json_bodies] == [
        ("alert", "warning"), ("alert", "critical"), ("gate", ""), ("result", "")]
    assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in got if r["path"] == "/ok/json")
    assert json_bodies[1]["event"]["metric"] == "error_rate" and json_bodies[3]["event"]["outcome"] == "rolled_back"
    slack = [json.loads(r["body"]) for r in got if r["path"] == "/ok/slack"]
    assert [list(b) for b in slack] == [["text"]] * 3  # critical alert, gate, result; the warning not routed here
    assert slack[0]["text"].startswith("[critical] ") and "ALERT critical: error_rate" in slack[0]["text"]
    assert json.loads(cmd_out.read_text().splitlines()[0])["about"] == "result"
    assert len([r for r in got if r["path"] == "/fail"]) == 3  # first try + 2 retries
    assert len([r for r in got if r["path"] == "/slow"]) == 3  # each cut at 1 s, retried

    outcome = {(e.target, e.about, e.tier): e for e in seen if isinstance(e, NotificationDelivered)}
    assert {k: (e.outcome, e.attempts) for k, e in outcome.items()} == {
        ("all-json", "alert", "warning"): ("delivered", 1), ("all-json", "alert", "critical"): ("delivered", 1),
        ("all-json", "gate", ""): ("delivered", 1), ("all-json", "result", ""): ("delivered", 1),
        ("chat", "alert", "critical"): ("delivered", 1), ("chat", "gate", ""): ("delivered", 1),
        ("chat", "result", ""): ("delivered", 1), ("script", "result", ""): ("delivered", 1),
        ("down", "result", ""): ("failed", 3), ("broken", "result", ""): ("failed", 3),
        ("slow", "result", ""): ("failed", 3)}
    assert outcome[("broken", "result", "")].status == 500
    assert "no answer within 1 s" in outcome[("slow", "result", "")].error
    down = outcome[("down", "result", "")].error
    assert "ConnectError" in down


def test_rollout_never_waits_for_a_slow_receiver_and_journal_keeps_no_secret(tmp_path, receiver):
    base, received = receiver
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4, releases={"1.0.0": {}, "2.0.0": {"fail_start": True}})
    plan = plan_with(tmp_path, {
        "timeout": "60s", "retries": 0, "flush": "2s",
        "targets": [{"name": "fast", "kind": "json", "url": f"{base}/ok/fast?token={TOKEN}"},
                    {"name": "slow", "kind": "slack", "url": f"{base}/slow/hook"}]})
    journal = tmp_path / "j.jsonl"
    proc = subprocess.run([sys.executable, "-m", "console", "--plan", str(plan), "--inventory", str(inv),
                           "--headless", "--output", "json", "--time-scale", "100", "--record", str(journal)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ROLLOUT_INVENTORY_ENGINE": "built-in"})
    assert proc.returncode == 3, proc.stderr  # the bad release is rolled back
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = [e["kind"] for e in lines]
    finished = kinds.index("run_finished")
    slow = [e for e in lines if e["kind"] == "notify" and e["target"] == "slow"]
    fast = [e for e in lines if e["kind"] == "notify" and e["target"] == "fast"]
    # the receiver held the slow webhook's first request (30 s) past the end
    # of the run: nothing for it was delivered, the run finished anyway and
    # what was left is recorded as dropped
    assert slow and all(e["outcome"] == "dropped" for e in slow)
    assert min(i for i, e in enumerate(lines) if e["kind"] == "notify" and e["target"] == "slow") > finished
    assert [e["about"] for e in fast if e["outcome"] == "delivered"][-1] == "result"
    assert len([r for r in received() if r["path"].startswith("/slow")]) == 1
    text = journal.read_text()
    assert TOKEN not in text and "/slow/hook" not in text and f"{base}" not in text
    assert any(e.kind == "notify" and e.target == "slow" for e in read_journal(journal).events)
