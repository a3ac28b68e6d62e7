"""Hostile values and hostile output against the real sandbox.

Inputs carrying shell metacharacters, newlines or option-looking values
either fail validation (exit 2, nothing touched) or reach the remote shell
quoted; no injected command runs (marker files are checked on every host
and on this machine). Remote output that is huge, binary, non-UTF-8 or
endless is bounded and cannot break the journal or the JSON output."""
from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import yaml

from console.journal import verify
from rollout_helpers import console, managed_config, plan_file, versions
from strategies.checklist import render_check
from strategies.plan import load_plan, render_commands

pytestmark = pytest.mark.sandbox

MARK = "/tmp/pwned"
FAST = {"health": {"interval": "0.5s", "passes": 2, "deadline": "10s", "timeout": "1s"},
        "drain": {"timeout": "3s"}, "rolling": {"batch": 3, "interval": "0s"}}


@pytest.fixture
def fleet(sandbox_fleet):
    sandbox_fleet.reset()
    for name in [sandbox_fleet.lb_name, *sandbox_fleet.agent_names]:
        sandbox_fleet.ssh(name, f"rm -f {MARK}")
    if os.path.exists(MARK):
        os.unlink(MARK)
    yield sandbox_fleet
    sandbox_fleet.reset()


def no_marker_anywhere(fleet) -> None:
    assert not os.path.exists(MARK), "an injected command ran on the controller"
    for name in [fleet.lb_name, *fleet.agent_names]:
        assert fleet.ssh(name, f"test -e {MARK} && echo PWNED || true").stdout.strip() == "", name


def inventory_with(fleet, tmp_path: Path, host: str, **hostvars) -> Path:
    inv = yaml.safe_load(fleet.inventory_path.read_text())
    inv["all"]["children"]["agents"]["hosts"][host].update(hostvars)
    path = tmp_path / "inv.yaml"
    path.write_text(yaml.safe_dump(inv))
    return path


HOSTILE_PLANS = [
    {"version": "$(touch /tmp/pwned)"},
    {"version": "2.0.0; touch /tmp/pwned"},
    {"version": "-oProxyCommand=touch /tmp/pwned"},
    {"version": "2.0.0\ntouch /tmp/pwned"},
    {"slot": "main;touch /tmp/pwned"},
    {"deploy": {"commands": ["install {ansible_host}"]}},  # a host var is not a template field
    {"nginx": {"upstream": "agent;include /tmp/pwned"}},
    {"nginx": {"config": "/etc/nginx/conf.d/$(touch /tmp/pwned).conf"}},
    {"health": {"path": "/health\nHost: evil"}},
]


@pytest.mark.parametrize("override", HOSTILE_PLANS, ids=lambda o: json.dumps(o)[:40])
async def test_hostile_plan_values_fail_validation(fleet, tmp_path, override):
    before = managed_config(fleet)
    code, _, err = await console("--plan", str(plan_file(tmp_path, **override)), "--inventory",
                                 str(fleet.inventory_path), "--headless", "--record", str(tmp_path / "j.jsonl"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "j.jsonl").exists()
    assert managed_config(fleet) == before
    no_marker_anywhere(fleet)


@pytest.mark.parametrize("hostvars", [
    {"ansible_host": "-oProxyCommand=touch /tmp/pwned"},
    {"ansible_host": "10.0.0.1;touch /tmp/pwned"},
    {"ansible_user": "root$(touch /tmp/pwned)"},
    {"ansible_port": "22 -oProxyCommand=touch"},
], ids=lambda v: json.dumps(v)[:40])
async def test_hostile_inventory_values_fail_validation(fleet, tmp_path, hostvars):
    inv = inventory_with(fleet, tmp_path, "agent-02", **hostvars)
    code, _, err = await console("--plan", str(plan_file(tmp_path)), "--inventory", str(inv), "--headless",
                                 "--record", str(tmp_path / "j.jsonl"))
    assert code == 2, err
    no_marker_anywhere(fleet)


async def test_values_reach_the_remote_shell_quoted(fleet, tmp_path):
    """A path var and a deploy template whose *values* are quoted: the
    command the host runs sees them as data, and nothing is injected."""
    inv = inventory_with(fleet, tmp_path, "agent-02", ansible_ssh_private_key_file="$(touch /tmp/pwned)")
    code, events, err = await console("--plan", str(plan_file(tmp_path)), "--inventory", str(inv), "--headless",
                                      "--output", "json", "--record", str(tmp_path / "k.jsonl"))
    assert code == 6, err  # the key file does not exist: refused, nothing touched
    no_marker_anywhere(fleet)
    plan = plan_file(tmp_path, **FAST, deploy={
        "commands": ["echo {host} {version} {slot} > /tmp/seen-values",
                     "/opt/agent/bin/install-release --slot {slot} {version}"],
        "check": "test -n {host}"})
    code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless",
                                      "--output", "json", "--record", str(tmp_path / "j.jsonl"))
    assert code == 0, err + json.dumps(events[-3:])
    assert fleet.ssh("agent-02", "cat /tmp/seen-values").stdout.strip() == "agent-02 2.0.0 main"
    no_marker_anywhere(fleet)


