"""inventory/host_facts.py: the checklist's one command per host, run by a
real sh here with stand-ins for systemctl and df on PATH (the real-host
tests run it against systemd: tests/sandbox/test_sshfleet.py)."""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from inventory import host_facts


def _stand_ins(bindir: Path) -> None:
    tools = {
        # a unit named "broken" makes systemctl fail as it does with no bus
        "systemctl": '[ "$5" = broken ] && { echo "Failed to connect to bus" >&2; exit 1; }\n'
                     'echo "ActiveState=active"; echo "LoadState=loaded"; echo "SubState=running"\n',
        "df": 'echo "Filesystem 1024-blocks Used Available Capacity Mounted"\n'
              'echo "/dev/x 1000 10 4096 1% $2"\n',
    }
    for name, body in tools.items():
        path = bindir / name
        path.write_text("#!/bin/sh\n" + body)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_units_paths_and_errors_in_one_command(tmp_path: Path) -> None:
    _stand_ins(tmp_path)
    odd = tmp_path / "a dir; touch pwned"
    odd.mkdir()
    units = ["agent@main.service", "broken", "it's $(touch pwned).service"]
    paths = [str(odd), "/no/such/path"]
    cmd = host_facts.command(units, paths)
    out = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})
    assert out.returncode == 0  # ran: the host was reached, whatever each check says
    assert not (tmp_path / "pwned").exists()  # every value quoted
    facts = host_facts.parse(units, paths, out.stdout)
    assert facts.units["agent@main.service"].active
    assert facts.units["it's $(touch pwned).service"].load_state == "loaded"
    assert facts.unit_errors == {"broken": "Failed to connect to bus exit 1"}
    assert facts.free == {str(odd): 4096 * 1024, "/no/such/path": None}


def test_output_that_says_nothing_is_an_error_not_a_guess() -> None:
    facts = host_facts.parse(["a.service"], ["/"], "@unit a.service\n@disk / garbage\n")
    assert facts.units == {} and facts.unit_errors == {"a.service": "systemctl show printed nothing"}
    assert facts.free == {"/": None}
