"""The control socket against a misbehaving local client (issue 23,
finding 8; docs/threat-model.md, "other local users"): a request that never
comes is cut at the read timeout, connections are capped, a deeply nested
request gets an error reply and no traceback reaches the run's stderr, and
the SSH address a client's environment claims is journalled as a claim.
Real processes on the SIMULATED fleet."""
from __future__ import annotations

import json
import socket
from pathlib import Path

from console.control.protocol import MAX_CONNECTIONS
from console.journal import read_journal
from control_helpers import HeadlessRun, cli, status
from test_control import canary, paused_for_promotion, socket_of  # noqa: F401 - the fixture


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)  # a server that never answers fails the test instead of hanging it
    s.connect(str(path))
    return s


def reply(s: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return json.loads(data)


def test_hostile_clients_get_answers_not_tracebacks(canary):  # noqa: F811
    env, plan, inv = canary
    run = HeadlessRun(env, plan, inv, "--time-scale", "20", "--wait-for-promotion")
    idle: list[socket.socket] = []
    try:
        run.wait_for(paused_for_promotion, "the pause step")
        path = socket_of(env)
        idle = [connect(path) for _ in range(MAX_CONNECTIONS)]
        extra = connect(path)
        assert reply(extra)["code"] == "busy"  # the 65th: refused while 64 sit idle
        assert reply(idle[0])["code"] == "timeout"  # each idle one is cut at the read timeout
        for s in idle:
            s.close()
        deep = connect(path)
        deep.sendall(b"[" * 50_000 + b"\n")
        answer = reply(deep)
        assert answer["type"] == "error" and "nested too deeply" in answer["message"]
        claimed = cli({**env, "SSH_CLIENT": "203.0.113.9 4242 22"}, "pause")
        assert claimed.returncode == 8  # already paused: refused, and journalled
        assert status(env)["live"][0]["phase"] == "paused"  # the run is unharmed
        assert cli(env, "promote").returncode == 0
        assert run.finish() == 0
    finally:
        for s in idle:
            s.close()
        run.kill()
    assert "Traceback" not in run.proc.stderr.read()
    journal = Path(run.events[-1]["journal"])
    op = next(e for e in read_journal(journal).events if e.kind == "operator" and e.command == "pause")
    assert op.sender["ssh_client_claimed"] == "203.0.113.9" and "ssh_client" not in op.sender
    assert op.source.endswith("(claims ssh from 203.0.113.9)")
