"""SshFleet / SshPool against the real sandbox fleet (no mocks of SSH,
systemd or nginx). Run: pytest -m sandbox tests/sandbox/test_sshfleet.py -s
(numbers are printed with -s)."""
from __future__ import annotations

import asyncio
import shlex
import statistics
import time

import asyncssh
import httpx
import pytest

from inventory.driver import CommandRecord, DriverError, HostKeyError, PoolStats, UnitStatus
from inventory.exposition import Selector
from inventory.model import Host, Instance
from inventory.nginx_config import Backend, LbState, parse_generation
from inventory.ssh import SshPool
from inventory.sshfleet import LB_CHANGED, SshFleet

pytestmark = pytest.mark.sandbox

CONF = "/etc/nginx/conf.d/rollout-agent.conf"
AGENT_PORT = 8080


def host(fleet, name: str, *, user: str = "root", become: bool = False,
         known_hosts: str | None = None) -> Host:
    return Host(name=name, address=fleet.ip(name), user=user, key_file=str(fleet.key),
                become=become,
                vars={"rollout_known_hosts": known_hosts or str(fleet.known_hosts)})


def inst(fleet, name: str) -> Instance:
    return Instance(host=host(fleet, name), slot="main", unit="agent@main.service", port=AGENT_PORT)


def new_fleet() -> SshFleet:
    return SshFleet(nginx_config_path=CONF, upstream="agent", marker_port=8099)


def state(fleet, names, generation: str) -> LbState:
    return LbState(upstream="agent",
                   pools={"stable": tuple(Backend(fleet.ip(n), AGENT_PORT) for n in names)},
                   default_pool="stable", generation=generation,
                   access_log="/var/log/nginx/rollout-agent.log", marker_port=8099)


def real_key_line(fleet, ip: str) -> str:
    for line in fleet.known_hosts.read_text().splitlines():
        if line.split()[0] == ip:
            return line
    raise AssertionError(f"no known_hosts line for {ip}")


def real_fingerprint(fleet, ip: str) -> str:
    _, alg, blob = real_key_line(fleet, ip).split()[:3]
    return asyncssh.import_public_key(f"{alg} {blob}").get_fingerprint("sha256")


async def through_lb(fleet, n: int, headers: dict | None = None) -> list[dict]:
    out = []
    async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
        for _ in range(n):
            r = await c.get(f"http://{fleet.lb_ip}/work", headers=headers)
            assert r.status_code == 200, r.text
            out.append(r.json())
    return out


async def logged(f, pool: str, n: int, timeout: float = 10.0) -> tuple[PoolStats, set[str]]:
    """Read the LB's traffic windows until `n` requests of `pool` are in
    (merged), with every backend the windows saw."""
    stats, backends = PoolStats(), set()
    deadline = time.monotonic() + timeout
    while stats.requests < n:
        assert time.monotonic() < deadline, f"only {stats.requests} of {n} {pool} requests logged in {timeout:g}s"
        window = await f.traffic()
        if pool in window:
            stats.merge(window[pool])
        backends |= set(f.backends_seen)
        await asyncio.sleep(0.05)  # poll interval, not a guess at when the log is written
    return stats, backends


# -- SshPool --------------------------------------------------------------


