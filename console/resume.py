"""Picking up a rollout whose console died (SIGKILL, a dropped SSH session)
or stopped (abort, hangup, a pause awaiting promotion).

The journal of the dead session holds what the new one needs: the plan and
inventory it ran (by path and SHA-256, which must still match), the release
being shipped, every instance's version before the run, and the LB files
before any change. The new session inspects every host, makes the fleet safe
(traffic only on healthy old-version instances, broken ones reinstalled),
then continues the plan or rolls back, recording to a journal of its own.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from inventory.nginx_config import ConfigError, check_managed_text
from strategies.events import JudgeBudget, RunStarted
from strategies.origin import Resume
from strategies.status import rebuild
from strategies.topology import load_balancers

from .journal import clear_dead_reserves, read_journal, verify
from .journal_header import FileRead, Header
from .session import Inputs, UsageError, limit_inputs, load_inputs

FINISHED = {"succeeded", "rolled_back", "refused"}


class NothingToResume(Exception):
    """The session finished cleanly or never changed anything."""


class ResumeRefused(Exception):
    """The inputs changed since the session: resuming would guess."""


class JournalRejected(ValueError):
    """The journal fails verification (edited, cut, or its LB snapshot is
    not one the console writes): a resume would act on forged facts. A
    ValueError: bad input, exit 2."""


def check_snapshot(snapshot: dict[str, str], inputs: Inputs) -> None:
    """The LB files a resume writes back as root's nginx config, held to
    what a fresh preflight reads: one per load balancer of the plan, each a
    managed file as the console renders it."""
    names = {lb.name for lb in load_balancers(inputs.plan, inputs.inventory)}
    for name, text in snapshot.items():
        if name not in names:
            raise JournalRejected(f"lb_snapshot names {name!r}, not a load balancer of the plan")
        try:
            check_managed_text(text, inputs.plan.nginx.upstream)
        except ConfigError as exc:
            raise JournalRejected(f"lb_snapshot of {name}: {exc}") from None


def _same_file(entry: FileRead, what: str) -> str:
    path = entry.path
    if not path or not Path(path).is_file():
        raise ResumeRefused(f"the session's {what} {path or None} is gone")
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if digest != entry.sha256:
        raise ResumeRefused(f"the session's {what} {path} changed since it ran (sha256 {digest[:12]} "
                            f"!= recorded {(entry.sha256 or None)!s:.12})")
    return path


def load_resume(journal_path: str) -> tuple[Inputs, Resume]:
    if not Path(journal_path).is_file():
        raise FileNotFoundError(journal_path)
    check = verify(Path(journal_path))
    if not check.resumable:
        raise JournalRejected(f"the journal fails verification: {check.message}")
    journal = read_journal(Path(journal_path))
    clear_dead_reserves(Path(journal_path).parent)  # the dead session's reserve, if it was killed
    if journal.close and journal.close.outcome in FINISHED:
        raise NothingToResume(f"the session ended {journal.close.outcome}: nothing to resume")
    started = next((e for e in journal.events if isinstance(e, RunStarted)), None)
    if started is None:
        raise NothingToResume("the session changed nothing before it stopped: run the plan again")
    header = journal.header or Header()
    plan = _same_file(header.plan, "plan")
    inventory = _same_file(header.inventory, "inventory")
    # a shadow judge (--judge-shadow) stays one: the budget the run announced says so,
    # and a resumed run that began gating on verdicts the operator chose to ignore would
    # act on a judge that was only being tried
    shadow = any(isinstance(e, JudgeBudget) and e.shadow for e in journal.events)
    try:
        inputs = load_inputs(plan, inventory, started.version, judge_shadow=shadow)
    except UsageError as exc:
        raise ResumeRefused(str(exc)) from None
    if started.untouched:  # a --limit run: the same hosts again, the rest still left alone
        inputs = limit_inputs(inputs, ",".join(dict.fromkeys(i.host for i in started.instances)))
    # where the dead session left the run: its status, folded from its journal (strategies/status.py),
    # the one thing a resume starts from (strategies/origin.py Resume). An instance it was changing
    # (soak seed 6 run 179: a link cut as the deploy command ran; it completed, unseen, and the revert
    # could not reach the host) may run the old release with the new one installed under it; a
    # rollback it began is finished, never shipped over
    state = Resume(str(journal_path), rebuild(journal.events))
    check_snapshot(state.status.lb_snapshot, inputs)
    return inputs, state
