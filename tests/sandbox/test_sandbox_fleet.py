"""The real sandbox fleet: systemd-nspawn hosts reached over SSH and HTTP."""
from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import yaml

from inventory.exposition import Selector

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module", autouse=True)
def _baseline(sandbox_fleet):
    """Start from the boot state even if an earlier module deployed something."""
    sandbox_fleet.reset()


def test_inventory_and_known_hosts(sandbox_fleet):
    inv = yaml.safe_load(sandbox_fleet.inventory_path.read_text())["all"]
    assert inv["vars"]["ansible_user"] == "root"
    assert inv["vars"]["ansible_ssh_private_key_file"] == str(sandbox_fleet.key)
    assert inv["vars"]["rollout_known_hosts"] == str(sandbox_fleet.known_hosts)
    agents = inv["children"]["agents"]["hosts"]
    assert {n: h["ansible_host"] for n, h in agents.items()} == sandbox_fleet.agents
    assert inv["children"]["lb"]["hosts"] == {"lb-01": {"ansible_host": sandbox_fleet.lb_ip}}
    lines = sandbox_fleet.known_hosts.read_text().splitlines()
    ips = [line.split()[0] for line in lines]
    keys = [line.split()[2] for line in lines]
    assert sorted(ips) == sorted([sandbox_fleet.lb_ip, *sandbox_fleet.agent_ips])
    assert all(line.split()[1] == "ssh-ed25519" for line in lines)
    assert len(set(keys)) == len(keys), "every host has its own host key"


def test_hosts_have_distinct_identity(sandbox_fleet):
    ids = {n: (sandbox_fleet.host_root(n) / "etc/machine-id").read_text().strip()
           for n in [sandbox_fleet.lb_name, *sandbox_fleet.agent_names]}
    assert len(set(ids.values())) == len(ids)
    out = sandbox_fleet.ssh("agent-02", "hostname; cat /etc/machine-id", check=True).stdout.split()
    assert out == ["agent-02", ids["agent-02"]]


def test_every_agent_active_and_healthy_over_ssh(sandbox_fleet):
    for name in sandbox_fleet.agent_names:
        proc = sandbox_fleet.ssh(name, "systemctl is-active agent@main", check=True)
        assert proc.stdout.strip() == "active"
        health = sandbox_fleet.ssh(
            name, "python3 -c 'import urllib.request as u;"
                  "print(u.urlopen(\"http://127.0.0.1:8080/health\").read().decode())'",
            check=True).stdout
        assert '"version": "1.0.0"' in health and '"status": "ok"' in health
        assert sandbox_fleet.health(name) == (200, {"status": "ok", "version": "1.0.0",
                                                    "slot": "main"})


def test_lb_proxies_to_all_agents(sandbox_fleet):
    seen = Counter()
    for _ in range(60):
        code, headers, body = sandbox_fleet.http_get(f"http://{sandbox_fleet.lb_ip}/work")
        assert code == 200
        assert headers["X-Agent-Version"] == "1.0.0"
        seen[body["host"]] += 1
    assert set(seen) == set(sandbox_fleet.agent_names), seen
    gen = sandbox_fleet.ssh(
        "lb-01", "python3 -c 'import urllib.request as u;"
                 "print(u.urlopen(\"http://127.0.0.1:8099/__rollout/agent/generation\").read().decode())'",
        check=True).stdout.strip()
    assert gen == "sandbox-initial"
    assert sandbox_fleet.exec_in("lb-01", ["nginx", "-t"]).returncode == 0


def test_nginx_masked_on_agents_and_sshd_key_only(sandbox_fleet):
    assert sandbox_fleet.ssh("agent-01", "systemctl is-enabled nginx").stdout.strip() == "masked"
    proc = sandbox_fleet.ssh("agent-01", "sshd -T | grep -Ei '^(permitrootlogin|passwordauthentication|usedns) '",
                             check=True)
    conf = dict(line.split() for line in proc.stdout.lower().splitlines())
    assert conf == {"permitrootlogin": "without-password", "passwordauthentication": "no",
                    "usedns": "no"}


