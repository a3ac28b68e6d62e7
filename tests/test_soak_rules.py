"""bench/soak.py's rule for client failures no console can prevent (pure:
the real-host soak itself is tests/sandbox/test_soak_real.py)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import soak  # noqa: E402


def request(t, status, version=None, error=""):
    return SimpleNamespace(t=t, status=status, version=version, error=error)


def test_only_timeouts_and_nginx_504s_after_a_host_vanished_are_set_apart():
    run = SimpleNamespace(fired=[{"fault": "link_cut", "t": 10.0}])
    lost = soak.in_flight_on_vanished_host
    assert lost(run, request(12.0, 0, error="ReadTimeout"))  # sent to it before: the client gave up
    assert not lost(run, request(30.0, 0, error="ReadTimeout"))  # long after: not in flight then
    assert lost(run, request(40.0, 504))  # nginx's last try went to the dead host
    assert not lost(run, request(9.0, 504))  # before the host vanished
    assert not lost(run, request(40.0, 504, version="2.0.0"))  # the agent's own 504
    assert not lost(run, request(40.0, 502))  # refused: a stopped or drained unit, the console's business
    quiet = SimpleNamespace(fired=[{"fault": "sshd_stop", "t": 10.0}])  # the host still serves
    assert not lost(quiet, request(40.0, 504)) and not lost(quiet, request(12.0, 0, error="ReadTimeout"))


def test_a_dead_routed_host_is_allowed_only_when_the_run_stopped_for_a_human_naming_it():
    held = "before batch 2/3: agent-03 unhealthy (not touched by this release); draining would leave 4 of 6"
    assert soak.left_for_a_human(7, "agent-03", held)  # seed 5 run 19: paused, named
    assert soak.left_for_a_human(4, "agent-03", "failed: ...; nginx still routes to agent-03, which do not answer")
    assert not soak.left_for_a_human(7, "agent-04", held)  # paused, but not naming it
    assert not soak.left_for_a_human(3, "agent-03", "rolled back in 2.0s: agent-03 ...")  # said safe
    assert not soak.left_for_a_human(0, "agent-03", "6 instance(s) now on 2.0.0 (agent-03)")
