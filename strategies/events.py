"""Typed events the engine emits, and the bus that carries them.

The TUI, the headless reporter and the journal are all subscribers to the
same stream; replay feeds recorded events back through the same views. An
event is a frozen dataclass with a `kind`; `to_dict`/`from_dict` give the
JSON form used on stdout and in journals.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal, Mapping, TypedDict

from inventory.json_types import JSON, JSONObject

_REGISTRY: dict[str, type[Event]] = {}


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event. `at` is seconds since the run started on the
    engine's clock (simulated time on a simulated fleet)."""

    kind: ClassVar[str] = "event"
    at: float = 0.0

    def __init_subclass__(cls, **kw: object) -> None:
        super().__init_subclass__(**kw)
        _REGISTRY[cls.kind] = cls

    def to_dict(self) -> JSONObject:
        return {"kind": self.kind, **dataclasses.asdict(self)}


def _known_fields(cls: type[Event] | type[StartedInstance], data: Mapping[str, JSON]) -> dict[str, Any]:
    """The entries of a record `to_dict` wrote that `cls` still has. Any:
    the values are passed on as the record holds them, not validated (a
    journal or the control socket carries the console's own output; a
    wrong type surfaces as the TypeError a reader reports)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def from_dict(data: Mapping[str, JSON]) -> Event:
    """Rebuild an event from its JSON form; unknown fields are dropped so a
    newer journal still replays in an older console."""
    kind = data.get("kind", "")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown event kind {data.get('kind')!r}")
    return cls(**_known_fields(cls, data))


class Phase(enum.StrEnum):
    PREFLIGHT = "preflight"
    RUNNING = "running"
    PAUSED = "paused"
    ANALYSING = "analysing"
    ROLLING_BACK = "rolling back"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled back"
    FAILED = "failed"
    ABORTED = "aborted"


class InstancePhase(enum.StrEnum):
    QUEUED = "queued"
    DRAINING = "draining"
    DEPLOYING = "deploying"
    RESTARTING = "restarting"
    CHECKING = "checking"
    LIVE = "live"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"
    STANDBY = "standby"


class Outcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"
    FAILED = "failed"
    ABORTED = "aborted"
    REFUSED = "refused"
    AWAITING_PROMOTION = "awaiting_promotion"


class Reason(enum.StrEnum):
    """Why a run ended as it did: how the strategy's path ended, or what
    the status made of it (ROLLBACK_LEFT_OUT, ROLLOUT_INCOMPLETE, UNANSWERED,
    LB_UNREACHABLE)."""

    COMPLETED = "completed"  # the strategy ran every step
    AWAITING_PROMOTION = "awaiting_promotion"  # headless at a manual gate, no --auto-promote
    ROLLED_BACK = "rolled_back"
    ROLLBACK_INCOMPLETE = "rollback_incomplete"  # the strategy's rollback named problems left
    ROLLBACK_FAILED = "rollback_failed"  # the rollback itself raised (nginx refused the way back...)
    ROLLBACK_LEFT_OUT = "rollback_left_out"  # rolled back, but an instance that served before is out of nginx
    ROLLOUT_INCOMPLETE = "rollout_incomplete"  # finished, but a change left an instance out of nginx
    UNANSWERED = "unanswered"  # finished or rolled back, but nginx routes to an instance that does not answer
    LB_UNREACHABLE = "lb_unreachable"  # finished or rolled back, but the end could not reach a load balancer
    ABORTED = "aborted"  # an operator's abort (or a signal) at a safe point
    ABORTED_AFTER_LAST_STEP = "aborted_after_last_step"
    ABORTED_AFTER_FAILURE = "aborted_after_failure"  # on_failure: pause, then the operator aborted
    FAIL_STOPPED = "fail_stopped"  # something the run depends on broke (the journal, the lock)
    FAIL_STOPPED_AFTER_LAST_STEP = "fail_stopped_after_last_step"
    STOPPED_FOR_HUMAN = "stopped_for_human"  # a gate failed and on_failure does not roll back
    DRIVER_ERROR = "driver_error"  # a failure while failing
    PREFLIGHT_REFUSED = "preflight_refused"  # nothing changed: the fleet is not safe to start from
    LOCK_REFUSED = "lock_refused"  # nothing changed: another console holds the rollout lock


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    PENDING = "pending"  # not decided yet: keep watching
    INCONCLUSIVE = "inconclusive"  # not enough evidence by the window's maximum
    ENVIRONMENT = "environment"  # a ceiling broke, but the baseline breaks it as much: a human decides


class StepRecord(TypedDict):
    """One planned step as RunStarted records it (context.PlannedStep.to_dict)."""

    title: str
    instances: list[str]


class FindingRecord(TypedDict):
    """A rule a gate's evidence breaks, as GateEvaluated carries it
    (gating.finding_fields): `op` ">", "<" or "~" (a likelihood verdict),
    `tier` "critical" or "gate"."""

    metric: str
    value: float
    limit: float
    op: str
    tier: str


@dataclass(frozen=True)
class StartedInstance:
    """One instance of the run as RunStarted records it. Journals written
    before a field existed lack it: the defaults stand in."""

    key: str
    host: str = ""
    address: str = ""
    slot: str = ""
    unit: str = ""
    port: int | None = None

    @classmethod
    def of(cls, value: StartedInstance | Mapping[str, JSON]) -> StartedInstance:
        """From a journal's dict (unknown keys dropped), or as it is."""
        if isinstance(value, StartedInstance):
            return value
        return cls(**_known_fields(cls, value))


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    kind: ClassVar[str] = "run_started"
    plan: str
    strategy: str
    service: str
    version: str
    old_versions: dict[str, str | None]
    instances: list[StartedInstance]
    steps: list[StepRecord]
    simulated: bool
    thresholds: JSONObject = field(default_factory=dict)  # the plan's thresholds, as model_dump gives them
    lb_snapshot: dict[str, str] = field(default_factory=dict)  # LB files before any change
    resumed: str | None = None  # the journal of the session this one resumes
    untouched: list[str] = field(default_factory=list)  # instances a --limit left out: serving, never changed
    # the instances the LB files before any change routed to (lb_snapshot's pools, by key): what a
    # run that ends with one of them out of nginx leaves a human to look at. Empty in older journals.
    served_before: list[str] = field(default_factory=list)
    # the instances nginx routes to as this session starts (the live pools preflight read; for a
    # resume, where the dead session left them): what a run that changes nothing leaves serving.
    # Empty in older journals.
    routed: list[str] = field(default_factory=list)
    # what each instance runs as this session starts (its probe; None: unhealthy, or for a resume
    # caught mid-change by the crash). Empty in older journals: their old_versions.
    versions: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # a journal (from_dict) gives the instances as dicts
        object.__setattr__(self, "instances", [StartedInstance.of(i) for i in self.instances])