def test_install_release_and_restart(sandbox_fleet):
    host = "agent-06"
    # versions private to this module: other modules ship their own catalog entries
    sandbox_fleet.write_release([host], "2.0.0-fleet", {})
    try:
        out = sandbox_fleet.ssh(host, "/opt/agent/bin/install-release 2.0.0-fleet && "
                                      "systemctl restart agent@main && "
                                      "readlink /opt/agent/slots/main/current /opt/agent/slots/main/previous",
                                check=True).stdout.split()
        assert out[-2:] == ["/opt/agent/releases/2.0.0-fleet", "/opt/agent/releases/1.0.0"]
        assert sandbox_fleet.health(host) == (200, {"status": "ok", "version": "2.0.0-fleet",
                                                    "slot": "main"})
        bad = sandbox_fleet.ssh(host, "/opt/agent/bin/install-release '../evil'")
        assert bad.returncode == 2
    finally:
        sandbox_fleet.reset_agents([host])
    assert sandbox_fleet.health(host)[1]["version"] == "1.0.0"


def test_start_fail_release_makes_restart_fail(sandbox_fleet):
    host = "agent-05"
    sandbox_fleet.write_release([host], "3.0.0-fleet-bad", {"start_fail": True})
    try:
        proc = sandbox_fleet.ssh(host, "/opt/agent/bin/install-release 3.0.0-fleet-bad && "
                                       "systemctl restart agent@main")
        assert proc.returncode != 0
        state = sandbox_fleet.ssh(host, "systemctl is-active agent@main").stdout.strip()
        assert state == "failed"
    finally:
        sandbox_fleet.reset_agents([host])
    assert sandbox_fleet.health(host)[0] == 200


def test_blue_green_slots_side_by_side(sandbox_fleet):
    host = "agent-03"
    sandbox_fleet.write_release([host], "2.1.0-fleet", {})
    try:
        sandbox_fleet.ssh(host, "/opt/agent/bin/install-release --slot green 2.1.0-fleet && "
                                "systemctl start agent@blue agent@green", check=True)
        assert sandbox_fleet.health(host, 8081)[1] == {"status": "ok", "version": "1.0.0",
                                                       "slot": "blue"}
        assert sandbox_fleet.health(host, 8082)[1] == {"status": "ok", "version": "2.1.0-fleet",
                                                       "slot": "green"}
    finally:
        sandbox_fleet.ssh(host, "/opt/agent/bin/install-release --slot green 1.0.0", check=True)
        sandbox_fleet.reset_agents([host])


def test_deploy_user_has_passwordless_sudo(sandbox_fleet):
    proc = sandbox_fleet.ssh("agent-01", "id -un; sudo -n id -u", user="deploy", check=True)
    assert proc.stdout.split() == ["deploy", "0"]


def test_agent_finishes_inflight_request_on_sigterm(sandbox_fleet):
    host = "agent-04"
    sandbox_fleet.write_release([host], "1.0.1-fleet-slow", {"latency_ms": 3000})
    try:
        sandbox_fleet.ssh(host, "/opt/agent/bin/install-release 1.0.1-fleet-slow && "
                                "systemctl restart agent@main", check=True)
        result = {}

        def slow_request():
            t0 = time.monotonic()
            result["resp"] = sandbox_fleet.http_get(f"http://{sandbox_fleet.ip(host)}:8080/slow")
            result["elapsed"] = time.monotonic() - t0

        t = threading.Thread(target=slow_request)
        t.start()
        deadline = time.monotonic() + 10  # wait for the request to be in flight, then stop the unit
        while (sandbox_fleet.metrics(host).value(Selector("agent_inflight_requests")) or 0) < 1:
            assert time.monotonic() < deadline, "the slow request never reached the agent"
            time.sleep(0.05)
        stop = sandbox_fleet.ssh(host, "systemctl stop agent@main && "
                                       "systemctl show -p Result -p ExecMainStatus agent@main")
        t.join(15)
        assert stop.returncode == 0, stop.stderr
        props = dict(word.split("=", 1) for word in stop.stdout.split())
        assert props == {"Result": "success", "ExecMainStatus": "0"}
        code, headers, body = result["resp"]
        assert code == 200 and body["version"] == "1.0.1-fleet-slow"
        assert result["elapsed"] >= 2.9
    finally:
        sandbox_fleet.reset_agents([host])


