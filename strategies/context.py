"""The contract between the engine and a strategy.

A strategy (rolling.py, canary.py, bluegreen.py) sequences operations; it
does not own them. It receives a `StrategyContext`: the plan, the event
stream, and four narrow protocols, and may touch nothing else.

- `Control`   commands and safe points, waits, promotion (control.py)
- `Traffic`   apply, restore and read the load balancers' state (traffic.py)
- `Instances` probe, drain, update, revert, verify, retire (instances.py)
- `Analysis`  judge a window of live samples, guard capacity (gating.py)

The engine (engine.py) builds the four from one fleet driver and runs the
loop around the strategy: lock, preflight, the on_failure policy, rollback,
the final result. Like Argo Rollouts' rolloutContext, the context is what a
strategy may do; unlike it, every decision inside (batches, weights,
verdicts) is a pure function tested without I/O.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Protocol, Sequence

from inventory.model import Instance
from inventory.nginx_config import LbState

from .capacity import CapacityCheck
from .events import Emit, InstancePhase, StepRecord
from .plan import Plan


class Control(Protocol):
    @property
    def promote_full(self) -> bool:
        """The operator asked to skip every remaining step."""

    async def safe_point(self) -> None:
        """Honour a pending pause, rollback, abort or critical alarm. Call
        only where every instance serves on one version or is out of nginx."""

    async def wait(self, seconds: float, promotable: bool = False) -> None:
        """Sleep on the engine clock, at a safe point throughout."""

    async def wait_for_promotion(self, title: str) -> bool:
        """An indefinite pause until promoted (exit 7 headless)."""

    def undisturbed(self) -> bool:
        """Nothing waits for a safe point: the run may go on without one."""


class Traffic(Protocol):
    def next_generation(self) -> str:
        """A fresh generation id for the next LB state."""

    async def apply(self, state: LbState) -> None:
        """Route as `state` says, to verified instances only."""

    async def restore(self) -> None:
        """Put the original managed file back, byte for byte."""

    def routes(self, inst: Instance) -> bool:
        """Does nginx send traffic to `inst` (as the run found it, then as its last change set it)?"""


class Instances(Protocol):
    all: list[Instance]
    by_key: dict[str, Instance]
    version: str

    @property
    def versions(self) -> Mapping[str, str | None]:
        """What each instance runs now, as far as the run knows (None: unknown or unhealthy)."""

    @property
    def old_versions(self) -> Mapping[str, str | None]:
        """What each instance ran before the run (InstanceOps.start_from): read only."""

    def mark(self, inst: Instance, phase: InstancePhase, detail: str = "") -> None:
        """Tell the views what this instance is doing now."""

    async def drain(self, insts: Sequence[Instance]) -> None: ...

    async def update_all(self, insts: Sequence[Instance], version: str) -> dict[str, tuple[bool, str]]:
        """Deploy, restart and wait healthy: (ok, detail) by instance key."""

    async def revert(self, insts: Iterable[Instance]) -> dict[str, str]:
        """Back to the old version: the problems left, by instance key."""

    async def verify_old(self, insts: Sequence[Instance]) -> dict[str, str]:
        """The old version healthy where traffic now goes, reinstalled where not."""

    async def retire(self, insts: Sequence[Instance]) -> None:
        """Stop units that no longer take traffic."""


@dataclass(frozen=True)
class NextDrain:
    """The drain that follows an analysis window (the next rolling batch):
    the capacity guard's question, asked during the window as soon as an
    instance that should serve is found down."""

    title: str
    should_serve: Sequence[Instance]
    batch: Sequence[Instance]
    floor: int


class Analysis(Protocol):
    async def gate(self, name: str, seconds: float, judged: Sequence[Instance],
                   baseline: Sequence[Instance] = (), where: str = "new", drain_next: NextDrain | None = None,
                   ) -> None:
        """Judge a window; GateFailed when the release fails it."""

    async def guard_capacity(self, title: str, should_serve: Sequence[Instance], batch: Sequence[Instance],
                             floor: int) -> None:
        """Refuse to drain `batch` when too few would be left serving."""

    async def capacity(self, should_serve: Sequence[Instance], batch: Sequence[Instance],
                       floor: int) -> CapacityCheck:
        """Would draining `batch` leave enough serving? (journalled, not acted on)"""


@dataclass(frozen=True)
class StrategyContext:
    plan: Plan
    emit: Emit  # emit(EventType(**fields)): publish on the run's event stream
    control: Control
    traffic: Traffic
    instances: Instances
    analysis: Analysis


@dataclass(frozen=True)
class PlannedStep:
    title: str
    instances: tuple[str, ...] = ()

    def to_dict(self) -> StepRecord:
        return {"title": self.title, "instances": list(self.instances)}


class StrategyRunner:
    """What a strategy provides to the engine."""

    def steps(self, plan: Plan, instances: Sequence[Instance]) -> list[PlannedStep]:
        """The planned steps, each with the instance keys it changes."""
        raise NotImplementedError

    def serving_at_start(self, plan: Plan, instances: Sequence[Instance]) -> list[Instance]:
        """The instances the plan expects nginx to route to before the run."""
        return list(instances)

    async def run(self, ctx: StrategyContext) -> str:
        raise NotImplementedError

    async def rollback(self, ctx: StrategyContext) -> list[str]:
        """Return the fleet to the old version; the problems left, if any."""
        raise NotImplementedError

    async def abort(self, ctx: StrategyContext) -> None:
        """Stop safely: nothing drained, traffic on the safest pool."""
        raise NotImplementedError

    async def hold(self, ctx: StrategyContext) -> None:
        """Leave the fleet serving as it is while waiting for promotion."""
