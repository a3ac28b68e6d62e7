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