def test_stop_and_start_host(sandbox_fleet):
    host = "agent-02"
    sandbox_fleet.stop_host(host)
    try:
        st = {s["name"]: s for s in sandbox_fleet.status()}
        assert st[host]["running"] is False and st["agent-01"]["running"] is True
        assert sandbox_fleet.ssh(host, "true", timeout=20).returncode != 0
    finally:
        sandbox_fleet.start_host(host)
    # the host comes back with its state and its agent starts at boot
    deadline = time.monotonic() + 20
    while True:
        try:
            if sandbox_fleet.health(host)[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "agent did not come back after start_host"
        time.sleep(0.2)
    assert sandbox_fleet.ssh(host, "systemctl is-active agent@main", check=True).stdout.strip() == "active"



def test_a_started_host_is_ready_only_once_it_lets_users_in(sandbox_fleet):
    """sshd answers during boot while /run/nologin still refuses every user
    but root (ssh as deploy exits 255, silent: a CI rehearsal on a loaded
    machine). Readiness waits for that file to go; here it goes 0.5 s after
    the wait starts, and the deploy user gets in as soon as the wait returns."""
    import sandbox
    from sandbox import hosts

    host = dict(hosts._running_host("agent-01", sandbox_fleet.state_dir))
    sandbox.exec_in("agent-01", ["sh", "-c", "echo booting > /run/nologin"], state_dir=sandbox_fleet.state_dir,
                    check=True)
    assert sandbox_fleet.ssh("agent-01", "true", user="deploy").returncode == 255  # what the tests met
    remover = threading.Timer(0.5, sandbox.exec_in, ("agent-01", ["rm", "-f", "/run/nologin"]),
                              {"state_dir": sandbox_fleet.state_dir})
    remover.start()
    try:
        hosts._wait_logins(host)
        assert sandbox_fleet.ssh("agent-01", "id -un", user="deploy", check=True).stdout.strip() == "deploy"
    finally:
        remover.join()


def test_every_host_boots_in_a_cgroup_of_its_own_with_no_failed_unit(sandbox_fleet):
    """Containers that shared nspawn's `payload` cgroup raced each other's
    systemd at boot: systemd-user-sessions failed with 219/CGROUP on 1 of 3
    hosts booted side by side, and /run/nologin locked deploy out. Each
    container's init now runs in a cgroup of its own, and no unit failed."""
    from sandbox import hosts

    names = [*sandbox_fleet.agent_names, sandbox_fleet.lb_name]
    seen = {}
    for name in names:
        init = hosts._running_host(name, sandbox_fleet.state_dir)["init_pid"]
        with open(f"/proc/{init}/cgroup") as f:
            seen[name] = next(line.split(":", 2)[2].strip() for line in f if ":name=systemd:" in line)
        assert f"/{hosts.machine_name(name)}/payload/" in seen[name], seen[name]
        failed = sandbox_fleet.ssh(name, "systemctl --failed --no-legend --plain", check=True).stdout.strip()
        assert failed == "", f"{name}: {failed}"
    assert len(set(seen.values())) == len(names), seen


def test_up_is_idempotent(sandbox_fleet):
    """`up` on a fleet that is already up changes nothing: the same nspawn
    processes, and inside them the same agent and nginx processes (no
    container was rebooted, no unit restarted)."""
    import sandbox

    def processes() -> dict[str, object]:
        seen: dict[str, object] = {s["name"]: s["pid"] for s in sandbox_fleet.status()}
        for name in sandbox_fleet.agent_names:
            seen[f"{name} agent@main"] = sandbox_fleet.ssh(
                name, "systemctl show -p MainPID --value agent@main", check=True).stdout.strip()
        seen["lb-01 nginx"] = sandbox_fleet.ssh(
            sandbox_fleet.lb_name, "systemctl show -p MainPID --value nginx", check=True).stdout.strip()
        return seen

    before = processes()
    assert all(before.values()) and "0" not in before.values(), before
    assert sandbox.up(hosts=6, state_dir=sandbox_fleet.state_dir, log=lambda m: None) == \
        sandbox_fleet.inventory_path
    assert processes() == before
