"""FleetView: the pure event -> state reducer behind the interactive console.

Everything the TUI shows is derived here from the event stream and nothing
else (no Textual, no clock, no engine), so replaying a journal's events
through a fresh FleetView reproduces exactly what the operator saw. The TUI
reads it at a fixed refresh rate; `revision` tells it whether anything
changed since the last tick.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, TypedDict

from inventory.json_types import JSONObject
from strategies.control import AWAITING_PROMOTION, Command
from strategies.events import (
    AlertRaised,
    CommandRan,
    Event,
    FindingRecord,
    GateEvaluated,
    HealthChecked,
    InstanceChanged,
    InstancePhase,
    MetricsSampled,
    OperatorCommand,
    Phase,
    PhaseChanged,
    RunFinished,
    RunStarted,
    StepStarted,
    TrafficChanged,
)
from strategies.status import RunStatus
from strategies.topology import Pool

from .headless import describe
from .status_record import RunState

EVENT_LOG_LIMIT = 500
COMMANDS_PER_HOST = 50
HEALTH_PER_INSTANCE = 30
METRIC_HISTORY = 120
ALERT_LIMIT = 200
JUDGE_SAMPLES = 400  # a window's samples kept for its panel (max_window 900 s at 5 s is 180)
TIER_ORDER = {"critical": 0, "important": 1, "warning": 2}
ACTIVE_PHASES = {Phase.PREFLIGHT, Phase.RUNNING, Phase.PAUSED, Phase.ANALYSING, Phase.ROLLING_BACK}
# Phases in which the engine has not yet reached a safe point for a pending command.
WORKING_PHASES = {Phase.RUNNING, Phase.ANALYSING, Phase.PREFLIGHT}
NEW_POOLS = {Pool.CANARY}
COMMANDS = tuple(c.value for c in Command)


@dataclass
class InstanceRow:
    key: str
    host: str
    address: str = ""
    port: int | None = None
    unit: str = ""
    group: str = ""
    version: str | None = None
    old_version: str | None = None
    state: str = "queued"
    step: int | None = None
    detail: str = ""
    health_ok: bool | None = None
    latency: float | None = None
    cpu: float | None = None
    last_check: float | None = None


@dataclass
class Alert:
    tier: str
    metric: str
    value: float
    threshold: float
    where: str
    at: float


@dataclass
class Gate:
    name: str
    verdict: str
    remaining: float
    at: float
    reasons: list[str] = field(default_factory=list)
    values: dict[str, float | None] = field(default_factory=dict)
    final: bool = False


@dataclass
class JudgeWindow:
    """The analysis window the judge is deciding (or last decided): its
    pooled values after each sample, as the judge's panel draws them."""

    name: str
    samples: list[tuple[float, dict[str, float | None]]] = field(default_factory=list)
    verdict: str = "pending"
    final: bool = False
    findings: list[FindingRecord] = field(default_factory=list)
    revision: int = 0  # bumped by every gate event of this window: the panel redraws on a change


class CommandLine(TypedDict):
    """A command the run ran on a host, as the detail screen lists it (CommandRan)."""

    at: float
    command: str
    exit_status: int | None
    duration: float
    stdout: str
    stderr: str


class OperatorLine(TypedDict):
    """An operator's command and the run's answer (OperatorCommand)."""

    at: float
    command: str
    source: str
    accepted: bool
    detail: str


