"""The short soak on the real sandbox: a few fixed runs of bench/soak.py
(seed 7), each under ~100 req/s of client load with its faults injected at
moments taken from the run's own events, then every invariant of the
README's "Faults and guards" checked on the hosts, after the run and after
its `console resume`. The long soak is `bench/soak.py --runs N`. No mocks.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import soak

pytestmark = pytest.mark.sandbox
SEED = 7
RUNS = {  # run index of seed 7 -> what it covers
    4: "rolling, good release; terminal hangup (SIGHUP, output gone) as the first instance restarts",
    178: "canary at 50 %, good release; console SIGKILLed at the first step, then `resume` continues",
    267: "canary, 28 % 503s; nginx master stopped (reload does not take) as the first host drains",
    350: "canary at 50 %, good release; `console rollback --yes` from another shell as the split is applied",
}


@pytest.fixture
def fleet(sandbox_fleet):
    yield sandbox_fleet
    soak.clean(sandbox_fleet)


@pytest.mark.parametrize("index", sorted(RUNS), ids=[f"run{i}" for i in sorted(RUNS)])
async def test_a_soak_run_keeps_every_promise(fleet, tmp_path, index):
    schedule = soak.schedule_for(SEED, index, fleet.agent_names)
    run = await soak.run_one(fleet, schedule, tmp_path / "run")
    assert [f["fault"] for f in run.fired] == [f["fault"] for f in schedule["faults"]], \
        f"a scheduled fault was never injected: {soak.describe(schedule)}"
    for f in run.fired:  # an operator command the run refused would prove nothing
        assert f["fault"] not in soak.OPERATOR or f["accepted"], f"{f['fault']} not accepted: {f.get('replies')}"
    assert run.violations == [], f"{soak.describe(schedule)}: {run.violations} (case in {tmp_path})"
