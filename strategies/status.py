"""The run's status, and the one place its outcome is decided.

`RunStatus` is what a run is, as its services reported it on the event
stream: per instance the version it runs, whether nginx routes to it (as
this session last set it) and routed to it before the run, its last
journalled healthy probe, and why it is held out of a change; for the run
the LB files before any change (where a resume starts from), its phase,
the strategy's position, the judge's open window and, once it ends, its
outcome and why. `RunStatus.apply` folds one event into it: the
engine folds every event it emits, and folding a journal's events rebuilds
the status at any record (replay, `console status`, a resume's reading).

`decide_outcome` is the run's verdict: a pure function of the status and
of how the strategy's own path ended (`StrategyResult`: finished, rolled
back, stopped, failed...). Each case a soak run taught (a rollback that
could not put an instance back, a rollout that left one out of nginx, an
instance nginx routes to that died after the last change) is a branch
here, named by a `Reason`, not a rewrite of another branch's sentence.
Nothing here does I/O: the engine probes what nginx routes to at the end
and hands the answer in (`RunStatus.not_answering`).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Mapping

from .events import (
    Event,
    GateEvaluated,
    HealthChecked,
    InstanceChanged,
    InstancePhase,
    Outcome as Outcome,  # the words of a run's end, typed where its events are
    Phase,
    PhaseChanged,
    Reason as Reason,
    RoutingVerified,
    RunFinished,
    RunStarted,
    StepStarted,
    TrafficChanged,
    VersionLost,
)

MID_CHANGE = {InstancePhase.DEPLOYING, InstancePhase.RESTARTING, InstancePhase.CHECKING, InstancePhase.FAILED}
BASE_OUTCOME = {
    Reason.COMPLETED: Outcome.SUCCEEDED,
    Reason.AWAITING_PROMOTION: Outcome.AWAITING_PROMOTION,
    Reason.ROLLED_BACK: Outcome.ROLLED_BACK,
    Reason.ABORTED: Outcome.ABORTED,
    Reason.ABORTED_AFTER_LAST_STEP: Outcome.ABORTED,
    Reason.ABORTED_AFTER_FAILURE: Outcome.ABORTED,
    Reason.PREFLIGHT_REFUSED: Outcome.REFUSED,
    Reason.LOCK_REFUSED: Outcome.REFUSED,
}  # every other reason: FAILED


class Exclusion(enum.StrEnum):
    """Why an instance is held out of what a change would route to."""

    LEFT_OUT = "left_out"  # a routing change found it unverified just then (RoutingVerified.left_out)


@dataclass
class InstanceStatus:
    key: str
    backend: str  # address:port, as nginx names it
    version: str | None = None  # what it runs, as far as the run knows (None: unknown or unhealthy)
    old_version: str | None = None  # what it ran before the run
    in_nginx: bool = False  # nginx routes to it: as this session last set it (before its first change: as it found it)
    served_before: bool = False  # the LB files before the run routed to it
    healthy_at: float | None = None  # run time of its last journalled passing probe
    phase: InstancePhase = InstancePhase.QUEUED
    excluded: Exclusion | None = None


@dataclass(frozen=True)
class Position:
    """Where the strategy is: its step (a rolling batch, a canary step, a
    blue-green stage), 1-based; 0 before the first."""

    index: int = 0
    total: int = 0
    title: str = ""


@dataclass
class RunStatus:
    """Apply events in order with `apply`; read the fields."""

    instances: dict[str, InstanceStatus] = field(default_factory=dict)
    phase: Phase = Phase.PREFLIGHT
    position: Position = Position()
    window: str | None = None  # the analysis window the judge has open
    lb_changed: bool = False  # this session applied a routing change
    untouched: tuple[str, ...] = ()  # the upstream's instances a --limit left out: serving, never changed
    resumed: str | None = None  # the journal of the session this one resumes
    lb_snapshot: dict[str, str] = field(default_factory=dict)  # every LB's managed file before the run
    # set by the engine at the end, from a probe of what nginx routes to: those that do not answer
    not_answering: tuple[str, ...] = ()
    # set by the engine at the end, when it could not connect to a load balancer to release the
    # rollout lock (the driver's one line, naming the LB): what nginx routes to now is not known
    lb_unreachable: str = ""
    outcome: Outcome | None = None
    reason: Reason | None = None
    rollback: str = ""  # why the run began to roll back ("" if it never did): a resume finishes it

    def apply(self, event: Event) -> None:
        handler = _FOLD.get(type(event))
        if handler is not None:
            handler(self, event)

    @property
    def versions(self) -> Mapping[str, str | None]:
        """What each instance runs, as far as the run knows (None: unknown or
        unhealthy): a live view, read by the services and the strategies."""
        return _Versions(self, "version")

    @property
    def old_versions(self) -> Mapping[str, str | None]:
        """What each instance ran before the run (RunStarted.old_versions): a live view."""
        return _Versions(self, "old_version")

    # -- what the outcome weighs ---------------------------------------------------
    def out_of_nginx(self) -> list[str]:
        """Instances nginx routed to before the run that it does not route to
        now (what a human must look at): as this session last set it, or, when
        it changed nothing, as it found it (soak seed 26 run 55: a resume whose
        every change `nginx -t` refused said "every instance that served before
        is in nginx" while the dead session had left two out). Unknown only for
        a journal older than `RunStarted.routed` whose session changed nothing:
        then no instance is routed, and none is named."""
        if not self.lb_changed and not self.routed():
            return []
        return [s.key for s in self.instances.values() if s.served_before and not s.in_nginx]

    def still_left_out(self) -> list[str]:
        """Instances a change left out of nginx that the last one still does not route to."""
        return [s.key for s in self.instances.values() if s.excluded == Exclusion.LEFT_OUT and not s.in_nginx]

    def changing(self) -> list[str]:
        """Instances last seen being changed (deploying, restarting,
        checking) or whose change failed without the console learning what
        the host did: after a crash, the new release may be installed under
        the old one running there."""
        return [s.key for s in self.instances.values() if s.phase in MID_CHANGE]

    def routes(self, key: str) -> bool:
        """Does nginx route to this instance (as `routed` says, read for one)?"""
        inst = self.instances.get(key)
        return inst is not None and inst.in_nginx

    def routed(self) -> list[str]:
        """The instances nginx routes to: as this session last set it, or as
        it found it when it changed nothing (soak seed 20 run 12: a blue-green
        run that failed before its first change, a host of the live colour lost,
        and the end probed nothing)."""
        return [s.key for s in self.instances.values() if s.in_nginx]

    # -- the fold ----------------------------------------------------------------------
    def _on_started(self, e: RunStarted) -> None:
        before, routed = set(e.served_before), set(e.routed)
        running = e.versions or e.old_versions  # an older journal's: as they were before the run
        self.instances = {i.key: InstanceStatus(key=i.key, backend=f"{i.address}:{i.port}",
                                                version=running.get(i.key),
                                                old_version=e.old_versions.get(i.key),
                                                served_before=i.key in before, in_nginx=i.key in routed)
                          for i in e.instances}
        self.untouched, self.resumed, self.lb_snapshot = tuple(e.untouched), e.resumed, dict(e.lb_snapshot)
        self.position = Position(0, len(e.steps), "")

    def _on_phase(self, e: PhaseChanged) -> None:
        self.phase = e.phase
        if self.phase == Phase.ROLLING_BACK and not self.rollback:
            self.rollback = e.reason or "rollback"

    def _on_step(self, e: StepStarted) -> None:
        self.position = Position(e.index, e.total, e.title)

    def _on_instance(self, e: InstanceChanged) -> None:
        inst = self.instances.get(e.instance)
        if inst is not None:
            inst.phase = e.phase
            inst.version = e.version

    def _on_version_lost(self, e: VersionLost) -> None:
        inst = self.instances.get(e.instance)
        if inst is not None:
            inst.version = None

    def _on_health(self, e: HealthChecked) -> None:
        inst = self.instances.get(e.instance)
        if inst is not None and e.ok:
            inst.healthy_at = e.at

    def _on_traffic(self, e: TrafficChanged) -> None:
        self.lb_changed = True
        routed = {b for bs in e.pools.values() for b in bs}
        for inst in self.instances.values():
            inst.in_nginx = inst.backend in routed

    def _on_routing(self, e: RoutingVerified) -> None:
        for key in e.left_out:
            if key in self.instances:
                self.instances[key].excluded = Exclusion.LEFT_OUT

    def _on_gate(self, e: GateEvaluated) -> None:
        if e.shadow:
            return
        self.window = None if e.final else e.name

    def _on_finished(self, e: RunFinished) -> None:
        self.outcome = e.outcome
        self.reason = e.reason or None
        self.window = None
        for key, version in e.versions.items():
            if key in self.instances:
                self.instances[key].version = version


# Which fold step each event kind feeds (the rest leave the status as it is).
_FOLD: dict[type[Event], Callable[[RunStatus, Any], None]] = {
    RunStarted: RunStatus._on_started,
    PhaseChanged: RunStatus._on_phase,
    StepStarted: RunStatus._on_step,
    InstanceChanged: RunStatus._on_instance,
    VersionLost: RunStatus._on_version_lost,
    HealthChecked: RunStatus._on_health,
    TrafficChanged: RunStatus._on_traffic,
    RoutingVerified: RunStatus._on_routing,
    GateEvaluated: RunStatus._on_gate,
    RunFinished: RunStatus._on_finished,
}


class _Versions(Mapping[str, str | None]):
    """One version field of every instance of a status, read where it is
    kept (no copy): a 10,000-instance batch reads it once an instance."""

    def __init__(self, status: RunStatus, name: Literal["version", "old_version"]) -> None:
        self._status, self._name = status, name

    def __getitem__(self, key: str) -> str | None:
        version: str | None = getattr(self._status.instances[key], self._name)
        return version

    def __iter__(self) -> Iterator[str]:
        return iter(self._status.instances)

    def __len__(self) -> int:
        return len(self._status.instances)


def rebuild(events: list[Event]) -> RunStatus:
    """The status after these events (a journal's, or its first n)."""
    status = RunStatus()
    for event in events:
        status.apply(event)
    return status


@dataclass(frozen=True)
class StrategyResult:
    """How the strategy's own path ended, before the status is weighed.
    `reason` is one of the first group of Reason; `cause` the sentence
    that names why (a gate's failure, the operator's command, an error),
    `detail` what the strategy or its rollback said."""

    reason: Reason
    cause: str = ""
    detail: str = ""
    took: float = 0.0  # a rollback's seconds
    policy: str = ""  # the plan's on_failure, when it stopped for a human


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: Reason
    message: str


def _said(r: StrategyResult) -> str:
    """The sentence for how the strategy's path ended."""
    return {
        Reason.COMPLETED: r.detail,
        Reason.AWAITING_PROMOTION: f"{r.cause}: paused, awaiting promotion (use --auto-promote)",
        Reason.ROLLED_BACK: f"rolled back in {r.took:.1f}s: {r.cause}",
        Reason.ROLLBACK_INCOMPLETE: f"rollback incomplete: {r.detail} (after: {r.cause})",
        Reason.ROLLBACK_FAILED: f"rollback failed: {r.detail} (after: {r.cause})",
        Reason.ABORTED: f"aborted: {r.cause}",
        Reason.ABORTED_AFTER_LAST_STEP: f"aborted after the last step ({r.cause}): {r.detail}",
        Reason.ABORTED_AFTER_FAILURE: f"aborted after failure: {r.cause}",
        Reason.FAIL_STOPPED: f"failed: {r.cause}; stopped at a safe point for a human",
        Reason.FAIL_STOPPED_AFTER_LAST_STEP: f"failed: {r.cause}; after the last step: {r.detail}",
        Reason.STOPPED_FOR_HUMAN: f"failed: {r.cause}; stopped for a human (on_failure={r.policy})",
        Reason.DRIVER_ERROR: f"failed: {r.detail}",
        Reason.PREFLIGHT_REFUSED: f"preflight refused: {r.detail}",
        Reason.LOCK_REFUSED: f"lock refused: {r.detail}",
    }[r.reason]


def needs_answers(result: StrategyResult) -> bool:
    """Does deciding this result weigh which routed instances answer (so
    the engine must probe them first)? Not for a refusal (nothing changed)
    nor a pause awaiting promotion (the run is not over)."""
    return BASE_OUTCOME.get(result.reason, Outcome.FAILED) not in (Outcome.REFUSED, Outcome.AWAITING_PROMOTION)


def decide_outcome(status: RunStatus, result: StrategyResult) -> Decision:
    """The run's outcome, why, and the sentence the operator reads."""
    reason = result.reason
    outcome = BASE_OUTCOME.get(reason, Outcome.FAILED)
    message = _said(result)
    if outcome == Outcome.REFUSED:
        return Decision(outcome, reason, message)  # nothing changed: the status has nothing to add
    out = status.out_of_nginx()
    dead = (f"; nginx still routes to {', '.join(sorted(status.not_answering))}, which do not answer"
            if status.not_answering else "")
    left = status.still_left_out()
    lb = (f"; a load balancer could not be reached at the end ({status.lb_unreachable}): what nginx "
          f"routes to now is not known" if status.lb_unreachable else "")
    if outcome == Outcome.ROLLED_BACK and out:
        # a rollback that could not put every instance back is not done: a human must look
        outcome, reason, message = Outcome.FAILED, Reason.ROLLBACK_LEFT_OUT, f"rollback incomplete: {message}"
    if outcome == Outcome.SUCCEEDED and left:
        # nor is a rollout that left an instance out (soak seed 6 run 151: agent-04's health
        # flapped as the last change verified what it routes to, and the run said succeeded)
        outcome, reason = Outcome.FAILED, Reason.ROLLOUT_INCOMPLETE
        message = (f"rollout incomplete: {message}; left out of nginx, not verified at its last change: "
                   f"{', '.join(left)}{dead}")
    elif outcome in (Outcome.SUCCEEDED, Outcome.ROLLED_BACK) and dead:
        # the fleet lost an instance nginx routes to after its last probe (soak seed 4
        # run 163: a host powered off as the rollback's last change came out)
        outcome, reason, message = Outcome.FAILED, Reason.UNANSWERED, f"failed after the last change: {message}{dead}"
    elif outcome in (Outcome.SUCCEEDED, Outcome.ROLLED_BACK) and lb:
        # the LB went away after the last change (soak seed 30 run 58: powered off as blue-green's
        # rollback drained green; the result said every instance was in nginx, the LB unnamed)
        outcome, reason, message = Outcome.FAILED, Reason.LB_UNREACHABLE, f"failed after the last change: {message}"
    elif outcome in (Outcome.FAILED, Outcome.ABORTED):
        stranded = f"; out of nginx: {', '.join(out)}" if out else "; every instance that served before is in nginx"
        message += stranded + dead
    message += lb
    if status.untouched:
        message += f"; left out by --limit, untouched and serving: {', '.join(status.untouched)}"
    return Decision(outcome, reason, message)


FINAL_PHASE = {Outcome.SUCCEEDED: Phase.SUCCEEDED, Outcome.ROLLED_BACK: Phase.ROLLED_BACK,
               Outcome.ABORTED: Phase.ABORTED, Outcome.AWAITING_PROMOTION: Phase.PAUSED}  # else FAILED


def final_phase(outcome: Outcome) -> Phase:
    return FINAL_PHASE.get(outcome, Phase.FAILED)