@pytest.mark.parametrize("noise,timeout,expected", [
    ("head -c 10000000 /dev/zero | tr '\\0' 'x'", "60s", 0),              # 10 MB of text
    ("head -c 5000000 /dev/urandom; head -c 100000 /dev/urandom >&2", "60s", 0),  # binary, non-UTF-8
    ("printf '\\377\\376\\000\\033[2J\\r\\n{{\"kind\":\"result\"}}\\n'", "60s", 0),  # control bytes, fake JSON
    # endless, for the new release only (the rollback reinstalls 1.0.0 with the same commands)
    ("[ {version} = 1.0.0 ] || yes", "3s", 3),
], ids=["10MB", "urandom", "control-bytes", "endless"])
async def test_hostile_remote_output_is_bounded(fleet, tmp_path, noise, timeout, expected):
    plan = plan_file(tmp_path, **FAST, deploy={
        "commands": [noise, "/opt/agent/bin/install-release --slot {slot} {version}"], "timeout": timeout})
    journal = tmp_path / "j.jsonl"
    code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless",
                                      "--output", "json", "--record", str(journal))
    assert code == expected, err + json.dumps(events[-3:])[:2000]
    assert events[-1]["kind"] == "result" and events[-1]["exit_code"] == expected
    # `console` parsed every stdout line unfiltered: each was one JSON object
    v = verify(journal)
    assert v.ok, v.message
    assert journal.stat().st_size < 6 * 1024 * 1024, journal.stat().st_size
    assert set(versions(fleet).values()) == {"2.0.0" if expected == 0 else "1.0.0"}


NEEDS_QUOTING = ["$(touch /tmp/pwned)", "`touch /tmp/pwned`", "x; touch /tmp/pwned", "a b\tc", "it's \"q\"",
                 "*", "$HOME", "a|b&c>/tmp/pwned", "line1\nline2", "-oProxyCommand=touch /tmp/pwned", "~root", ""]


async def test_template_values_that_need_quoting_reach_a_real_shell_verbatim(fleet, tmp_path):
    """Validation refuses such values before any host is touched (tests
    above); this proves the layer under it on a real host: deploy commands
    and `deploy.check` rendered by the product put each value into the
    remote shell as one literal word."""
    plan = load_plan(plan_file(tmp_path, deploy={
        "commands": ["printf '%s\\0' {version} {slot} {service} {host} > /tmp/seen-values"],
        "check": "printf '%s\\0' {host} {slot} {version} > /tmp/seen-check"}))

    def words(path: str) -> list[str]:
        raw = base64.b64decode(fleet.ssh("agent-02", f"base64 -w0 {path}", check=True).stdout)
        return raw.decode().split("\0")[:-1]

    for value in NEEDS_QUOTING:
        fleet.ssh("agent-02", "rm -f /tmp/seen-values /tmp/seen-check", check=True)
        command, = render_commands(plan, value, value, value)
        for cmd in (command, render_check(plan, plan.deploy.check, value, value, value)):
            proc = fleet.ssh("agent-02", cmd)
            assert proc.returncode == 0, (value, proc.stderr)
        assert words("/tmp/seen-values") == [value, value, "agent", value], value
        assert words("/tmp/seen-check") == [value, value, value], value
    no_marker_anywhere(fleet)