async def test_run_reports_exit_status_duration_and_reuses_connection(sandbox_fleet):
    records: list[CommandRecord] = []
    pool = SshPool(listener=records.append)
    h = host(sandbox_fleet, "agent-01")
    try:
        t0 = time.monotonic()
        rec = await pool.run(h, "echo hello; echo oops >&2; printf 'a\\000b\\001c\\n'; exit 3", 10)
        first = time.monotonic() - t0
        assert rec.exit_status == 3 and not rec.ok
        assert rec.stdout == "hello\nabc"
        assert rec.stderr == "oops"
        assert 0 < rec.duration < 10
        lat = []
        for _ in range(30):
            t = time.monotonic()
            r = await pool.run(h, "true", 10)
            lat.append(time.monotonic() - t)
            assert r.ok
        assert len(pool._entries) == 1  # one connection carried all of it
        # concurrent commands beyond MaxSessions (10) are queued, not refused
        many = await asyncio.gather(*(pool.run(h, f"echo {i}", 10) for i in range(24)))
        assert [r.stdout for r in many] == [str(i) for i in range(24)]
        # a remote timeout kills the command (coreutils timeout -> 124)
        rec = await pool.run(h, "sleep 30", 1)
        assert rec.exit_status == 124 and rec.duration < 8
        # quoting: values reach the remote shell untouched
        weird = "it's $HOME; `id` \"x\""
        rec = await pool.run(h, f"printf %s {shlex.quote(weird)}", 10)
        assert rec.stdout == weird
        # stdin
        rec = await pool.run(h, "wc -c", 10, input="12345")
        assert rec.stdout == "5"
        print(f"\n[ssh] connect+first command {first * 1000:.1f} ms "
              f"(handshake {pool.connect_times[0] * 1000:.1f} ms); reused-connection command "
              f"median {statistics.median(lat) * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms; "
              f"24 concurrent commands: {pool.channel_retries} channel opens retried")
        assert len(records) == 1 + 30 + 24 + 3
        assert records[0].command.startswith("echo hello")
    finally:
        await pool.close()


async def test_redial_after_connection_lost(sandbox_fleet):
    pool = SshPool()
    h = host(sandbox_fleet, "agent-02")
    try:
        assert (await pool.run(h, "true", 10)).ok
        conn = pool._entries[h.name].conn
        conn.abort()
        await asyncio.wait_for(conn.wait_closed(), 10)  # gone, as a dropped link leaves it
        assert (await pool.run(h, "echo back", 10)).stdout == "back"
    finally:
        await pool.close()


async def test_sudo_n_with_become_for_deploy_user(sandbox_fleet):
    pool = SshPool()
    try:
        plain = await pool.run(host(sandbox_fleet, "agent-01", user="deploy"), "id -un", 10)
        assert plain.stdout == "deploy"
        root = await pool.run(host(sandbox_fleet, "agent-01", user="deploy", become=True),
                              "id -un; systemctl is-active agent@main", 10)
        assert root.ok, root.stderr
        assert root.stdout.splitlines() == ["root", "active"]
    finally:
        await pool.close()


async def test_changed_host_key_is_refused_with_fingerprint(sandbox_fleet, tmp_path):
    ip = sandbox_fleet.ip("agent-03")
    wrong = asyncssh.generate_private_key("ssh-ed25519")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"{ip} {wrong.export_public_key('openssh').decode().split()[0]} "
                  f"{wrong.export_public_key('openssh').decode().split()[1]}\n")
    before = kh.read_text()
    fp = real_fingerprint(sandbox_fleet, ip)
    for accept in (False, True):  # TOFU never overrides an existing entry
        pool = SshPool(accept_new_host_keys=accept)
        try:
            with pytest.raises(HostKeyError) as ei:
                await pool.run(host(sandbox_fleet, "agent-03", known_hosts=str(kh)), "true", 10)
        finally:
            await pool.close()
        msg = str(ei.value)
        assert "\n" not in msg
        assert "agent-03" in msg and fp in msg and "changed" in msg
    print(f"\n[ssh] {msg}")
    assert kh.read_text() == before


async def test_unknown_host_refused_by_default_and_trusted_on_first_use(sandbox_fleet, tmp_path):
    ip = sandbox_fleet.ip("agent-04")
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    h = host(sandbox_fleet, "agent-04", known_hosts=str(kh))
    fp = real_fingerprint(sandbox_fleet, ip)
    pool = SshPool()
    try:
        with pytest.raises(HostKeyError) as ei:
            await pool.run(h, "true", 10)
        assert fp in str(ei.value) and "unknown" in str(ei.value)
    finally:
        await pool.close()
    assert kh.read_text() == ""

    pool = SshPool(accept_new_host_keys=True)
    try:
        assert (await pool.run(h, "true", 10)).ok
    finally:
        await pool.close()
    lines = kh.read_text().splitlines()
    assert len(lines) == 1 and lines[0].split()[0] == ip
    assert lines[0].split()[1:3] == real_key_line(sandbox_fleet, ip).split()[1:3]

    # the recorded key is now trusted without TOFU
    pool = SshPool()
    try:
        assert (await pool.run(h, "true", 10)).ok
    finally:
        await pool.close()


