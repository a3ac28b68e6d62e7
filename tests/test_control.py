"""Operating a live run from other processes: status, commands with their
answers and exit codes, the sender journalled, attach, detach, stale
sockets and another uid refused. Real processes on the SIMULATED fleet."""
from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import stat
from pathlib import Path

import pytest

from console.control.attach import RemoteRun
from console.control.client import ControlError, request
from console.journal import read_journal, verify
from control_helpers import HeadlessRun, PtyConsole, cli, control_env, status, until
from simfleet import write_inventory, write_plan

PAUSE_STEP = {"sample_interval": "2s", "steps": [{"set_weight": 25}, {"pause": None}, {"set_weight": 100}]}


def paused_for_promotion(event) -> bool:
    return event["kind"] == "phase" and event["phase"] == "paused"


@pytest.fixture
def canary(tmp_path):
    inv = write_inventory(tmp_path / "inv.yaml", hosts=4)
    plan = write_plan(tmp_path / "plan.yaml", "canary", canary=PAUSE_STEP)
    return control_env(tmp_path), plan, inv


def socket_of(env) -> Path:
    return next((Path(env["XDG_RUNTIME_DIR"]) / "rollout-console").glob("*.sock"))


def operator_events(journal: Path) -> list:
    return [e for e in read_journal(journal).events if e.kind == "operator"]


def test_a_runtime_directory_too_deep_for_a_socket_is_passed_over(canary, tmp_path):
    """sun_path holds 108 bytes: with a deep XDG_RUNTIME_DIR a run could not
    listen there, so the run and `console status` both use the state
    directory instead, and find each other."""
    env, plan, inv = canary
    deep = Path(env["XDG_RUNTIME_DIR"]) / ("d" * 90)
    deep.mkdir(mode=0o700)
    state = Path(env["XDG_RUNTIME_DIR"]) / "s"
    env = {**env, "XDG_RUNTIME_DIR": str(deep), "XDG_STATE_HOME": str(state)}
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        assert list((state / "rollout-console" / "control").glob("*.sock"))
        assert not (deep / "rollout-console").exists()
        assert [s["pid"] for s in status(env)["live"]] == [run.proc.pid]
    finally:
        run.kill()


