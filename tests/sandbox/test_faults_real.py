"""The fault matrix on the real sandbox (sshd, systemd, nginx in
systemd-nspawn hosts), under steady client load through the LB. Each fault
is injected in the middle of a batch; each test asserts the end state
(versions over SSH, the managed nginx file, who is in nginx), the exit
code, and that the journal is complete (`console audit verify`). No mocks.

The console killed mid-batch (SIGKILL, then `console resume`) is covered by
tests/sandbox/test_resume_real.py; canary and blue-green faults are in
test_faults_strategies_real.py. The matrix is in the README ("Faults and guards").
"""
from __future__ import annotations

import asyncio
import json
import subprocess
import threading

import pytest

from fault_helpers import batch, in_nginx, journal_ok, restarting, resume_rollback, rollout
from inventory.nginx_workers import LIST_WORKERS, old_workers, wait_retired
from rollout_helpers import console, managed_config, plan_file, versions, wait_until

pytestmark = pytest.mark.sandbox

FAST = {"health": {"interval": "0.5s", "passes": 2, "deadline": "6s", "timeout": "1s"},
        "drain": {"timeout": "3s"}, "deploy": {"timeout": "15s"},
        "rolling": {"batch": 2, "interval": "1s"}}


def plan(tmp_path, **extra):
    return plan_file(tmp_path, **{**FAST, **extra})


# -- a host dies ---------------------------------------------------------------------

async def test_host_powered_off_mid_batch(fleet, tmp_path):
    before = managed_config(fleet)
    code, events, err = await rollout(fleet, tmp_path, plan(tmp_path), restarting("agent-03"),
                                      lambda: fleet.stop_host("agent-03"))
    assert code == 4, err + json.dumps(events[-3:])
    assert "agent-03" in events[-1]["message"]
    journal_ok(tmp_path / "j.jsonl")
    alive = [n for n in fleet.agent_names if n != "agent-03"]
    assert {n: fleet.health(n)[1].get("version") for n in alive} == {n: "1.0.0" for n in alive}
    assert in_nginx(fleet) == set(alive)  # the dead host stays out, everyone else is back
    fleet.start_host("agent-03")
    await resume_rollback(fleet, tmp_path)
    assert managed_config(fleet) == before
    journal_ok(tmp_path / "r.jsonl")


async def test_sshd_stopped_mid_batch(fleet, tmp_path):
    code, events, err = await rollout(fleet, tmp_path, plan(tmp_path), batch(2),
                                      lambda: fleet.exec_in("agent-04", ["systemctl", "stop", "ssh"]))
    # The console's established connection outlives sshd's listener (systemd
    # stops the listener, not the sessions it forked): the run completes.
    # Were the connection cut, the host would be treated as unreachable.
    assert code == 0, err + json.dumps(events[-3:])
    journal_ok(tmp_path / "j.jsonl")
    fleet.exec_in("agent-04", ["systemctl", "start", "ssh"])
    assert set(versions(fleet).values()) == {"2.0.0"}
    assert in_nginx(fleet) == set(fleet.agent_names)


async def test_network_cut_mid_command(fleet, tmp_path):
    def cut():
        fleet.exec_in("agent-03", ["ip", "link", "set", "host0", "down"])

    code, events, err = await rollout(fleet, tmp_path, plan(tmp_path), restarting("agent-03"), cut)
    fleet.exec_in("agent-03", ["ip", "link", "set", "host0", "up"])
    assert code == 4, err + json.dumps(events[-3:])
    journal_ok(tmp_path / "j.jsonl")
    assert "agent-03" not in in_nginx(fleet)
    await asyncio.to_thread(wait_until, lambda: fleet.ssh("agent-03", "true", timeout=10).returncode == 0,
                            "agent-03 reachable over SSH after the link came back")
    await resume_rollback(fleet, tmp_path)
    assert in_nginx(fleet) == set(fleet.agent_names)


# -- the release misbehaves -------------------------------------------------------

@pytest.mark.parametrize("behaviour", [{"start_fail": True}, {"start_delay": 10}], ids=["start-fail", "slower-than-deadline"])
async def test_release_fails_on_one_host(fleet, tmp_path, behaviour):
    fleet.write_release(None, "2.0.0", {})
    fleet.write_release(["agent-03"], "2.0.0", behaviour)
    before = managed_config(fleet)
    code, events, err = await rollout(fleet, tmp_path, plan(tmp_path), batch(2), lambda: None)
    assert code == 3, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"}
    assert managed_config(fleet) == before
    journal_ok(tmp_path / "j.jsonl")
    fleet.write_release(None, "2.0.0", {})