# -- SshFleet: nginx ---------------------------------------------------------


@pytest.fixture
async def lb_fleet(sandbox_fleet):
    """An open SshFleet; puts the LB's managed file back afterwards."""
    f = new_fleet()
    agents = [host(sandbox_fleet, n) for n in sandbox_fleet.agent_names]
    await f.open(agents, [host(sandbox_fleet, sandbox_fleet.lb_name)])
    original = await f.lb_read()
    assert original[sandbox_fleet.lb_name], "sandbox LB has no managed file"
    yield f
    await f.lb_restore(original)
    await f.close()


async def test_lb_apply_removes_backend_and_marker_shows_generation(sandbox_fleet, lb_fleet):
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    names = sandbox_fleet.agent_names
    gone = names[-1]
    durations = []
    for gen, backends in (("t-all-1", names), ("t-drop-2", names[:-1])):
        st = state(sandbox_fleet, backends, gen)
        # a second pool only this test's requests are forced into (X-Canary),
        # so traffic from other sessions sharing the sandbox does not count
        st = st.with_pools(probe=st.pools["stable"])
        t0 = time.monotonic()
        await f.lb_apply(st)
        durations.append(time.monotonic() - t0)
        # nginx keeps the old workers accepting ~100 ms after the new ones
        # start; lb_apply returns only once they stopped, so every fresh
        # connection from now on meets the new config
        answers = await asyncio.gather(*(f.marker(lb) for _ in range(12)))
        assert set(answers) == {gen}, answers
    text = (await f.lb_read())[sandbox_fleet.lb_name]
    assert parse_generation(text) == "t-drop-2"
    assert f"{sandbox_fleet.ip(gone)}:" not in text

    await f.traffic()  # start a fresh window
    answers = await through_lb(sandbox_fleet, 60, {"X-Canary": "probe"})
    hosts_seen = {a["host"] for a in answers}
    assert gone not in hosts_seen
    assert len(hosts_seen) >= 3
    probe, backends = await logged(f, "probe", 60)  # nginx writes each log line after its response
    assert probe.requests == 60
    assert probe.errors == 0 and probe.retried == 0
    assert len(probe.latencies) == 60
    assert f"{sandbox_fleet.ip(gone)}:{AGENT_PORT}" not in backends
    assert (await f.traffic()).get("probe") is None  # the window moved on
    print(f"\n[nginx] lb_apply (write, nginx -t, reload, verified marker): "
          f"{', '.join(f'{d * 1000:.0f} ms' for d in durations)}")


async def test_a_drain_waits_for_the_workers_of_every_reload_that_still_hold_a_request(sandbox_fleet, lb_fleet):
    """A retired nginx worker forwards the requests it holds under the config
    it had (soak seed 9 run 274): lb_drained waits for it, even when a later
    reload came between (seed 12 run 12: a resume's two changes 0.4 s apart,
    and the first one's workers sent 92 requests to units already stopped)."""
    f = lb_fleet
    names = sandbox_fleet.agent_names
    await f.lb_apply(state(sandbox_fleet, names, "t-hold-1"))
    reader, writer = await asyncio.open_connection(sandbox_fleet.lb_ip, 80)
    try:  # a request whose body is still coming: a worker of t-hold-1 holds it
        writer.write(b"POST /v1/chat HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\nConnection: close\r\n\r\nx")
        await writer.drain()
        await f.lb_apply(state(sandbox_fleet, names[:-1], "t-hold-2"))  # retires t-hold-1's workers
        await f.lb_apply(state(sandbox_fleet, names, "t-hold-3"))  # and t-hold-2's, which hold nothing
        assert await f.lb_drained(0.5) is False
        writer.write(b"y")  # the request completes: its worker has nothing left and exits
        await writer.drain()
        assert (await asyncio.wait_for(reader.read(), 10)).startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    assert await f.lb_drained(10) is True