@dataclass(frozen=True, kw_only=True)
class PhaseChanged(Event):
    kind: ClassVar[str] = "phase"
    phase: Phase
    reason: str = ""
    # paused at a manual gate (an indefinite pause, an inconclusive window):
    # only promote (or rollback/abort) goes on from here, not resume
    awaiting_promotion: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))  # a journal (from_dict) gives its value


@dataclass(frozen=True, kw_only=True)
class StepStarted(Event):
    """A batch (rolling) or a step (canary, blue-green) began."""

    kind: ClassVar[str] = "step_started"
    index: int
    total: int
    title: str
    instances: list[str] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class InstanceChanged(Event):
    kind: ClassVar[str] = "instance"
    instance: str
    phase: InstancePhase
    version: str | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        # a journal (from_dict) gives the phase as its value
        object.__setattr__(self, "phase", InstancePhase(self.phase))


@dataclass(frozen=True, kw_only=True)
class VersionLost(Event):
    """The run no longer knows what an instance runs: a deploy or a start
    failed, or its old version was found unhealthy (until it is put back).
    A version the run learns comes with the instance's phase
    (InstanceChanged.version). The run's status folds both, and a strategy
    reads versions from the status only, so what it decides on is what the
    journal says."""

    kind: ClassVar[str] = "version_lost"
    instance: str


