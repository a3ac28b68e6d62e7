"""The walk of a resume from a crash mid-batch, counted by tracing it.

A SIMULATED rolling run (6 hosts, batches of 2) is killed in its second
batch's deploy (an exception no handler in the engine catches: the session
stops where it is, as under SIGKILL, and its journal closes with an internal
error). `console resume`'s path (load_resume, a Session with its
ResumeState, Session.run) is then traced with sys.setprofile: every Python
function of console/ and strategies/ it calls is counted once (distinct) and
per call. Run from a tree's root: `python bench/results/2026-12-06-status-walk/walk.py`
(PYTHONPATH=.:tests). Prints the commit, the machine, the date, then the
counts per file and the functions of the outcome's files; with --all, every
function of strategies/ it called, one a line (to diff two trees)."""
from __future__ import annotations

import asyncio
import collections
import datetime
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from console.journal import read_journal
from console.resume import load_resume
from console.session import Session, load_inputs
from simfleet import write_inventory, write_plan

ROOT = Path.cwd()


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the engine handles it."""


async def crash_then_resume(tmp: Path) -> tuple[collections.Counter[tuple[str, str]], str]:
    inv = write_inventory(tmp / "inv.yaml", hosts=6)
    plan = write_plan(tmp / "plan.yaml", "rolling", rolling={"batch": 2})
    first = Session(load_inputs(str(plan), str(inv), None), argv=["walk"], record=str(tmp / "j.jsonl"), time_scale=100.0)
    run_commands = first.driver.run_commands
    deployed = []

    async def killed_in_batch_two(inst, commands, timeout, *, version=None):  # type: ignore[no-untyped-def]
        deployed.append(inst.key)
        if len(deployed) == 3:
            raise Killed()
        return await run_commands(inst, commands, timeout, version=version)

    first.driver.run_commands = killed_in_batch_two  # type: ignore[method-assign]
    try:
        await first.run()
    except Killed:
        pass
    first.finish(None, "killed")
    calls: collections.Counter[tuple[str, str]] = collections.Counter()

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(str(ROOT)) and ("/console/" in path or "/strategies/" in path):
                calls[(str(Path(path).relative_to(ROOT)), frame.f_code.co_qualname)] += 1

    sys.setprofile(profile)
    try:
        inputs, state = load_resume(str(tmp / "j.jsonl"))
        resumed = Session(inputs, argv=["walk"], record=str(tmp / "r.jsonl"), time_scale=100.0, auto_promote=True,
                          resume=state)
        left = first.driver
        boot = resumed.driver.open

        async def reopen(hosts, lbs):  # type: ignore[no-untyped-def]
            await boot(hosts, lbs)  # the same simulated hosts and LB as the killed session left them
            resumed.driver._instances.update(left._instances)
            resumed.driver._lb_texts.update(left._lb_texts)
            resumed.driver._lb_state = left._lb_state

        resumed.driver.open = reopen  # type: ignore[method-assign]
        result = await resumed.run()
    finally:
        sys.setprofile(None)
    resumed.finish(result)
    assert read_journal(tmp / "r.jsonl").events
    return calls, f"{result.outcome.value}: {result.message}"


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit or '(no git: an exported tree)'}{' dirty' if dirty else ''}; {platform.node()} "
          f"{platform.machine()} python {platform.python_version()}; {datetime.datetime.now(datetime.UTC):%Y-%m-%dT%H:%MZ}")
    with tempfile.TemporaryDirectory() as tmp:
        calls, outcome = asyncio.run(crash_then_resume(Path(tmp)))
    print(f"resumed run: {outcome}")
    by_file: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for (path, name), n in calls.items():
        by_file[path].append((name, n))
    print(f"distinct functions {len(calls)}, calls {sum(calls.values())}")
    for path in sorted(by_file):
        fns = by_file[path]
        print(f"  {path}: {len(fns)} functions, {sum(n for _, n in fns)} calls")
    if "--all" in sys.argv[1:]:
        for path, name in sorted(calls):
            if path.startswith("strategies/"):
                print(f"{path} {name}")
        return
    for path in ("strategies/engine.py", "strategies/status.py", "console/resume.py"):
        names = sorted(name for name, _ in by_file.get(path, []) if "<" not in name)
        print(f"{path}: {', '.join(names)}")


if __name__ == "__main__":
    main()
