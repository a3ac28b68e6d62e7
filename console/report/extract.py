"""What a report says, taken from a journal: plain data, no formatting.

`extract(journal, verification)` folds the recorded events into a `Report`
(the run, its steps and traffic splits, every verdict with its evidence,
alerts, operator commands, client totals, the series the plots draw, each
instance's versions over time). The text and HTML renderers only format
it, so both say the same things, and every fact here is tested on real
journals without a renderer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from inventory.json_types import JSONObject
from strategies.events import (
    AlertRaised,
    ClientTraffic,
    Event,
    GateEvaluated,
    HealthChecked,
    InstanceChanged,
    MetricsSampled,
    Notice,
    OperatorCommand,
    PhaseChanged,
    RunFinished,
    RunStarted,
    StepStarted,
    TrafficChanged,
)

from ..journal import Journal, Verification
from ..journal_header import Header, Operator

# The event kinds the timeline lists (the rest are samples, commands and probes).
TIMELINE_KINDS = (PhaseChanged, StepStarted, TrafficChanged, AlertRaised, OperatorCommand, RunFinished)


@dataclass(frozen=True)
class Integrity:
    """Whether the journal can be trusted as recorded (console audit verify)."""

    ok: bool
    message: str
    final_hash: str | None
    closed: bool
    torn_tail: bool
    chain_intact: bool  # whole and sealed (journal.Verification.resumable): at worst the session stopped writing


@dataclass(frozen=True)
class Run:
    plan: str
    strategy: str
    service: str
    version: str
    old_versions: tuple[str, ...]
    instances: int
    simulated: bool
    operator: Operator
    argv: tuple[str, ...]
    started: str
    thresholds: JSONObject
    outcome: str | None  # None: the journal has no RunFinished (the session died)
    message: str
    duration: float
    exit_code: int | None


@dataclass(frozen=True)
class Step:
    index: int
    total: int
    title: str
    start: float
    end: float
    shares: dict[str, float]  # the traffic split (percent per pool) it ran with (set before its verdict)
    verdict: str | None  # the final verdict of a window judged in this step


@dataclass(frozen=True)
class Split:
    """The traffic split the load balancers served from `at` on."""

    at: float
    shares: dict[str, float]  # percent per pool
    weighted: bool  # from nginx weights; else from the pools' backend counts (round robin)


@dataclass(frozen=True)
class Command:
    at: float
    command: str
    source: str
    accepted: bool
    detail: str
    who: str  # user@host (pid, ssh client) of the sender, or the console's own operator for its keys


@dataclass(frozen=True)
class Clients:
    requests: int
    failed: int
    hidden: int | None  # failures nginx retried away from clients (None: not recorded)
    by_pool: dict[str, tuple[int, int]]  # pool -> (requests, errors) in the recorded reads


@dataclass(frozen=True)
class Span:
    instance: str
    start: float
    end: float
    version: str | None


@dataclass
class Report:
    source: str
    integrity: Integrity
    run: Run | None
    timeline: list[Event] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    splits: list[Split] = field(default_factory=list)
    verdicts: list[GateEvaluated] = field(default_factory=list)  # each window's closing verdict, or its failure
    samples: list[GateEvaluated] = field(default_factory=list)  # the judge's pooled view after each sample
    alerts: list[AlertRaised] = field(default_factory=list)
    commands: list[Command] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)  # warnings and errors
    clients: Clients | None = None
    versions: list[Span] = field(default_factory=list)
    health: dict[str, tuple[int, int]] = field(default_factory=dict)  # instance -> (passed, failed) since its last change
    end: float = 0.0


def shares(e: TrafficChanged) -> tuple[dict[str, float], bool]:
    """Percent per pool: nginx weights where set (the serving pool takes the
    rest), else the serving pool alone (blue-green), else by backend count
    (unweighted round robin)."""
    if e.weights:
        split = {p: float(w) for p, w in e.weights.items()}
        rest = 100.0 - sum(split.values())
        others = [p for p in e.pools if p not in split]
        serving = e.serving if e.serving in others else (others[0] if others else "")
        if serving and rest > 0:
            split[serving] = split.get(serving, 0.0) + rest
        return split, True
    if e.serving and e.serving in e.pools:
        return {e.serving: 100.0}, True
    total = sum(len(b) for b in e.pools.values())
    return ({p: 100.0 * len(b) / total for p, b in e.pools.items()} if total else {}), False


def _who(e: OperatorCommand, operator: Operator) -> str:
    s = e.sender or {}
    if s.get("user") or s.get("uid") is not None:
        who = str(s.get("user") or f"uid {s.get('uid')}")
        extra = [f"pid {s['pid']}"] if s.get("pid") else []
        if s.get("ssh_client"):
            extra.append(f"from {s['ssh_client']}")
        return who + (f" ({', '.join(extra)})" if extra else "")
    return f"{operator.label()} (the console's operator)"


def extract(journal: Journal, verification: Verification, source: str = "") -> Report:
    header = journal.header or Header()
    integrity = Integrity(verification.ok, verification.message, verification.final_hash,
                          journal.close is not None, journal.torn_tail,
                          verification.resumable)
    report = Report(source=source, integrity=integrity, run=None)
    operator = header.operator
    started: RunStarted | None = None
    finished: RunFinished | None = None
    step: StepStarted | None = None
    split: dict[str, float] = {}
    step_verdict: str | None = None
    versions: dict[str, tuple[float, str | None]] = {}
    health: dict[str, list[bool]] = {}
    pools: dict[str, list[int]] = {}
    running: ClientTraffic | None = None

    def close_step(at: float) -> None:
        if step is not None:
            report.steps.append(Step(step.index, step.total, step.title, step.at, at, dict(split), step_verdict))

    def set_version(instance: str, at: float, version: str | None) -> None:
        current = versions.get(instance)
        if current is None:
            versions[instance] = (at, version)
        elif current[1] != version:
            report.versions.append(Span(instance, current[0], at, current[1]))
            versions[instance] = (at, version)

    for e in journal.events:
        report.end = max(report.end, float(e.at))
        if isinstance(e, TIMELINE_KINDS) or (isinstance(e, GateEvaluated) and (e.final or e.verdict == "fail")) \
                or (isinstance(e, Notice) and e.level in ("warning", "error")):
            report.timeline.append(e)
        if isinstance(e, RunStarted):
            started = e
            for key, old in e.old_versions.items():
                set_version(key, e.at, old)
        elif isinstance(e, StepStarted):
            close_step(e.at)
            step, step_verdict = e, None
        elif isinstance(e, TrafficChanged):
            now, weighted = shares(e)
            report.splits.append(Split(e.at, dict(now), weighted))
            if step_verdict is None:  # after a window's verdict, a change belongs to what the verdict caused
                split = now
        elif isinstance(e, GateEvaluated):
            if e.values:
                report.samples.append(e)
            if e.final or e.verdict == "fail":
                step_verdict = e.verdict
                report.verdicts.append(e)
        elif isinstance(e, AlertRaised):
            report.alerts.append(e)
        elif isinstance(e, OperatorCommand):
            report.commands.append(Command(e.at, e.command, e.source, e.accepted, e.detail, _who(e, operator)))
        elif isinstance(e, Notice) and e.level in ("warning", "error"):
            report.notices.append(e)
        elif isinstance(e, InstanceChanged):
            if e.version is not None:
                set_version(e.instance, e.at, e.version)
            if e.phase in ("deploying", "restarting"):
                health[e.instance] = []  # what counts is how it answered since its last change
        elif isinstance(e, HealthChecked):
            if e.ok and e.version:
                set_version(e.instance, e.at, e.version)
            health.setdefault(e.instance, []).append(e.ok)
        elif isinstance(e, (MetricsSampled, ClientTraffic)):
            for pool, stats in e.pools.items():
                counts = pools.setdefault(pool, [0, 0])
                counts[0] += int(stats.get("requests", 0))
                counts[1] += int(stats.get("errors", 0))
            if isinstance(e, ClientTraffic):
                running = e
        elif isinstance(e, RunFinished):
            finished = e
            for key, version in e.versions.items():
                set_version(key, e.at, version)
    close_step(report.end)
    for instance, (at, version) in versions.items():
        report.versions.append(Span(instance, at, max(report.end, at), version))
    report.versions.sort(key=lambda s: (s.instance, s.start))
    # each instance's probes since its last deploy or restart: what the fleet was left with
    report.health = {k: (sum(oks), len(oks) - sum(oks)) for k, oks in health.items() if oks}
    if started is not None:
        olds = tuple(sorted({v for v in started.old_versions.values() if v}))
        report.run = Run(started.plan, started.strategy, started.service, started.version, olds,
                         len(started.instances), started.simulated, operator, header.argv,
                         header.started, dict(started.thresholds),
                         finished.outcome if finished else None, finished.message if finished else "",
                         finished.duration if finished else report.end,
                         journal.close.exit_code if journal.close else None)
    totals = (finished.clients if finished and finished.clients else
              {"requests": running.requests, "failed": running.failed} if running else None)
    if totals is not None:
        report.clients = Clients(int(totals.get("requests", 0)), int(totals.get("failed", 0)),
                                 int(totals["hidden"]) if "hidden" in totals else None,
                                 {p: (c[0], c[1]) for p, c in sorted(pools.items())})
    return report
