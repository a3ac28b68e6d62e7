"""The docs' ```sh sandbox``` blocks (tests/doc_blocks.py), run on this
lane's real fleet. Three things differ from a reader's shell, each because
the lane shares one fleet: `console sandbox up` and `console sandbox down`
are not run (the fixture booted the fleet; `down` would remove it from under
the lane's other tests), and the default fleet's inventory path and LB
address are this fleet's. Everything else runs as written."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from doc_blocks import ROOT, Block, blocks

pytestmark = pytest.mark.sandbox

SANDBOX = [b for b in blocks() if b.kind == "sandbox"]
NOT_RUN = ("console sandbox up", "console sandbox down")


def script(block: Block, fleet) -> str:
    return block.script(skip=lambda command: command.startswith(NOT_RUN),
                        rewrite=lambda command: command.replace(
                            "/var/lib/rollout-console/sandbox/inventory.yaml", str(fleet.inventory_path))
                        .replace("10.77.0.10", fleet.lb_ip))


@pytest.mark.parametrize("block", SANDBOX, ids=[b.where for b in SANDBOX])
def test_documented_sandbox_commands_run_on_real_hosts(block: Block, fleet, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "console").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m console "$@"\n')
    (bin_dir / "console").chmod(0o755)
    runtime = tempfile.mkdtemp(prefix="rc-doc-")  # short: control sockets live here
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "PYTHONPATH": str(ROOT),
           "XDG_STATE_HOME": str(tmp_path / "state"), "XDG_RUNTIME_DIR": runtime, "NO_COLOR": "1"}
    try:
        proc = subprocess.run(["bash", "-c", script(block, fleet)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=1500)
    finally:
        subprocess.run(["rm", "-rf", runtime], check=False)
    assert proc.returncode == 0, f"{block.where}:\n{proc.stderr[-3000:]}\n{proc.stdout[-2000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
