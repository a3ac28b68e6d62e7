"""A run's status and result as one typed record, built once.

The run's status (strategies/status.py's RunStatus, with what FleetView
derives from the same events: `FleetView.state()`) is a `RunState`: the same for a live run, an
ended one and a journal replayed up to any time. The control server answers
`status` with a `StatusRecord` (the state and what only a live process
knows: its pid, user, socket's run id, viewers); a run that ends leaves an
`EndedRecord` (that status and its `ResultRecord`, the session's closing
record the headless reporter prints and the TUI shows); `console replay
--status` prints a `ReplayStatus`.

Records are JSON on the wire and on disk, so they are TypedDicts: the keys
are the JSON keys scripts read (docs/cli.md), and a record read back is
checked against its declared types by `parse` (one line naming the field
when it is not) before anything reads it. Keys a console added later
(`NEWER`) default when an older console's file lacks them.
"""
from __future__ import annotations

import types
import typing
from typing import Any, Callable, Iterable, Literal, TypedDict, TypeGuard, TypeVar, Union, get_args, get_origin, get_type_hints


class StepRecord(TypedDict):
    """The strategy's position: its step, 1-based (0 before the first)."""

    index: int
    total: int
    title: str


class GateRecord(TypedDict):
    """The judge's last verdict and the seconds its window has left (None once decided)."""

    name: str
    verdict: str
    remaining: float | None


class InstanceRecord(TypedDict):
    """One instance, as the run's status has it (strategies/status.py InstanceStatus)."""

    version: str | None  # what it runs, as far as the run knows
    old_version: str | None  # what it ran before the run
    phase: str  # queued, deploying, ... (strategies/events.py InstancePhase)
    in_nginx: bool  # the LB state this run last applied routes to it
    served_before: bool  # nginx routed to it before the run
    healthy_at: float | None  # run seconds of its last passing probe
    excluded: str | None  # why a change held it out of nginx ("left_out"), or None


class RunState(TypedDict):
    """What the events say of a run, at their latest or at a replay's time."""

    strategy: str
    service: str
    version: str
    old_version: str
    simulated: bool
    phase: str
    phase_reason: str
    awaiting_promotion: bool
    step: StepRecord
    window: str | None  # the analysis window the judge has open
    out_of_nginx: list[str]  # served before the run, not routed now
    left_out: list[str]  # a change found them unverified and nginx still does not route to them
    gate: GateRecord | None
    weights: dict[str, float]  # percent of traffic per pool
    elapsed: float
    outcome: str | None  # strategies/status.py Outcome, once the run ended
    reason: str | None  # strategies/status.py Reason, once the run ended
    instances: dict[str, InstanceRecord]
    applies: dict[str, bool]  # which operator commands apply now
    rollback_plan: str  # what a rollback would do now
    abort_plan: str


class StatusRecord(RunState):
    """A live run's answer to `status` (`console status --output json`'s `live`)."""

    run_id: str
    pid: int
    user: str
    plan: str  # the plan's resolved path
    plan_name: str
    upstream: str
    journal: str  # the journal's resolved path
    started: str  # ISO 8601, UTC
    time_scale: float  # a SIMULATED clock's pace; 1 on real hosts
    viewers: int


class ResultRecord(TypedDict):
    """How a run ended: the session's closing record (the headless `result`
    line, the TUI's banner, a viewer's last line)."""

    outcome: str  # an Outcome, or "internal_error"
    exit_code: int
    message: str
    simulated: bool
    journal: str
    journal_hash: str
    versions: dict[str, str | None]
    clients: dict[str, int]  # the load's requests and failures seen by clients, when measured


class EndedRecord(StatusRecord):
    """An ended run's file (`<run id>.result.json`): its last status with its
    result over it (`console status --output json`'s `ended`)."""

    exit_code: int
    message: str
    journal_hash: str
    versions: dict[str, str | None]
    clients: dict[str, int]


class EndedRun(EndedRecord):
    """An ended run as `console status` lists it: its file, and when it was written."""

    ended: float  # epoch seconds


class ReplayStatus(RunState):
    """`console replay JOURNAL --status [--at SECONDS]`: the state rebuilt
    from the journal's events up to `at`."""

    journal: str
    plan: str  # the plan's path, as the journal's header names it
    user: str  # who ran it
    started: str
    at: float  # run seconds of the last event folded
    events: int  # how many events were folded


def has_ended(s: StatusRecord) -> TypeGuard[EndedRun]:
    """Whether a run `console status` lists has ended (its result is over its status)."""
    return "exit_code" in s


# -- reading a record back -----------------------------------------------------------------