async def test_config_rejected_by_nginx_t_leaves_old_file_serving(sandbox_fleet, lb_fleet):
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-good-1"))
    before = await f.lb_read()

    bad = LbState(upstream="agent", pools={"stable": (Backend("no-such-host.invalid", 8080),)},
                  default_pool="stable", generation="t-bad-2")
    with pytest.raises(DriverError) as ei:
        await f.lb_apply(bad)
    assert ei.value.op == "nginx -t"
    assert "no-such-host.invalid" in str(ei.value) and "\n" not in str(ei.value)

    with pytest.raises(DriverError) as ei:
        await f.lb_restore({sandbox_fleet.lb_name: "this is not nginx config;\n"})
    assert "[emerg]" in str(ei.value)

    assert await f.lb_read() == before
    assert await f.marker(lb) == "t-good-1"
    await through_lb(sandbox_fleet, 10)
    leftovers = await f.pool.run(lb, "ls -a /etc/nginx/conf.d; nginx -t", 10)
    assert leftovers.ok and "rollout-new" not in leftovers.stdout and "rollout-bak" not in leftovers.stdout


async def test_reload_that_does_not_take_effect_is_detected_and_rolled_back(sandbox_fleet, lb_fleet):
    """nginx -t passes and reload exits 0, but the master cannot bind the
    marker port (sshd holds 127.0.0.1:22) and keeps the old config: only the
    marker shows it. The driver must notice, restore and reload."""
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-good-3"))
    before = await f.lb_read()
    f.reload_timeout = 2.0
    bad = LbState(upstream="agent", pools=state(sandbox_fleet, sandbox_fleet.agent_names, "x").pools,
                  default_pool="stable", generation="t-unbindable-4", marker_port=22)
    t0 = time.monotonic()
    with pytest.raises(DriverError) as ei:
        await f.lb_apply(bad)
    print(f"\n[nginx] unapplied reload detected and rolled back in {time.monotonic() - t0:.1f} s: "
          f"{ei.value}")
    assert ei.value.op == "reload" and "t-unbindable-4" in str(ei.value)
    assert await f.lb_read() == before
    assert await f.marker(lb) == "t-good-3"
    await through_lb(sandbox_fleet, 10)


async def test_a_managed_file_someone_else_changed_is_left_as_found(sandbox_fleet, lb_fleet):
    """Someone else edits the managed file between two of the console's
    changes, first a valid edit they reload, then a broken one left on
    disk: the next change and a restore are refused, naming the file, and
    neither writes nor reloads; nginx keeps serving (issue 26's soak, seed 9
    run 30: the console wrote its own text over the edit, unsaid)."""
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-mine-1"))
    mine = (await f.lb_read())[sandbox_fleet.lb_name]
    for edit, reload in (("# someone else's edit", "nginx -t -q && nginx -s reload"), ("bogus_directive on;", "true")):
        assert (await f.pool.run(lb, f"echo {shlex.quote(edit)} >> {CONF} && {reload}", 30)).ok
        found = (await f.pool.run(lb, f"cat {CONF}", 10)).stdout
        for change in (lambda: f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names[:-1], "t-mine-2")),
                       lambda: f.lb_restore({sandbox_fleet.lb_name: mine.replace("t-mine-1", "t-mine-3")})):
            with pytest.raises(DriverError) as ei:
                await change()
            assert ei.value.op == LB_CHANGED and CONF in str(ei.value) and "\n" not in str(ei.value)
            assert (await f.pool.run(lb, f"cat {CONF}", 10)).stdout == found
            assert await f.marker(lb) == "t-mine-1"
    await through_lb(sandbox_fleet, 10)
    assert (await f.pool.run(lb, f"printf %s {shlex.quote(mine)} > {CONF}", 10)).ok  # the other writer undoes it
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-mine-4"))  # and the console goes on
    assert await f.marker(lb) == "t-mine-4"