class FleetView:
    """Apply events in order with `apply`; read the attributes."""

    def __init__(self) -> None:
        self.revision = 0
        self.plan = ""
        self.strategy = ""
        self.service = ""
        self.version = ""
        self.old_version = ""
        self.simulated = False
        self.inventory_engine = ""  # what read a given --inventory ("" for the embedded fleet)
        self.time_scale = 1.0  # a SIMULATED clock's pace (--time-scale): the header says xN
        self.status = RunStatus()  # the run's status, folded from the same events (strategies/status.py)
        self.phase_reason = ""
        self.awaiting_promotion = False  # paused at a manual gate: promote goes on, resume does not
        self.pending: str | None = None  # an accepted pause/rollback/abort not yet at its safe point
        self.started = False
        self.elapsed = 0.0
        self.step_starts: list[float] = []
        self.run_started_at: float | None = None
        self.planned_steps: list[str] = []
        self.rows: dict[str, InstanceRow] = {}
        self.by_host: dict[str, list[str]] = {}
        self.by_backend: dict[str, str] = {}
        self.gate: Gate | None = None
        self.judge: JudgeWindow | None = None
        self.traffic_pools: dict[str, int] = {}
        self.traffic_weights: dict[str, float] = {}
        self.traffic_generation = ""
        self.active_group: str | None = None
        self.new_group: str | None = None
        self.alerts: list[Alert] = []
        self.error_rate: deque[float] = deque(maxlen=METRIC_HISTORY)
        self.p95: deque[float] = deque(maxlen=METRIC_HISTORY)
        self.cpu: deque[float] = deque(maxlen=METRIC_HISTORY)
        self.events: deque[tuple[float, str, str]] = deque(maxlen=EVENT_LOG_LIMIT)
        self.events_total = 0
        self.commands: dict[str, deque[CommandLine]] = {}
        self.health: dict[str, deque[tuple[float, bool, float, str]]] = {}
        self.operator: list[OperatorLine] = []
        self.outcome_message = ""
        self.thresholds: JSONObject = {}  # the plan's, as RunStarted records them

    # -- reducer -----------------------------------------------------------
    def apply(self, event: Event) -> None:
        self.revision += 1
        self.elapsed = max(self.elapsed, float(event.at))
        self.status.apply(event)
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)
        text = describe(event)
        if text is not None:
            self.events.append((event.at, event.kind, text))
            self.events_total += 1

    def apply_all(self, events: Iterable[Event]) -> FleetView:
        for event in events:
            self.apply(event)
        return self

    def _on_RunStarted(self, e: RunStarted) -> None:
        self.started = True
        self.run_started_at = e.at
        self.plan, self.strategy, self.service, self.version = e.plan, e.strategy, e.service, e.version
        self.simulated = e.simulated
        self.thresholds = dict(e.thresholds)
        olds = Counter(v for v in e.old_versions.values() if v)
        self.old_version = olds.most_common(1)[0][0] if olds else "?"
        self.planned_steps = [s.get("title", "") for s in e.steps]
        step_of = {k: n for n, s in enumerate(e.steps, 1) for k in s.get("instances", [])}
        for inst in e.instances:
            key = inst.key
            old = e.old_versions.get(key)
            row = InstanceRow(key=key, host=inst.host or key, address=inst.address,
                              port=inst.port, unit=inst.unit, group=inst.slot,
                              version=old, old_version=old, step=step_of.get(key),
                              state=("live" if old else "standby") if e.strategy == "blue_green" else "queued")
            self.rows[key] = row
            self.by_host.setdefault(row.host, []).append(key)
            self.by_backend[f"{row.address}:{row.port}"] = key
        if e.strategy == "blue_green":
            live = Counter(r.group for r in self.rows.values() if r.old_version)
            groups = {r.group for r in self.rows.values()}
            self.active_group = live.most_common(1)[0][0] if live else None
            others = sorted(groups - {self.active_group})
            self.new_group = others[0] if others else None

    def _on_PhaseChanged(self, e: PhaseChanged) -> None:
        self.phase_reason = e.reason
        self.awaiting_promotion = e.awaiting_promotion
        if e.phase not in WORKING_PHASES:
            self.pending = None  # the safe point was reached (paused, rolling back) or the run ended

    def _on_StepStarted(self, e: StepStarted) -> None:
        self.step_starts.append(e.at)
        for key in e.instances:
            if key in self.rows:
                self.rows[key].step = e.index

    def _on_InstanceChanged(self, e: InstanceChanged) -> None:
        row = self.rows.get(e.instance)
        if row is None:
            row = self.rows[e.instance] = InstanceRow(key=e.instance, host=e.instance.split("/")[0])
            self.by_host.setdefault(row.host, []).append(e.instance)
        row.state, row.detail = e.phase.value, e.detail
        if e.version is not None or e.phase == InstancePhase.DEPLOYING:
            row.version = e.version if e.version is not None else row.version

    def _on_HealthChecked(self, e: HealthChecked) -> None:
        row = self.rows.get(e.instance)
        if row is not None:
            row.health_ok, row.latency, row.last_check = e.ok, e.latency, e.at
            if e.ok and e.version:
                row.version = e.version
        hist = self.health.setdefault(e.instance, deque(maxlen=HEALTH_PER_INSTANCE))
        hist.append((e.at, e.ok, e.latency, e.detail))

    def _on_CommandRan(self, e: CommandRan) -> None:
        hist = self.commands.setdefault(e.host, deque(maxlen=COMMANDS_PER_HOST))
        hist.append({"at": e.at, "command": e.command, "exit_status": e.exit_status, "duration": e.duration,
                     "stdout": e.stdout, "stderr": e.stderr})

    def _on_TrafficChanged(self, e: TrafficChanged) -> None:
        self.traffic_generation = e.generation
        self.traffic_pools = {p: len(b) for p, b in e.pools.items()}
        self.traffic_weights = {p: float(w) for p, w in e.weights.items()}
        if self.strategy == "blue_green":
            if e.serving in e.pools:
                self.active_group = e.serving
            elif len(e.pools) == 1:  # a journal from before `serving`: only the retire step is certain
                self.active_group = next(iter(e.pools))
            return
        for pool, backends in e.pools.items():
            for backend in backends:
                key = self.by_backend.get(backend)
                if key is not None:
                    self.rows[key].group = pool

    def _on_MetricsSampled(self, e: MetricsSampled) -> None:
        for name, value in e.cpu.items():  # by instance (journals before 0.2: by host)
            for key in ([name] if name in self.rows else self.by_host.get(name, ())):
                self.rows[key].cpu = value
        pools = e.pools
        new = [p for p in pools if p in NEW_POOLS or (self.new_group and p == self.new_group)]
        chosen = [pools[p] for p in (new or list(pools))]
        requests = sum(s.get("requests", 0) for s in chosen)
        errors = sum(s.get("errors", 0) for s in chosen)
        self.error_rate.append(errors / requests if requests else 0.0)
        self.p95.append(max((s.get("p95", 0.0) for s in chosen), default=0.0))
        cpus = [c for c in e.cpu.values() if c is not None]
        self.cpu.append(sum(cpus) / len(cpus) if cpus else 0.0)

    def _on_GateEvaluated(self, e: GateEvaluated) -> None:
        self.gate = Gate(e.name, e.verdict, e.remaining, e.at, list(e.reasons), dict(e.values), e.final)
        window = self.judge
        if window is None or window.name != e.name or window.final:
            window = self.judge = JudgeWindow(e.name)
        if e.values:  # an operator's promote closes a window without a sample
            window.samples.append((e.at, dict(e.values)))
            del window.samples[:-JUDGE_SAMPLES]
        window.verdict, window.final, window.findings = e.verdict, e.final, list(e.findings)
        window.revision += 1

    def _on_AlertRaised(self, e: AlertRaised) -> None:
        where = f"{e.instance} ({e.where})" if e.instance else e.where  # an instance down: name it first
        self.alerts.append(Alert(e.tier, e.metric, e.value, e.threshold, where, e.at))
        del self.alerts[:-ALERT_LIMIT]

    def _on_OperatorCommand(self, e: OperatorCommand) -> None:
        self.operator.append({"at": e.at, "command": e.command, "source": e.source, "accepted": e.accepted,
                              "detail": e.detail})
        del self.operator[:-50]
        if e.accepted:
            self.expect_command(e.command)

    def expect_command(self, command: str) -> str | None:
        """An operator's command on its way to the engine: show its effect
        now, as its accepted OperatorCommand will. Returns `pending` after."""
        if command in ("pause", "rollback", "abort"):
            self.pending = command if self.pending in (None, "pause") else self.pending
        elif command in ("resume", "promote", "promote_full") and self.pending == "pause":
            self.pending = None
        self.revision += 1
        return self.pending

    def _on_RunFinished(self, e: RunFinished) -> None:
        self.outcome_message = e.message
        self.elapsed = max(self.elapsed, e.duration)
        for key, version in e.versions.items():
            if key in self.rows:
                self.rows[key].version = version

    # -- derived -------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self.status.phase.value

    @property
    def step_index(self) -> int:
        return self.status.position.index

    @property
    def steps_total(self) -> int:
        return self.status.position.total

    @property
    def step_title(self) -> str:
        return self.status.position.title

    @property
    def outcome(self) -> str | None:
        return self.status.outcome.value if self.status.outcome is not None else None

    @property
    def active(self) -> bool:
        return self.outcome is None and self.phase in ACTIVE_PHASES

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def steps_done(self) -> int:
        if self.finished and self.outcome == "succeeded":
            return self.steps_total
        return max(0, self.step_index - 1)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left, from the mean duration of the completed steps."""
        if self.finished or not self.step_starts or self.steps_done == 0:
            return None
        now = self.elapsed if now is None else now
        done = self.steps_done
        mean = (self.step_starts[-1] - self.step_starts[0]) / done
        left = (self.steps_total - done) * mean - (now - self.step_starts[-1])
        return max(0.0, left)

    def gate_remaining(self, now: float | None = None) -> float | None:
        if self.gate is None or self.gate.final:
            return None
        now = self.elapsed if now is None else now
        return max(0.0, self.gate.remaining - max(0.0, now - self.gate.at))

    def traffic_split(self) -> dict[str, float]:
        """Percent of traffic per pool now."""
        if self.traffic_weights:
            return dict(self.traffic_weights)
        if self.strategy == "blue_green" and self.active_group:
            return {self.active_group: 100.0}
        if len(self.traffic_pools) == 1:
            return {next(iter(self.traffic_pools)): 100.0}
        return {}

    def new_share(self) -> float:
        split = self.traffic_split()
        new = NEW_POOLS | ({self.new_group} if self.new_group else set())
        return sum(w for p, w in split.items() if p in new)

    def sorted_alerts(self) -> list[Alert]:
        """Most severe first, newest first within a tier."""
        return sorted(self.alerts, key=lambda a: (TIER_ORDER.get(a.tier, 9), -a.at))

    def state_counts(self) -> Counter[str]:
        return Counter(r.state for r in self.rows.values())

    def changed_instances(self) -> list[InstanceRow]:
        """Instances already moved to the new version (what a rollback undoes)."""
        return [r for r in self.rows.values()
                if r.version == self.version and r.old_version != self.version and r.old_version]

    def rollback_plan(self) -> str:
        """What a rollback would do now, in one or two sentences."""
        old, new = self.old_version or "the old version", self.version
        changed = [r for r in self.rows.values() if r.version == new and r.old_version and r.old_version != new]
        if self.strategy == "canary":
            return (f"All traffic returns to stable ({old}); {len(changed)} canary instance(s) are "
                    f"reinstalled with {old}.")
        if self.strategy == "blue_green":
            back = next((g for g in {r.group for r in self.rows.values() if r.old_version}), "the old colour")
            if self.active_group and self.active_group != back:
                return (f"Traffic switches back to {back} ({old}); {self.active_group} ({new}) stops "
                        f"taking traffic.")
            return f"Traffic stays on {back} ({old}); the idle colour is not switched to {new}."
        return (f"{len(changed)} instance(s) already on {new} are reinstalled with {old}, one batch at a time, "
                f"out of nginx while they change; the rest are not touched.")

    def abort_plan(self) -> str:
        changed = sum(1 for r in self.rows.values() if r.version == self.version and r.old_version != self.version)
        return (f"The rollout stops at the next safe point: nothing more is deployed and traffic stays on the "
                f"safest pool. {changed} instance(s) already on {self.version} stay on it (no rollback).")

    def command_refusal(self, action: str) -> str | None:
        """Why an operator command does not apply now, or None if it does.
        One rule for the TUI's footer and for commands sent over the
        control socket, so both offer exactly the same things."""
        if not self.active:
            return "the run has finished" if self.finished else "the run is not active"
        phase, pending = self.phase, self.pending
        if pending in ("rollback", "abort") and action != "abort":
            return f"already stopping ({pending} at the next safe point)"
        if action in ("pause", "resume") and phase == Phase.PAUSED and self.awaiting_promotion:
            return AWAITING_PROMOTION
        if action == "pause":
            if pending == "pause":
                return "already pausing at the next safe point"
            return None if phase in (Phase.RUNNING, Phase.ANALYSING) else (
                "already paused" if phase == Phase.PAUSED else f"nothing to pause while {phase}")
        if action == "resume":
            return None if phase == Phase.PAUSED or pending == "pause" else "not paused"
        if action in ("promote", "promote_full"):
            if self.strategy not in ("canary", "blue_green"):
                return f"a {self.strategy or 'run'} plan has no step to promote"
            return None if phase in (Phase.RUNNING, Phase.ANALYSING, Phase.PAUSED) else f"no step to promote while {phase}"
        if action == "rollback":
            return None if phase in (Phase.RUNNING, Phase.ANALYSING, Phase.PAUSED) else f"cannot roll back while {phase}"
        if action == "abort":
            return "already aborting" if pending == "abort" else None
        return f"unknown command {action!r}"

    def state(self) -> RunState:
        """The run as a status record (console/status_record.py): its
        RunStatus and what this view derives, as `console status` and
        `console replay --status` print it."""
        run, gate = self.status, self.gate
        return {
            "strategy": self.strategy, "service": self.service, "version": self.version,
            "old_version": self.old_version, "simulated": self.simulated,
            "phase": run.phase.value, "phase_reason": self.phase_reason, "awaiting_promotion": self.awaiting_promotion,
            "step": {"index": run.position.index, "total": run.position.total, "title": run.position.title},
            "window": run.window, "out_of_nginx": run.out_of_nginx(), "left_out": run.still_left_out(),
            "gate": {"name": gate.name, "verdict": gate.verdict, "remaining": self.gate_remaining()} if gate else None,
            "weights": self.traffic_split(), "elapsed": round(self.elapsed, 1),
            "outcome": self.outcome, "reason": run.reason.value if run.reason is not None else None,
            "instances": {k: {"version": i.version, "old_version": i.old_version, "phase": i.phase.value,
                              "in_nginx": i.in_nginx, "served_before": i.served_before, "healthy_at": i.healthy_at,
                              "excluded": i.excluded.value if i.excluded is not None else None}
                          for k, i in run.instances.items()},
            "applies": self.applies(), "rollback_plan": self.rollback_plan(), "abort_plan": self.abort_plan(),
        }

    def applies(self) -> dict[str, bool]:
        """Which operator commands apply now (command_refusal gives why not)."""
        return {c: self.command_refusal(c) is None for c in COMMANDS}

    def snapshot(self) -> dict[str, object]:
        """Everything as plain data (replay equivalence, debugging)."""
        return {
            "plan": self.plan, "strategy": self.strategy, "service": self.service, "version": self.version,
            "old_version": self.old_version, "simulated": self.simulated, "phase": self.phase,
            "phase_reason": self.phase_reason, "pending": self.pending, "elapsed": self.elapsed, "eta": self.eta(),
            "steps": [self.steps_done, self.steps_total, self.step_index, self.step_title],
            "rows": {k: asdict(r) for k, r in self.rows.items()},
            "gate": asdict(self.gate) if self.gate else None,
            "judge": asdict(self.judge) if self.judge else None,
            "traffic": [self.traffic_generation, self.traffic_pools, self.traffic_split(), self.active_group],
            "alerts": [asdict(a) for a in self.alerts],
            "metrics": [list(self.error_rate), list(self.p95), list(self.cpu)],
            "events": list(self.events), "events_total": self.events_total,
            "commands": {h: list(c) for h, c in self.commands.items()},
            "health": {k: list(v) for k, v in self.health.items()},
            "operator": list(self.operator), "outcome": [self.outcome, self.outcome_message],
        }


__all__ = ["Alert", "FleetView", "Gate", "InstanceRow", "JudgeWindow"]


# Which reducer step each event kind feeds: explicit, so a renamed event or
# method fails here at import time instead of silently never updating a view.
HANDLERS: dict[type[Event], Callable[[FleetView, Any], None]] = {
    RunStarted: FleetView._on_RunStarted,
    PhaseChanged: FleetView._on_PhaseChanged,
    StepStarted: FleetView._on_StepStarted,
    InstanceChanged: FleetView._on_InstanceChanged,
    HealthChecked: FleetView._on_HealthChecked,
    CommandRan: FleetView._on_CommandRan,
    TrafficChanged: FleetView._on_TrafficChanged,
    MetricsSampled: FleetView._on_MetricsSampled,
    GateEvaluated: FleetView._on_GateEvaluated,
    AlertRaised: FleetView._on_AlertRaised,
    OperatorCommand: FleetView._on_OperatorCommand,
    RunFinished: FleetView._on_RunFinished,
}