async def test_health_flaps(fleet, tmp_path):
    """A release whose /health flaps on agent-01 (ok 2 s, failing 2 s, ok
    ...): it passes its health check, is re-admitted, then fails while the
    gate after its batch watches; the run rolls back. A poller on this
    machine sees the flapping from the client side."""
    fleet.write_release(None, "2.0.0", {})
    fleet.write_release(["agent-01"], "2.0.0", {"health_flap": 2})
    seen: list[tuple[int, str | None]] = []  # agent-01's /health (code, version), changes only
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                code, _, body = fleet.http_get(f"http://{fleet.ip('agent-01')}:8080/health", timeout=2)
                now = (code, (body or {}).get("version"))
            except OSError:
                now = (0, None)
            if not seen or seen[-1] != now:
                seen.append(now)
            stop.wait(0.1)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        p = plan(tmp_path, rolling={"batch": 2, "interval": "6s"}, canary={"sample_interval": "1s"},
                 thresholds={"error_rate": "1%", "persistence": 1, "min_requests": 0, "health_pass_rate": "90%"})
        code, events, err = await rollout(fleet, tmp_path, p, batch(1), lambda: None)
    finally:
        stop.set()
        poller.join()
        fleet.write_release(None, "2.0.0", {})  # the next test's 2.0.0 is a good release again
    assert code == 3, err + json.dumps(events[-3:])
    fails = [e for e in events if e["kind"] == "gate" and e["verdict"] == "fail"]
    assert fails and fails[0]["name"].startswith("after batch 1") and \
        any(r.startswith("health_check_failed") for r in fails[0]["reasons"]), fails  # critical: at once
    flaps = [c for c, v in seen if v == "2.0.0"]
    assert flaps[:2] == [200, 503], seen  # healthy on 2.0.0 first, then failing: a flap, not a dead host
    health = [e["ok"] for e in events if e["kind"] == "health" and e["instance"].split("/")[0] == "agent-01"]
    assert True in health and health.index(False) > health.index(True), health
    journal_ok(tmp_path / "j.jsonl")
    assert set(versions(fleet).values()) == {"1.0.0"}
    assert in_nginx(fleet) == set(fleet.agent_names)


# -- nginx --------------------------------------------------------------------------

async def test_nginx_t_rejects_the_config_mid_run(fleet, tmp_path):
    site = "/etc/nginx/sites-enabled/agent"
    code, events, err = await rollout(
        fleet, tmp_path, plan(tmp_path), batch(2),
        lambda: fleet.ssh(fleet.lb_name, f"cp {site} /root/site.bak && echo 'bogus_directive;' >> {site}", check=True))
    assert code == 4, err + json.dumps(events[-3:])
    message = events[-1]["message"]
    assert "nginx -t" in message or "emerg" in message
    journal_ok(tmp_path / "j.jsonl")
    # With nginx refusing every change, instances drained for the batch cannot
    # be re-admitted: nginx keeps serving its last valid config, and the
    # result names exactly who is out of it.
    out = set(fleet.agent_names) - in_nginx(fleet)
    if out:
        assert message.endswith("out of nginx: " + ", ".join(sorted(out))), message
    else:
        assert message.endswith("every instance that served before is in nginx"), message
    fleet.ssh(fleet.lb_name, f"cp /root/site.bak {site} && nginx -t -q", check=True)
    await resume_rollback(fleet, tmp_path)
    assert in_nginx(fleet) == set(fleet.agent_names)