@dataclass(frozen=True, kw_only=True)
class CommandRan(Event):
    kind: ClassVar[str] = "command"
    host: str
    command: str
    exit_status: int | None
    duration: float
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True, kw_only=True)
class HealthChecked(Event):
    kind: ClassVar[str] = "health"
    instance: str
    ok: bool
    version: str | None
    latency: float
    detail: str = ""
    # probed before any change while nginx does not route to it: not answering is expected there
    # (an idle colour before its deploy), so the text views leave a failure out (the checklist and the
    # preflight refusal say what matters)
    idle: bool = False


@dataclass(frozen=True, kw_only=True)
class TrafficChanged(Event):
    """The load balancers now serve this configuration (reload verified)."""

    kind: ClassVar[str] = "traffic"
    generation: str
    pools: dict[str, list[str]]
    weights: dict[str, float]
    duration: float
    # The pool every request not weighted elsewhere goes to: blue-green's live
    # colour, a canary's stable pool. "" in journals written before it existed.
    serving: str = ""
    # seconds per step of the change where the driver measures them (real
    # LBs: ssh, write, nginx_t, reload, marker, old_workers, cleanup): the
    # breakdown bench/vs_ansible.py prints
    steps: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricsSampled(Event):
    """One analysis sample: per-pool client traffic and per-host CPU."""

    kind: ClassVar[str] = "metrics"
    pools: dict[str, dict[str, float]]
    cpu: dict[str, float]
    quality: dict[str, float] = field(default_factory=dict)
    health_pass_rate: float | None = None


@dataclass(frozen=True, kw_only=True)
class GateEvaluated(Event):
    """The judge's view of a window after a sample (strategies/analysis.py).
    `values` are the pooled window's numbers; `needed`/`seen` the requests a
    pass needs and those seen; `extended` once the window outlived its
    planned length for want of evidence."""

    kind: ClassVar[str] = "gate"
    name: str
    verdict: Verdict
    reasons: list[str]
    values: dict[str, float | None]
    remaining: float = 0.0
    final: bool = False  # the window's closing verdict, not one sample
    extended: bool = False
    needed: int = 0
    seen: int = 0
    # The rules the evidence breaks, typed (analysis.Finding): metric, value,
    # limit, op (">", "<", "~" for a likelihood verdict) and tier, so a view
    # can tell which metric decided without reading `reasons`. Empty in
    # journals written before it existed.
    findings: list[FindingRecord] = field(default_factory=list)
    shadow: bool = False  # a shadow judge's verdict: recorded, not acted on
    # Why a window did not pass at its planned end (strategies/coverage.Why
    # values: missing data such as "latency_not_judged", or "evidence",
    # "breach"...): set on its extended and inconclusive verdicts.
    why: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))  # a journal (from_dict) gives its value


@dataclass(frozen=True, kw_only=True)
class JudgeBudget(Event):
    """At the start of a judged run: the false-alarm budget of the release
    (`alpha`), the judged windows it is spread over, each window's part,
    each test's level per window, and whether the judge only shadows."""

    kind: ClassVar[str] = "judge_budget"
    alpha: float
    windows: int
    per_window: float
    tests: dict[str, float]
    shadow: bool = False


@dataclass(frozen=True, kw_only=True)
class JudgeSampled(Event):
    """One sample as the judge saw it, in `console judge backtest`'s input
    form: seconds since the window `name` opened (`t`), and per side the
    requests, failed requests and per-request latencies (ms precision)."""

    kind: ClassVar[str] = "judge_sample"
    name: str
    t: float
    # {"requests": N, "failed": K, "latencies": [...]}: gating.sample_record builds it, backtest.evidence reads it back
    canary: dict[str, object]
    baseline: dict[str, object] | None = None