def test_status_and_commands_from_another_shell(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        sock = socket_of(env)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600 and stat.S_IMODE(sock.parent.stat().st_mode) == 0o700
        live = status(env)["live"]
        assert len(live) == 1
        s = live[0]
        assert (s["pid"], s["strategy"], s["phase"], s["version"], s["old_version"]) == (
            run.proc.pid, "canary", "paused", "2.0.0", "1.0.0")
        assert s["step"]["index"] == 2 and s["weights"] == {"canary": 25.0, "stable": 75.0}
        # the run's status (strategies/status.py): a pause step has no judge's window open, nothing is out
        assert (s["step"]["total"], s["window"], s["out_of_nginx"], s["left_out"], s["reason"]) == (
            3, None, [], [], None)
        assert len(s["instances"]) == 4 and all(i["in_nginx"] and i["excluded"] is None
                                                for i in s["instances"].values()), s["instances"]
        text = cli(env, "status", s["run_id"])
        assert text.returncode == 0 and f"pid {run.proc.pid}" in text.stdout and "phase paused" in text.stdout
        for name in (s["run_id"], str(plan), s["journal"], "agent"):  # found by id, plan, journal, upstream
            assert status(env, name)["live"][0]["run_id"] == s["run_id"]

        # a manual gate: going on from it is a promotion, so pause and resume point there
        assert s["awaiting_promotion"] is True
        for verb in ("pause", "resume"):
            refused = cli(env, verb)
            assert refused.returncode == 8 and f"refused: {verb} (paused awaiting promotion: use promote" \
                in refused.stdout, refused.stdout
        unconfirmed = cli(env, "rollback")  # no terminal to ask: refuse, send nothing
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        declined = cli(env, "abort", input="n\n")
        assert declined.returncode == 2  # stdin is a pipe, not a terminal: the same refusal
        promoted = cli(env, "promote")
        assert promoted.returncode == 0 and promoted.stdout.startswith("accepted: promote"), promoted.stdout
        assert run.finish() == 0  # promoted: not exit 7
    finally:
        run.kill()
    assert run.events[-1]["outcome"] == "succeeded"
    journal = Path(s["journal"])
    assert verify(journal).ok
    ops = [(o.command, o.accepted, o.source, o.sender.get("uid"), o.sender.get("user")) for o in operator_events(journal)]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert ops == [("pause", False, f"socket:{me}", os.getuid(), me), ("resume", False, f"socket:{me}", os.getuid(), me),
                   ("promote", True, f"socket:{me}", os.getuid(), me)]
    assert not list(Path(env["XDG_RUNTIME_DIR"]).glob("rollout-console/*.sock"))
    ended = status(env, s["run_id"])["ended"]
    assert ended[0]["outcome"] == "succeeded" and ended[0]["exit_code"] == 0 and ended[0]["reason"] == "completed"
    # one record, two sources: the ended run's status is what replaying its journal rebuilds
    replayed = json.loads(cli(env, "replay", s["journal"], "--status", "--output", "json").stdout)
    same = ("phase", "phase_reason", "step", "window", "out_of_nginx", "left_out", "outcome", "reason", "instances",
            "weights", "gate", "applies", "strategy", "service", "version", "old_version", "simulated")
    assert {k: replayed[k] for k in same} == {k: ended[0][k] for k in same}
    assert {i["version"] for i in replayed["instances"].values()} == {"2.0.0"}
    gone = cli(env, "pause", s["run_id"])
    assert gone.returncode == 9 and "no live run" in gone.stderr


def test_wait_for_promotion_then_rollback(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        back = cli(env, "rollback", "--yes")
        assert back.returncode == 0 and "accepted: rollback" in back.stdout
        assert run.finish() == 3
    finally:
        run.kill()
    assert run.events[-1]["outcome"] == "rolled_back"


def test_two_viewers_see_every_event_once_and_leaving_never_stops_the_run(canary):
    """Two attached clients, each rebuilt from the journal then following
    the stream, see exactly the journal's events; a viewer that goes away
    (here killed mid-stream) leaves the run going."""
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(lambda e: e["kind"] == "step_started", "the first step")
        sock = socket_of(env)

        async def watch():
            viewers = [RemoteRun(sock), RemoteRun(sock)]
            seen = [await v.connect() for v in viewers]
            quitter = RemoteRun(sock)
            await quitter.connect()
            quitter._writer.transport.abort()  # a viewer that dies without a word
            loop = asyncio.get_running_loop()
            while (await loop.run_in_executor(None, request, sock, {"op": "status"}))["viewers"] != 2:
                await asyncio.sleep(0.05)  # polling the run's own answer, not standing in for it
            run_id = request(sock, {"op": "status"})["run_id"]
            followers = [asyncio.ensure_future(v.follow(seen[i].append)) for i, v in enumerate(viewers)]
            promote = await loop.run_in_executor(None, cli, env, "promote", run_id)
            assert promote.returncode == 0, promote.stdout + promote.stderr
            results = await asyncio.gather(*followers)
            return seen, results

        seen, results = asyncio.run(watch())
        assert run.finish() == 0
    finally:
        run.kill()
    path = Path(results[0]["journal"])
    expected = [e.to_dict() for e in read_journal(path).events]
    for events, result in zip(seen, results):
        assert [e.to_dict() for e in events] == expected
        assert result["exit_code"] == 0 and result["journal_hash"] == verify(path).final_hash


def test_stale_socket_after_sigkill_is_cleared_and_resume_still_works(canary, tmp_path):
    env, _plan, inv = canary
    plan = write_plan(tmp_path / "rolling.yaml", rolling={"batch": 1, "interval": "30s"})
    run = HeadlessRun(env, plan, inv)
    run.wait_for(lambda e: e["kind"] == "step_started", "the first step")
    sock = socket_of(env)
    journal = Path(status(env)["live"][0]["journal"])
    run.proc.send_signal(signal.SIGKILL)
    run.proc.wait()
    assert sock.exists()  # the killed run could not remove it
    listed = cli(env, "status")
    assert listed.returncode == 0 and "removed a stale control socket" in listed.stderr
    assert "no live run" in listed.stdout and not sock.exists()
    resumed = cli(env, "resume", str(journal), "--headless", "--time-scale", "100")
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr


def test_detach_runs_in_a_new_session_without_the_terminal(canary):
    env, plan, inv = canary
    started = cli(env, "--plan", str(plan), "--inventory", str(inv), "--time-scale", "20", "--detach",
                  "--wait-for-promotion")
    assert started.returncode == 0, started.stderr
    assert "detached: run" in started.stdout and "console attach" in started.stdout
    live = status(env)["live"][0]
    pid = live["pid"]
    try:
        assert os.getsid(pid) == pid  # a session of its own: no controlling terminal, no SIGHUP
        assert all(os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null" for fd in (0, 1, 2))
        until(lambda: status(env)["live"][0]["phase"] == "paused", "the pause step")
        first_pid = live["run_id"].rsplit("-", 1)[1]  # the id keeps the pid of the process that started it
        assert first_pid != str(pid) and f"(pid {pid})" in started.stdout
        for name in (first_pid, str(pid)):  # either pid finds the run
            assert status(env, name)["live"][0]["run_id"] == live["run_id"]
        assert cli(env, "promote", live["run_id"]).returncode == 0
        ended = until(lambda: status(env, live["run_id"])["ended"], "the detached run's result")
    finally:
        if Path(f"/proc/{pid}").exists() and not status(env)["ended"]:
            os.kill(pid, signal.SIGKILL)
    assert ended[0]["outcome"] == "succeeded" and ended[0]["exit_code"] == 0 and ended[0]["reason"] == "completed"
    assert verify(Path(live["journal"])).ok


def as_user(uid: int, gid: int, sock: Path, message: dict) -> str:
    """Send `message` to the socket from a forked child running as uid;
    returns the ControlError code it met ("" if it was answered)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = "crash"
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            request(sock, message)
            code = ""
        except ControlError as exc:
            code = f"{exc.code}:{exc}"
        finally:
            os.write(write_fd, code.encode())
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_another_uid_is_refused(canary, other_user):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        sock = socket_of(env)
        uid, gid = other_user.pw_uid, other_user.pw_gid
        # the 0700 directory and the 0600 socket keep it out...
        assert as_user(uid, gid, sock, {"op": "command", "command": "rollback"}).startswith("denied:")
        # ...and so does the peer check, with the permissions opened up
        for directory in (sock.parent.parent, sock.parent):
            os.chmod(directory, 0o755)
        os.chmod(sock, 0o666)
        answer = as_user(uid, gid, sock, {"op": "command", "command": "rollback"})
        assert answer.startswith("denied:") and f"uid {uid}" in answer and "may not control" in answer
        assert request(sock, {"op": "status"})["phase"] == "paused"  # the owner still may
        assert cli(env, "promote").returncode == 0
        assert run.finish() == 0  # the refused rollback never happened
    finally:
        run.kill()
    journal = Path(status(env)["ended"][0]["journal"])
    notices = [e.message for e in read_journal(journal).events if e.kind == "notice"]
    assert any(f"refused uid {uid}" in m for m in notices)
    assert [o.command for o in operator_events(journal)] == ["promote"]


def test_killing_an_attached_tui_leaves_the_run_going(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    viewer = None
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        viewer = PtyConsole(env, "attach")
        until(lambda: status(env)["live"][0]["viewers"] == 1, "the TUI attached")
        until(lambda: b"Promote" in viewer.output, "the attached TUI's footer")
        viewer.proc.kill()
        viewer.proc.wait()
        until(lambda: status(env)["live"][0]["viewers"] == 0, "the killed viewer dropped")
        assert run.proc.poll() is None and status(env)["live"][0]["phase"] == "paused"
        assert cli(env, "promote").returncode == 0
        assert run.finish() == 0
    finally:
        run.kill()
        if viewer is not None:
            viewer.close()


def test_d_in_the_tui_moves_the_run_to_the_background(canary):
    env, plan, inv = canary
    tui = PtyConsole(env, "--plan", str(plan), "--inventory", str(inv), "--time-scale", "20")
    pid = None
    try:
        live = until(lambda: status(env)["live"], "the TUI's run")[0]
        until(lambda: b"Detach" in tui.output, "the footer")
        tui.send(b"d")
        assert tui.proc.wait(30) == 0
        until(lambda: b"detached: run" in tui.output, "the detach notice")
        after = status(env)["live"][0]
        pid = after["pid"]
        assert after["run_id"] == live["run_id"] and pid != tui.proc.pid and os.getsid(pid) == pid
        tui.hang_up()  # the terminal goes; the run does not
        until(lambda: status(env)["live"][0]["phase"] == "paused", "the pause step")
        assert cli(env, "promote").returncode == 0
        ended = until(lambda: status(env, live["run_id"])["ended"], "the result")
        assert ended[0]["exit_code"] == 0 and verify(Path(live["journal"])).ok
    finally:
        tui.close()
        if pid and Path(f"/proc/{pid}").exists() and not status(env)["ended"]:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("policy", ["stop", "detach"])
def test_tui_hangup_stops_at_a_safe_point_or_goes_on(canary, policy):
    env, plan, inv = canary
    tui = PtyConsole(env, "--plan", str(plan), "--inventory", str(inv), "--time-scale", "20",
                     "--on-hangup", policy)
    try:
        live = until(lambda: status(env)["live"], "the TUI's run")[0]
        until(lambda: status(env)["live"][0]["step"]["index"] >= 1, "the first step")
        tui.hang_up()
        if policy == "stop":
            assert tui.proc.wait(60) == 5
        else:
            until(lambda: status(env)["live"][0]["phase"] == "paused", "the pause step")
            assert tui.proc.poll() is None  # the same process, going on without its terminal
            assert cli(env, "promote").returncode == 0
            assert tui.proc.wait(60) == 0
    finally:
        tui.close()
    journal = read_journal(Path(live["journal"]))
    assert verify(Path(live["journal"])).ok
    assert journal.close and journal.close.outcome == {"stop": "aborted", "detach": "succeeded"}[policy]
    sources = [e.source for e in journal.events if e.kind == "operator"]
    assert ("signal SIGHUP" in sources) == (policy == "stop")


def test_destructive_commands_ask_what_the_dialog_asks(canary):
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        declined = PtyConsole(env, "rollback")
        until(lambda: b"[y/N]" in declined.output, "the question")
        assert b"All traffic returns to stable (1.0.0); 1 canary instance(s) are reinstalled" in declined.output
        declined.send(b"n\r")
        assert declined.proc.wait(30) == 11
        until(lambda: b"not confirmed; nothing sent" in declined.output, "the answer")
        declined.close()
        confirmed = PtyConsole(env, "abort")
        until(lambda: b"[y/N]" in confirmed.output, "the question")
        assert b"The rollout stops at the next safe point" in confirmed.output
        confirmed.send(b"y\r")
        assert confirmed.proc.wait(30) == 0
        confirmed.close()
        assert run.finish() == 5
    finally:
        run.kill()
    journal = Path(status(env)["ended"][0]["journal"])
    assert [o.command for o in operator_events(journal)] == ["abort"]  # the declined rollback was never sent


def test_headless_hangup_detach_goes_on_and_stop_stops(canary, tmp_path):
    env, _plan, inv = canary
    plan = write_plan(tmp_path / "rolling.yaml", rolling={"batch": 1, "interval": "2s"})
    for policy, expected in (("detach", 0), ("stop", 5)):
        run = PtyConsole(env, "--plan", str(plan), "--inventory", str(inv), "--headless", "--time-scale", "5",
                         "--on-hangup", policy)
        try:
            until(lambda run=run: b"batch 1/" in run.output, "the first batch")
            run.hang_up()
            assert run.proc.wait(120) == expected, policy
        finally:
            run.close()
    ended = {s["outcome"] for s in status(env)["ended"]}
    assert ended == {"succeeded", "aborted"}
