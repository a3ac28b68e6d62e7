"""One console session: load inputs, pick a driver, wire the subscribers
(journal, headless reporter or TUI) to the engine, run, and map the outcome
to an exit code. Shared by the headless and interactive paths."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path
from typing import Any, Awaitable, Callable

from inventory.errors import InputError
from inventory.loaders import embedded_fleet_path, load_inventory
from inventory.model import Inventory
from strategies.engine import Command, Engine, ResumeState, RunResult
from strategies import analysis
from strategies.events import EventBus
from strategies.plan import load_plan
from strategies.registry import runner_for
from strategies.topology import TopologyError, bluegreen_state, resolve_instances, rolling_state

from .exitcodes import FOR_OUTCOME, Exit
from .journal import JournalWriter, default_dir, make_header, operator_identity
from .redact import Redactor, secret_values


def tool_version() -> str:
    try:
        return dist_version("rollout-console")
    except PackageNotFoundError:
        return "0+unknown"


class UsageError(Exception):
    """Bad flags or inputs: exit 2, nothing touched."""


@dataclass
class Inputs:
    plan: Any
    inventory: Inventory
    plan_path: str
    inventory_path: str
    version: str


def load_inputs(plan_path: str, inventory_path: str | None, version: str | None) -> Inputs:
    """Load and cross-check plan and inventory; raise InputError/UsageError."""
    inv_path = str(inventory_path or embedded_fleet_path())
    plan = load_plan(plan_path, version_override=version)
    inventory = load_inventory(inv_path)
    if not plan.version:
        raise UsageError(f"{plan_path}: version: the plan names no version to ship; pass --version")
    try:
        resolve_instances(plan, inventory)
        inventory.group(plan.load_balancers)
    except TopologyError as exc:
        raise UsageError(f"{plan_path}: {exc}") from None
    except KeyError:
        raise UsageError(f"{plan_path}: load_balancers: inventory {inv_path} has no group "
                         f"{plan.load_balancers!r}") from None
    return Inputs(plan, inventory, plan_path, inv_path, plan.version)


def make_driver(inputs: Inputs, *, time_scale: float, accept_new_host_keys: bool):
    """The simulated fleet for a simulated inventory, SSH otherwise."""
    plan = inputs.plan
    if inputs.inventory.simulated:
        from inventory.simfleet import SimFleet

        instances = resolve_instances(plan, inputs.inventory)
        if plan.strategy == "blue_green":
            active = [i for i in instances if i.role == plan.blue_green.active]
            initial = bluegreen_state(plan, {plan.blue_green.active: active}, plan.blue_green.active, "sim-initial")
        else:
            initial = rolling_state(plan, instances, (), "sim-initial")
        driver = SimFleet(initial, time_scale=time_scale)
        driver.register_ports(instances)
        return driver
    if time_scale != 1.0:
        raise UsageError("--time-scale applies only to a simulated fleet")
    from inventory.sshfleet import SshFleet

    return SshFleet(nginx_config_path=plan.nginx.config, upstream=plan.nginx.upstream,
                    marker_port=plan.nginx.marker_port, accept_new_host_keys=accept_new_host_keys)


def journal_path(record: str | None, plan: Any, version: str) -> Path:
    if record:
        return Path(record)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{plan.name}-{version}")
    return default_dir() / f"{stamp}-{safe}-{os.getpid()}.jsonl"  # the pid: two runs in one second


class Session:
    """Everything one run needs, built before anything touches a host."""

    def __init__(self, inputs: Inputs, *, argv: list[str], record: str | None, time_scale: float = 1.0,
                 accept_new_host_keys: bool = False, interactive: bool = False, auto_promote: bool = False,
                 resume: ResumeState | None = None, lock_wait: float = 0.0, break_stale_lock: bool = False,
                 lock_max_age: float = 120.0):
        analysis.warm_up()  # before the event loop runs anything: see warm_up's docstring
        self.inputs = inputs
        self.simulated = inputs.inventory.simulated
        self.redactor = Redactor(secret_values(inputs.inventory, inputs.plan))
        self.bus = EventBus(transform=self.redactor)
        self.driver = make_driver(inputs, time_scale=time_scale, accept_new_host_keys=accept_new_host_keys)
        path = journal_path(record, inputs.plan, inputs.version)
        ident = operator_identity()
        holder = {"user": ident["user"], "host": ident["host"], "plan": str(Path(inputs.plan_path).resolve()),
                  "journal": str(path.resolve())}
        self.engine = Engine(inputs.plan, inputs.inventory, self.driver, version=inputs.version,
                             bus=self.bus, interactive=interactive, auto_promote=auto_promote, resume=resume,
                             lock_holder=holder, lock_wait=lock_wait, break_stale_lock=break_stale_lock,
                             lock_max_age=lock_max_age)
        self.runner = runner_for(inputs.plan)
        header = make_header(argv, inputs.plan_path, inputs.inventory_path, self.simulated,
                             self.redactor.text, tool_version())
        header["resumes"] = resume.journal if resume else None
        self.journal = JournalWriter.open_new(path, header)
        self.journal.on_error = lambda msg: self.engine.fail_stop(f"journal {path}: {msg}")
        self.bus.subscribe(self.journal)
        self.result: RunResult | None = None

    async def run(self) -> RunResult:
        self.result = await self.engine.run(self.runner)
        return self.result

    def finish(self, result: RunResult | None, error: str | None = None) -> dict[str, Any]:
        """Close the journal and build the result record."""
        if result is None:
            code, outcome, message = Exit.INTERNAL, "internal_error", error or "internal error"
        else:
            code, outcome, message = FOR_OUTCOME[result.outcome], result.outcome.value, result.message
        final_hash = self.journal.close(outcome, int(code))
        return {"outcome": outcome, "exit_code": int(code), "message": message,
                "simulated": self.simulated, "journal": str(self.journal.path), "journal_hash": final_hash,
                "versions": result.versions if result else {},
                "clients": self.engine.clients.as_dict()}


def install_interrupts(engine: Engine, on_signal: Callable[[str], None] = lambda name: None) -> None:
    """SIGINT, SIGTERM and SIGHUP (the operator's terminal or SSH session
    went away) stop the engine at the next safe point: every instance in
    nginx on one version, the journal closed, and `console resume` able to
    continue from there."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        def handler(sig=sig) -> None:
            on_signal(sig.name)
            engine.command(Command.ABORT, source=f"signal {sig.name}")
        loop.add_signal_handler(sig, handler)


async def finish_headless(session: Session, reporter, run: Awaitable[RunResult]) -> int:
    """Await a run with the headless reporter attached: interrupts stop it at
    a safe point, an internal error is reported and the journal still closed,
    and the result record ends the output. Returns the exit code."""
    install_interrupts(session.engine, lambda name: print(
        f"{name}: stopping at the next safe point", file=sys.stderr, flush=True))
    result, error = None, None
    try:
        result = await run
    except Exception as exc:  # noqa: BLE001 - report, close the journal, exit 1
        error = f"internal error: {exc!r}"
        print(error, file=sys.stderr)
    record = session.finish(result, error)
    reporter.result(record)
    return record["exit_code"]


def run_headless(session: Session, fmt: str) -> int:
    from .headless import HeadlessReporter

    reporter = HeadlessReporter(sys.stdout, fmt, session.simulated)
    session.bus.subscribe(reporter)
    return asyncio.run(finish_headless(session, reporter, session.run()))


__all__ = ["InputError", "Inputs", "Session", "UsageError", "load_inputs", "run_headless"]