async def test_an_edit_made_while_the_console_changes_the_file_is_not_restored_over(sandbox_fleet, lb_fleet):
    """Someone else appends to the managed file after the console wrote its
    new text, while the console still verifies the reload (soak seed 15 run
    34: their line landed between the console's nginx -t and its reload,
    the reload failed on it, and the console put its backup back over their
    edit, unsaid). The reload here cannot take (the marker port is sshd's),
    so the console undoes its change: it finds the file is no longer its own
    text, puts nothing back, reloads nothing, and says so naming the file;
    its next change refuses too, until the other writer is done."""
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-edit-1"))
    mine = (await f.lb_read())[sandbox_fleet.lb_name]
    f.reload_timeout = 5.0
    bad = LbState(upstream="agent", pools=state(sandbox_fleet, sandbox_fleet.agent_names, "x").pools,
                  default_pool="stable", generation="t-edit-2", marker_port=22)
    change = asyncio.create_task(f.lb_apply(bad))
    while "t-edit-2" not in (await f.pool.run(lb, f"cat {CONF}", 10)).stdout:  # the console's text is in place
        assert not change.done(), change
    edit = "# someone else's edit, made during the console's change"
    assert (await f.pool.run(lb, f"echo {shlex.quote(edit)} >> {CONF}", 10)).ok
    with pytest.raises(DriverError) as ei:
        await change
    assert ei.value.op == LB_CHANGED and CONF in str(ei.value) and "\n" not in str(ei.value), ei.value
    found = (await f.pool.run(lb, f"cat {CONF}; ls -a /etc/nginx/conf.d", 10)).stdout
    assert edit in found and "t-edit-2" in found and "rollout-bak" not in found
    assert await f.marker(lb) == "t-edit-1"  # nginx still runs the console's last good change
    with pytest.raises(DriverError) as ei:
        await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names[:-1], "t-edit-3"))
    assert ei.value.op == LB_CHANGED
    await through_lb(sandbox_fleet, 10)
    assert (await f.pool.run(lb, f"printf %s {shlex.quote(mine)} > {CONF}", 10)).ok  # the other writer undoes it
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-edit-4"))  # and the console goes on
    assert await f.marker(lb) == "t-edit-4"


async def test_an_install_cut_off_by_a_vanished_console_leaves_the_managed_file_as_it_was(sandbox_fleet, lb_fleet):
    """The console killed mid-install (the harder soak, seed 9 run 75): its
    stdin ends early and its stdout is gone. The LB runs the very script an
    install sends, (1) fed only half the new text, (2) fed a whole text nginx
    rejects while writing into a pipe nobody reads: the managed file and the
    serving generation stay as they were, and no temp file is left. The cut
    falls before the marker's server block, so what arrived is itself a file
    `nginx -t` accepts: only the text's digest can tell it is not whole."""
    f, lb = lb_fleet, host(sandbox_fleet, sandbox_fleet.lb_name)
    await f.lb_apply(state(sandbox_fleet, sandbox_fleet.agent_names, "t-whole-1"))
    mine = (await f.lb_read())[sandbox_fleet.lb_name]
    new = mine.replace("t-whole-1", "t-cut-2")
    before = (await f.pool.run(lb, f"cat {CONF}", 10)).stdout
    # the console goes once the script has begun (its first line read), before the text has all come
    dead_stdout = "python3 -c " + shlex.quote(
        "import os, subprocess, sys\n"
        "r, w = os.pipe()\n"
        "p = subprocess.Popen(['sh', '-c', sys.argv[1]], stdin=subprocess.PIPE, stdout=w)\n"
        "os.close(w)\n"
        "os.read(r, 1)\n"
        "os.close(r)\n"
        "p.stdin.write(sys.stdin.buffer.read())\n"
        "p.stdin.close()\n"
        "sys.exit(p.wait())\n") + " "
    for fed, script, wrapper in ((new[: new.rindex("\nserver {") + 1], f.install_script(new, mine), "sh -c "),
                                 (new + "bogus_directive on;\n", f.install_script(new + "bogus_directive on;\n", mine),
                                  dead_stdout)):
        ran = await f.pool.run(lb, f"{wrapper}{shlex.quote(script)} 2>/dev/null", 30, input=fed)
        assert ran.exit_status != 0
        assert (await f.pool.run(lb, f"cat {CONF}", 10)).stdout == before
        assert (await f.pool.run(lb, "ls -A /etc/nginx/conf.d", 10)).stdout.split() == ["rollout-agent.conf"]
        assert await f.marker(lb) == "t-whole-1"
    await through_lb(sandbox_fleet, 10)


