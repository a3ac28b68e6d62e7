"""Secrets (issue 23, finding 5; docs/threat-model.md, "secrets"): named
secrets from the environment or a private file, substituted into commands
only as they run and masked by value in stdout, the journal and dry runs;
the pattern fallback catches the common unnamed forms."""
from __future__ import annotations

import os

import pytest

from console.redact import Redactor
from inventory.errors import InputError
from simfleet import write_inventory, write_plan
from strategies.plan import load_plan, render_commands
from test_journal_and_cli import run_cli

TOKEN = "glpat-Zq9-very-secret"


@pytest.mark.parametrize("text,leak", [
    ("DEPLOY_TOKEN=abc123zz /opt/deploy.sh", "abc123zz"),
    ("export AWS_SECRET_ACCESS_KEY=AKIAxyz", "AKIAxyz"),
    ("curl -u admin:hunter2 https://repo/x", "hunter2"),
    ("curl --user 'admin:hunter2' https://repo/x", "hunter2"),
    ("git clone https://bob:s3cr3tpw@git.example.com/r.git", "s3cr3tpw"),
    ("curl -H 'X-Api-Key: k3yk3y' https://x", "k3yk3y"),
    ("curl -H 'PRIVATE-TOKEN: glpat-abc' https://x", "glpat-abc"),
    ("curl -H 'Authorization: token ghp_abc' https://x", "ghp_abc"),
    ("curl -H 'Authorization: Bearer eyJhbGci' https://x", "eyJhbGci"),
    ("curl -H 'Proxy-Authorization: Basic Zm9vOmJhcg==' https://x", "Zm9vOmJhcg=="),
    ("curl -b 'Cookie: session=abcdef' https://x", "session=abcdef"),
])
def test_the_fallback_masks_common_secret_forms(text, leak):
    masked = Redactor().text(text)
    assert leak not in masked and "***" in masked


@pytest.mark.parametrize("text", ["install-release --slot main 2.0.0", "ssh git@github.com:org/repo.git",
                                  "systemctl restart agent@main.service", "https://example.com/a:b"])
def test_the_fallback_leaves_ordinary_commands_alone(text):
    assert Redactor().text(text) == text


def plan_with_secret(tmp_path, source: dict):
    return write_plan(tmp_path / "plan.yaml", secrets=[{"name": "deploy_token", **source}], deploy={
        "commands": ["/opt/agent/bin/install-release {version} --auth {secrets[deploy_token]}"]})


def test_a_named_secret_from_the_environment_runs_masked_everywhere(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=2)
    plan = plan_with_secret(tmp_path, {"env": "ROLLOUT_TEST_TOKEN"})
    journal = tmp_path / "j.jsonl"
    env = {"ROLLOUT_TEST_TOKEN": TOKEN}
    os.environ.update(env)
    try:
        proc = run_cli("--plan", str(plan), "--inventory", str(inv), "--headless", "--output", "json",
                       "--time-scale", "100", "--record", str(journal))
        dry = run_cli("--plan", str(plan), "--inventory", str(inv), "--dry-run")
        loaded = load_plan(plan)
    finally:
        os.environ.pop("ROLLOUT_TEST_TOKEN")
    assert proc.returncode == 0, proc.stderr
    everything = proc.stdout + proc.stderr + journal.read_text() + dry.stdout
    assert TOKEN not in everything
    assert "--auth ***" in proc.stdout and "--auth ***" in dry.stdout
    # what runs on the host carries the value, quoted
    assert render_commands(loaded, "2.0.0", "main", "h", reveal=True)[0].endswith(f"--auth {TOKEN}")


def test_a_named_secret_from_a_file_must_be_private(tmp_path):
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    os.chmod(secret, 0o644)
    plan = plan_with_secret(tmp_path, {"file": str(secret)})
    with pytest.raises(InputError, match=rf"{plan}:\d+: secrets\[0\].*readable by its owner only"):
        load_plan(plan)
    os.chmod(secret, 0o600)
    assert load_plan(plan).named_secret_values() == [TOKEN]


@pytest.mark.parametrize("plan_args,message", [
    ({"secrets": [{"name": "t", "env": "ROLLOUT_SURELY_UNSET"}], "deploy": {"commands": ["x {secrets[t]}"]}},
     "environment variable ROLLOUT_SURELY_UNSET is not set"),
    ({"deploy": {"commands": ["x {secrets[t]}"]}}, "names no secret"),
    ({"deploy": {"commands": ["x {secrets}"]}}, "takes a name"),
    ({"secrets": [{"name": "t", "env": "A", "file": "/x"}]}, "exactly one of"),
])
def test_bad_secret_references_are_refused_at_load(tmp_path, plan_args, message):
    with pytest.raises(InputError, match=message):
        load_plan(write_plan(tmp_path / "plan.yaml", **plan_args))