# Keys a console added after records were first written, and what an older
# console's file means by leaving them out (result files are kept a day).
NEWER: dict[str, object] = {"window": None, "out_of_nginx": [], "left_out": [], "reason": None,
                            "instances": {}, "clients": {}}


class MalformedRecord(ValueError):
    """A record that is not what its type declares: the message names the field."""

    def __init__(self, problem: str, path: tuple[str, ...] = ()) -> None:
        where = "".join(p if p.startswith("[") else f".{p}" for p in path).lstrip(".")
        super().__init__(f"{where or 'the record'}: {problem}")
        self.problem, self.path = problem, path

    def under(self, step: str) -> MalformedRecord:
        """The same problem, seen one level further out (`step`: a key, or "[n]")."""
        return MalformedRecord(self.problem, (step, *self.path))


R = TypeVar("R")
Checker = Callable[[object], None]


def parse(kind: type[R], value: object) -> R:
    """`value` (a JSON reply or file, as read) checked to be a `kind`
    (a TypedDict above), with NEWER's defaults for keys it lacks; raises
    MalformedRecord naming the first field that is not as declared."""
    if isinstance(value, dict):
        value = {**{k: v for k, v in NEWER.items() if k in get_type_hints(kind)}, **value}
    _checker(kind)(value)
    return typing.cast(R, value)


def _name(value: object) -> str:
    return "null" if value is None else type(value).__name__


_CHECKERS: dict[object, Checker] = {}  # by type: made once (a 10,000-instance status checks 70,000 fields)


def _checker(hint: object) -> Checker:
    """A function that raises MalformedRecord unless its value is a `hint`
    (the types records use), made once per type."""
    if hint not in _CHECKERS:
        _CHECKERS[hint] = _make_checker(hint)
    return _CHECKERS[hint]


def _wrong(hint: object, value: object) -> MalformedRecord:
    return MalformedRecord(f"expected {_expected(hint)}, got {_name(value)} {str(value)[:40]!r}")


def _make_checker(hint: object) -> Checker:
    origin, args = get_origin(hint), get_args(hint)
    simple: dict[object, Callable[[object], bool]] = {
        type(None): lambda v: v is None, bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if hint in simple or origin is Literal:
        test = simple.get(hint) or (lambda v: isinstance(v, str) and v in args)

        def check_simple(value: object) -> None:
            if not test(value):
                raise _wrong(hint, value)
        return check_simple
    if origin in (Union, types.UnionType):
        options = [_checker(a) for a in args if a is not type(None)]
        nullable = type(None) in args

        def check_union(value: object) -> None:
            if value is None and nullable:
                return
            if len(options) == 1:  # X | None: what is wrong with the X
                options[0](value)
                return
            for option in options:
                try:
                    option(value)
                    return
                except MalformedRecord:
                    continue
            raise _wrong(hint, value)
        return check_union
    if origin is list:
        return _each(list, "a list", lambda v: ((f"[{n}]", x) for n, x in enumerate(v)), _checker(args[0]))
    if origin is dict:
        return _each(dict, "an object", lambda v: ((str(k), x) for k, x in v.items()), _checker(args[1]))
    if isinstance(hint, type) and typing.is_typeddict(hint):
        required: frozenset[str] = getattr(hint, "__required_keys__", frozenset())
        fields = [(key, _checker(h), key in required) for key, h in get_type_hints(hint).items()]

        def check_record(value: object) -> None:
            if not isinstance(value, dict):
                raise MalformedRecord(f"expected an object, got {_name(value)}")
            for key, check, needed in fields:
                if key not in value:
                    if needed:
                        raise MalformedRecord("missing", (key,))
                    continue
                try:
                    check(value[key])
                except MalformedRecord as exc:
                    raise exc.under(key) from None
        return check_record
    raise TypeError(f"cannot check {hint!r}")  # a type this checker was not taught: a bug here


def _each(kind: type[list[object]] | type[dict[object, object]], expected: str,
          entries: Callable[[Any], Iterable[tuple[str, object]]], inner: Checker) -> Checker:
    """A checker of a container: `kind`, and `inner` holds for each of its
    `entries` (a step of the path, the value), the path naming the first
    that does not."""
    def check(value: object) -> None:
        if not isinstance(value, kind):
            raise MalformedRecord(f"expected {expected}, got {_name(value)}")
        for step, each in entries(value):
            try:
                inner(each)
            except MalformedRecord as exc:
                raise exc.under(step) from None
    return check


def _expected(hint: object) -> str:
    if get_origin(hint) is Literal:
        return " or ".join(repr(a) for a in get_args(hint))
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_expected(a) for a in get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))