async def test_a_resume_nginx_still_refuses_names_what_the_run_left_out_of_nginx(fleet, tmp_path):
    """Soak seed 26 run 55: `nginx -t` breaks as the first batch restarts, so
    the run can neither re-admit it nor roll back (exit 4, naming the two out
    of nginx). Resumed before the site is fixed, every change of the resume
    is refused too, and its result said "every instance that served before
    is in nginx" with the two still out: a session that changes nothing reads
    what nginx routes to as it found it."""
    site = "/etc/nginx/sites-enabled/agent"
    code, events, err = await rollout(
        fleet, tmp_path, plan(tmp_path), restarting("agent-01"),
        lambda: fleet.ssh(fleet.lb_name, f"cp {site} /root/site.bak && echo 'bogus_directive;' >> {site}", check=True))
    assert code == 4, err + json.dumps(events[-3:])
    out = sorted(set(fleet.agent_names) - in_nginx(fleet))
    assert out, "the first batch was drained before nginx broke"
    assert events[-1]["message"].endswith("; out of nginx: " + ", ".join(out)), events[-1]["message"]
    code, events, err = await console("resume", str(tmp_path / "j.jsonl"), "--headless", "--output", "json",
                                      "--record", str(tmp_path / "refused.jsonl"))
    assert code == 4, err + json.dumps(events[-3:])
    assert sorted(set(fleet.agent_names) - in_nginx(fleet)) == out
    assert events[-1]["message"].endswith("; out of nginx: " + ", ".join(out)), events[-1]["message"]
    fleet.ssh(fleet.lb_name, f"cp /root/site.bak {site} && nginx -t -q", check=True)
    code, events, err = await console("resume", str(tmp_path / "refused.jsonl"), "--rollback", "--headless",
                                      "--output", "json", "--record", str(tmp_path / "r.jsonl"))
    assert code == 3, err + json.dumps(events[-3:])
    assert set(versions(fleet).values()) == {"1.0.0"} and in_nginx(fleet) == set(fleet.agent_names)


async def test_reload_exits_0_but_does_not_take(fleet, tmp_path):
    """A stopped nginx master: `nginx -s reload` exits 0 (the signal is
    queued), workers keep serving the old config. The marker check sees it."""
    stopped_workers = []
    try:
        code, events, err = await rollout(
            fleet, tmp_path, plan(tmp_path), batch(2),
            lambda: fleet.ssh(fleet.lb_name, "kill -STOP $(cat /run/nginx.pid)", check=True))
        stopped_workers = old_workers(fleet.ssh(fleet.lb_name, LIST_WORKERS).stdout)
    finally:
        fleet.ssh(fleet.lb_name, "kill -CONT $(cat /run/nginx.pid)", check=True)
    assert stopped_workers
    assert code == 4, err + json.dumps(events[-3:])
    assert "marker" in events[-1]["message"]
    journal_ok(tmp_path / "j.jsonl")
    # the master, running again, handles the queued reload: its old workers retire
    fleet.ssh(fleet.lb_name, wait_retired(stopped_workers, 30), check=True)
    await resume_rollback(fleet, tmp_path)
    assert in_nginx(fleet) == set(fleet.agent_names)


async def test_lb_unreachable_then_resume_rollback(fleet, tmp_path):
    before = managed_config(fleet)
    code, events, err = await rollout(fleet, tmp_path, plan(tmp_path), batch(2),
                                      lambda: fleet.stop_host(fleet.lb_name), load_ok=False)
    assert code == 4, err + json.dumps(events[-3:])
    assert "lb-01" in events[-1]["message"]
    journal_ok(tmp_path / "j.jsonl")
    fleet.start_host(fleet.lb_name)
    await resume_rollback(fleet, tmp_path)
    assert managed_config(fleet) == before
    journal_ok(tmp_path / "r.jsonl")


# -- the controller -----------------------------------------------------------------

async def test_journal_disk_full(fleet, tmp_path):
    jd = tmp_path / "jd"
    jd.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(jd)], check=True)
    try:
        code, events, err = await rollout(fleet, tmp_path, plan(tmp_path, rolling={"batch": 1, "interval": "1s"}),
                                          batch(1), lambda: None, record=jd / "j.jsonl")
        assert code == 4, err + json.dumps(events[-3:])
        assert "cannot write the journal" in events[-1]["message"]
        journal_ok(jd / "j.jsonl")
        close = json.loads((jd / "j.jsonl").read_bytes().splitlines()[-1])
        assert close["exit_code"] == 4 and close["lost_events"] >= 1
        # stopped at a safe point: every instance serves, each on one version
        assert in_nginx(fleet) == set(fleet.agent_names)
        assert set(versions(fleet).values()) <= {"1.0.0", "2.0.0"}
    finally:
        subprocess.run(["umount", str(jd)], check=False)