async def test_a_host_reported_version_is_validated_before_it_can_reach_a_template(fleet, tmp_path):
    """Issue 23 finding 4: an agent whose /health reports `1.0.0$(touch
    /tmp/pwned)` (its service account could write that) would be the
    rollback target rendered into root's deploy commands. The version is
    held to what --version may be: the instance is unhealthy, so preflight
    refuses (exit 6) naming it, and nothing is touched."""
    fleet.ssh("agent-02", "d=$(readlink -f /opt/agent/slots/main/current) && rm -rf /opt/agent/releases/evil && "
                          "cp -a $d /opt/agent/releases/evil && "
                          "printf '%s' '1.0.0$(touch /tmp/pwned)' > /opt/agent/releases/evil/VERSION && "
                          "ln -sfn /opt/agent/releases/evil /opt/agent/slots/main/current && "
                          "systemctl restart agent@main", check=True)
    before = managed_config(fleet)
    code, events, err = await console("--plan", str(plan_file(tmp_path, **FAST)), "--inventory",
                                      str(fleet.inventory_path), "--headless", "--output", "json",
                                      "--record", str(tmp_path / "j.jsonl"))
    assert code == 6, err + json.dumps(events[-3:])
    assert "agent-02" in events[-1]["message"] and "unhealthy" in events[-1]["message"]
    refused = [e for e in events if "is not a release version" in json.dumps(e)]
    assert refused, "the reported version was not named"
    assert "\\u001b" not in json.dumps(events)
    assert managed_config(fleet) == before
    no_marker_anywhere(fleet)


async def test_a_template_field_inside_quotes_is_refused_at_plan_load(fleet, tmp_path):
    """Issue 23 finding 4: `"{version}"` would put the shell-quoted value
    inside double quotes, where its quotes are literal and $(...) runs."""
    plan = plan_file(tmp_path, deploy={"commands": ['echo "{version}" > /tmp/seen-values']})
    code, _, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless",
                                 "--record", str(tmp_path / "j.jsonl"))
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and f"{plan}:" in err and "inside double quotes" in err
    assert not (tmp_path / "j.jsonl").exists()
    no_marker_anywhere(fleet)


async def test_a_named_secret_reaches_the_host_and_no_output(fleet, tmp_path, monkeypatch):
    """Issue 23 finding 5: a plan's named secret (from the environment) is
    substituted into the command the host runs, and masked by value in
    every record of it: the command, its echoed output, stdout, the journal."""
    token = "rc-secret-Zq9xv-7"
    monkeypatch.setenv("ROLLOUT_DEPLOY_TOKEN", token)
    plan = plan_file(tmp_path, **FAST, secrets=[{"name": "deploy_token", "env": "ROLLOUT_DEPLOY_TOKEN"}], deploy={
        "commands": ["printf '%s' {secrets[deploy_token]} > /tmp/seen-values; echo got {secrets[deploy_token]}; "
                     "echo {secrets[deploy_token]} >&2",
                     "/opt/agent/bin/install-release --slot {slot} {version}"]})
    journal = tmp_path / "j.jsonl"
    code, events, err = await console("--plan", str(plan), "--inventory", str(fleet.inventory_path), "--headless",
                                      "--output", "json", "--record", str(journal))
    assert code == 0, err + json.dumps(events[-3:])
    assert fleet.ssh("agent-02", "cat /tmp/seen-values").stdout == token
    everything = json.dumps(events) + err + journal.read_text()
    assert token not in everything
    assert any(e.get("kind") == "command" and "got ***" in json.dumps(e) for e in events)
    no_marker_anywhere(fleet)