@dataclass(frozen=True, kw_only=True)
class ClientTraffic(Event):
    """What clients saw between analysis windows (per pool), and the run's
    running totals from the first LB change on."""

    kind: ClassVar[str] = "clients"
    pools: dict[str, dict[str, float]]
    requests: int
    failed: int


@dataclass(frozen=True, kw_only=True)
class RoutingVerified(Event):
    """Before an LB change: the instances it routes to were verified;
    `left_out` names those that failed (instance -> why)."""

    kind: ClassVar[str] = "routing_verified"
    generation: str
    instances: int
    probed: int
    left_out: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CapacityChecked(Event):
    """The capacity guard before draining a batch (strategies/capacity.py)."""

    kind: ClassVar[str] = "capacity"
    serving: int
    after: int
    floor: int
    unhealthy: list[str]
    in_batch: list[str]
    ok: bool


@dataclass(frozen=True, kw_only=True)
class AlertRaised(Event):
    kind: ClassVar[str] = "alert"
    tier: str
    metric: str
    value: float
    threshold: float  # the plan's own (its alert rule for the tier, else thresholds:), as written
    where: str
    # what the judge weighed, when a statistical test raised it ("2 of 14;
    # 10.00% is 321x likelier than 0.30%"): kept apart from the threshold
    basis: str = ""
    # an alert about one instance (metric "instance_down"): its key, and why
    # (strategies.down.DownReason); "" for alerts about a pool
    instance: str = ""
    reason: str = ""


# Who sent an operator command from another shell (console/control/peer.py identify): uid, user,
# pid, and the SSH client its environment claims ("" when it claims none)
Sender = dict[str, str | int]


@dataclass(frozen=True, kw_only=True)
class OperatorCommand(Event):
    kind: ClassVar[str] = "operator"
    command: str
    source: str
    accepted: bool
    detail: str = ""
    sender: Sender = field(default_factory=dict)  # socket: uid, user, pid; ssh_client_claimed


@dataclass(frozen=True, kw_only=True)
class Notice(Event):
    kind: ClassVar[str] = "notice"
    level: str
    message: str


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    kind: ClassVar[str] = "run_finished"
    outcome: Outcome
    message: str
    duration: float
    versions: dict[str, str | None] = field(default_factory=dict)
    clients: dict[str, int] = field(default_factory=dict)  # requests, failed, hidden (engine.ClientTally)
    # why it ended so; "" in journals written before it existed
    reason: Reason | Literal[""] = ""

    def __post_init__(self) -> None:  # a journal (from_dict) gives their values
        object.__setattr__(self, "outcome", Outcome(self.outcome))
        object.__setattr__(self, "reason", Reason(self.reason) if self.reason else "")


Subscriber = Callable[[Event], None]
# How the engine's services publish: `emit(Notice(level=..., message=...))`;
# the engine stamps `at` (the fields are checked where the event is built)
Emit = Callable[[Event], None]


class EventBus:
    """Fan-out of events to subscribers, in subscription order.

    `transform` runs once per event before any subscriber sees it (the
    console uses it to redact secrets, so no view or journal can leak one).
    A subscriber that raises is detached and reported as a Notice: a broken
    view must not stop a rollout mid-batch."""

    def __init__(self, transform: Callable[[Event], Event] | None = None) -> None:
        self._subscribers: list[Subscriber] = []
        self._transform = transform

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    def publish(self, event: Event) -> None:
        if self._transform is not None:
            event = self._transform(event)
        broken: list[tuple[Subscriber, Exception]] = []
        for sub in list(self._subscribers):
            try:
                sub(event)
            except Exception as exc:  # noqa: BLE001 - isolate views from the engine
                broken.append((sub, exc))
        for sub, error in broken:
            self._subscribers.remove(sub)
            self.publish(Notice(at=event.at, level="error",
                                message=f"a subscriber failed and was detached: {error!r}"))