# -- SshFleet: units, health, metrics ------------------------------------------


async def unit_of(f: SshFleet, i: Instance) -> UnitStatus:
    return (await f.host_facts(i.host, [i], [])).units[i.unit]


async def test_restart_reports_new_version_and_failed_start_shows_journal(sandbox_fleet):
    f = new_fleet()
    a, b = inst(sandbox_fleet, "agent-05"), inst(sandbox_fleet, "agent-06")
    seen: list[CommandRecord] = []
    f.set_command_listener(seen.append)
    await f.open([a.host, b.host], [])
    try:
        h = await f.health(a, "/health", AGENT_PORT, 5)
        assert h.ok and h.version == "1.0.0"
        await f.run_commands(a, ["/opt/agent/bin/install-release --slot main "
                                 + shlex.quote("2.0.0")], 60)
        t0 = time.monotonic()
        await f.restart(a)
        restart_s = time.monotonic() - t0
        h = await f.health(a, "/health", AGENT_PORT, 5)
        assert h.ok and h.version == "2.0.0", h
        st = await unit_of(f, a)
        assert st.active and st.sub_state == "running"
        m = await f.instance_metrics(a, AGENT_PORT)
        assert m.version == "2.0.0" and m.inflight == 0
        assert m.series.value(Selector("agent_quality_score", {"version": "2.0.0", "slot": "main"})) == 0.97
        assert await f.inflight(a) == 0
        assert "agent" in await f.journal_tail(a, 5)
        assert any(r.command == "systemctl restart agent@main.service" and r.ok for r in seen)

        with pytest.raises(DriverError) as ei:
            await f.run_commands(a, ["/opt/agent/bin/install-release --bogus"], 30)
        assert ei.value.op == "deploy"

        sandbox_fleet.write_release(["agent-06"], "6.6.6", {"start_fail": True})
        await f.run_commands(b, ["/opt/agent/bin/install-release --slot main 6.6.6"], 60)
        with pytest.raises(DriverError) as ei:
            await f.restart(b)
        assert ei.value.op == "restart"
        print(f"\n[systemd] failed start: {ei.value}")
        assert "start_fail" in str(ei.value) and "\n" not in str(ei.value)
        assert not (await unit_of(f, b)).active
        sample = await f.health(b, "/health", AGENT_PORT, 2)
        assert not sample.ok and sample.detail  # connection refused: a sample, not an exception

        await f.stop(a)
        assert (await unit_of(f, a)).active_state in ("inactive", "failed")
        missing = Instance(a.host, "nope", "no-such-unit.service", 1)
        st = await unit_of(f, missing)
        assert st.load_state == "not-found" and not st.active
        # the checklist's one command per host: units, and free space per path
        facts = await f.host_facts(a.host, [a, missing], ["/", "/opt", "/no/such path"])
        assert set(facts.units) == {a.unit, "no-such-unit.service"} and not facts.unit_errors
        assert facts.free["/"] and facts.free["/"] > 2**20 and facts.free["/no/such path"] is None

        await f.restart(a)  # running again: its unit's own CPU is read, not the machine's
        assert await f.unit_cpu(a) == 0.0  # the first reading has nothing to compare with
        await asyncio.sleep(0.2)  # a measuring interval, not a wait for an event
        assert 0.0 <= await f.unit_cpu(a) <= 2.0  # cores, from the unit's cgroup
        with pytest.raises(DriverError):
            await f.unit_cpu(missing)  # no such unit: unknown, never "0 %"
        print(f"\n[systemd] restart of a Type=notify unit: {restart_s * 1000:.0f} ms")
    finally:
        await f.close()
        sandbox_fleet.reset_agents(["agent-05", "agent-06"])
