"""How much of the code a resume walks that a fresh run does not.

"Resume is an ordinary run" (issue 27) has a measure: trace the path a
resume takes and the path a fresh run of the same plan takes, and count the
functions of console/ and strategies/ only the resume visits. What a resume
must do of its own is read the dead session's journal and start from its
status; everything else should be the run every plan makes.

Two walks, each traced with sys.setprofile (every Python function of
console/ and strategies/ called is counted once), SIMULATED (6 hosts,
rolling, batches of 2):
- resume: a run killed in its second batch's deploy (an exception nothing
  in the engine catches, as under SIGKILL), then `console resume`'s path
  (load_resume, a Session with its Resume, Session.run) on the fleet as
  the dead session left it;
- fresh: the same plan run once on a fresh fleet, from loading its inputs
  (load_inputs, a Session, Session.run).

Run from the repository root: `python3 bench/resume_walk.py [--against TREE]`
(TREE: another checkout, e.g. a `git worktree` of the commit before). Each
tree is measured in a process of its own, importing the console from that
tree. Prints the counts, then the functions only the resume visits.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, git_head, start  # noqa: E402

Walk = collections.Counter[tuple[str, str]]


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the engine handles it."""


def tracer(tree: Path, calls: Walk):  # type: ignore[no-untyped-def]
    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call":
            path = frame.f_code.co_filename
            if path.startswith(str(tree)) and ("/console/" in path or "/strategies/" in path):
                calls[(str(Path(path).relative_to(tree)), frame.f_code.co_qualname)] += 1
    return profile


async def walks(tree: Path, tmp: Path) -> dict[str, object]:
    from console.resume import load_resume
    from console.session import Session, load_inputs
    from simfleet import write_inventory, write_plan

    inv = write_inventory(tmp / "inv.yaml", hosts=6)
    plan = write_plan(tmp / "plan.yaml", "rolling", rolling={"batch": 2})
    first = Session(load_inputs(str(plan), str(inv), None), argv=["walk"], record=str(tmp / "j.jsonl"),
                    time_scale=100.0)
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

    resume: Walk = collections.Counter()
    sys.setprofile(tracer(tree, resume))
    try:
        inputs, state = load_resume(str(tmp / "j.jsonl"))
        resumed = Session(inputs, argv=["walk"], record=str(tmp / "r.jsonl"), time_scale=100.0, auto_promote=True,
                          resume=state)
        left, boot = first.driver, resumed.driver.open

        async def reopen(hosts, lbs):  # type: ignore[no-untyped-def]
            await boot(hosts, lbs)  # the simulated hosts and LB as the killed session left them
            resumed.driver._instances.update(left._instances)
            resumed.driver._lb_texts.update(left._lb_texts)
            resumed.driver._lb_state = left._lb_state

        resumed.driver.open = reopen  # type: ignore[method-assign]
        resumed_result = await resumed.run()
    finally:
        sys.setprofile(None)
    resumed.finish(resumed_result)

    fresh: Walk = collections.Counter()
    sys.setprofile(tracer(tree, fresh))
    try:  # from the inputs on, as the resume (which loads them from the journal's paths)
        session = Session(load_inputs(str(plan), str(inv), None), argv=["walk"], record=str(tmp / "f.jsonl"),
                          time_scale=100.0, auto_promote=True)
        fresh_result = await session.run()
    finally:
        sys.setprofile(None)
    session.finish(fresh_result)
    return {"resume": sorted("\t".join(k) for k in resume), "fresh": sorted("\t".join(k) for k in fresh),
            "resume_outcome": f"{resumed_result.outcome.value}: {resumed_result.message}",
            "fresh_outcome": f"{fresh_result.outcome.value}: {fresh_result.message}"}


def measure(tree: Path) -> None:
    """In a process of its own: the two walks of `tree`, as JSON on stdout."""
    sys.path[:0] = [str(tree), str(tree / "tests")]
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(walks(tree, Path(tmp)))))


def report(label: str, tree: Path) -> set[str]:
    out = subprocess.run([sys.executable, __file__, "--measure", str(tree)], capture_output=True, text=True,
                         cwd=tree, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    resume, fresh = set(got["resume"]), set(got["fresh"])
    only = resume - fresh
    print(f"\n## {label}: {tree} at {git_head(tree)}")
    print(f"resumed run: {got['resume_outcome']}\nfresh run:   {got['fresh_outcome']}")
    print(f"distinct functions: resume {len(resume)}, fresh run {len(fresh)}, only the resume {len(only)}")
    for top in ("console/", "strategies/"):
        print(f"  only the resume, {top}: {len([f for f in only if f.startswith(top)])}")
    for name in sorted(only):
        print("    " + name.replace("\t", " "))
    return only


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--against", type=Path, help="another source tree to measure the same way (before)")
    p.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        measure(args.measure.resolve())
        return
    start("resume_walk", folder_suffix="-walk")
    this = report("this tree", ROOT)
    if args.against:
        before = report("against", args.against.resolve())
        print(f"\nonly the resume: {len(before)} -> {len(this)}")
        print("  no longer resume-only: " + (", ".join(sorted(f.replace("\t", " ") for f in before - this)) or "-"))
        print("  newly resume-only: " + (", ".join(sorted(f.replace("\t", " ") for f in this - before)) or "-"))


if __name__ == "__main__":
    main()
