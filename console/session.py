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
from pathlib import Path
from typing import Awaitable, Callable

from inventory.driver import FleetDriver
from inventory.errors import InputError
from inventory.loaders import embedded_fleet_path, load_inventory, read_inventory
from inventory.model import Instance, Inventory
from strategies import analysis
from strategies.bluegreen import live
from strategies.control import Command
from strategies.engine import Engine, Resume, RunResult
from strategies.errors import PlanError
from strategies.events import Event, EventBus, Notice, Sender
from strategies.plan import Plan, field_line, load_plan
from strategies.registry import runner_for
from strategies.status import Outcome, RunStatus
from strategies.topology import (
    TopologyError,
    adoptable,
    bluegreen_state,
    load_balancers,
    resolve_instances,
    rolling_state,
)

from .control.server import ControlServer
from .detach import DEFAULT_ON_HANGUP, leave_terminal, quiet_stdio
from .exitcodes import Exit
from .headless import HeadlessReporter
from .journal import JournalWriter, default_dir, make_header, operator_identity
from .notify import Notifier
from .redact import Redactor, secret_values
from .status_record import ResultRecord
from .version import tool_version

FOR_OUTCOME = {
    Outcome.SUCCEEDED: Exit.OK,
    Outcome.ROLLED_BACK: Exit.ROLLED_BACK,
    Outcome.FAILED: Exit.FAILED,
    Outcome.ABORTED: Exit.ABORTED,
    Outcome.REFUSED: Exit.REFUSED,
    Outcome.AWAITING_PROMOTION: Exit.PAUSED,
}


class UsageError(Exception):
    """Bad flags or inputs: exit 2, nothing touched."""


@dataclass
class Inputs:
    plan: Plan
    inventory: Inventory
    plan_path: str
    inventory_path: str
    version: str
    inventory_given: bool = False  # False: the embedded fleet
    untouched: tuple[Instance, ...] = ()  # the upstream's instances a --limit left out (cli_run.load_limited)


def read_plan_and_inventory(plan_path: str, inventory_path: str | None, version: str | None, *,
                            judge_shadow: bool = False) -> tuple[Plan, Inventory, str]:
    """(plan, inventory, inventory path) as read, not yet cross-checked.
    `judge_shadow` (--judge-shadow) sets the plan's analysis.shadow."""
    inv_path = str(inventory_path or embedded_fleet_path())
    plan = load_plan(plan_path, version_override=version)
    if judge_shadow:
        plan = plan.model_copy(update={"analysis": plan.analysis.model_copy(update={"shadow": True})})
    # --inventory built-in where that reads it as stock Ansible does, else
    # through ansible-core when installed (read_inventory says when;
    # ROLLOUT_INVENTORY_ENGINE=built-in|ansible to choose); the embedded fleet is ours
    inventory = (read_inventory(inv_path, os.environ.get("ROLLOUT_INVENTORY_ENGINE", "auto"))
                 if inventory_path else load_inventory(inv_path))
    return plan, inventory, inv_path


def load_inputs(plan_path: str, inventory_path: str | None, version: str | None, *,
                judge_shadow: bool = False) -> Inputs:
    """Load and cross-check plan and inventory; raise InputError/UsageError."""
    plan, inventory, inv_path = read_plan_and_inventory(plan_path, inventory_path, version, judge_shadow=judge_shadow)
    if not plan.version:
        raise UsageError(f"{plan_path}: version: the plan names no version to ship; pass --release VERSION")
    try:
        resolve_instances(plan, inventory)
        load_balancers(plan, inventory)
    except TopologyError as exc:
        line = field_line(plan_path, tuple(exc.field.split(".")))
        default = "" if line is not None else " (the plan does not set it: this is the default)"
        raise PlanError(plan_path, line, exc.field, exc.message + default) from None
    return Inputs(plan, inventory, plan_path, inv_path, plan.version, inventory_given=bool(inventory_path))


def limit_inputs(inputs: Inputs, limit: str) -> Inputs:
    """The inventory cut to the hosts `limit` selects (Ansible's pattern
    syntax; the plan's load balancers always kept), and the upstream's
    instances it leaves out in `untouched`: the run leaves them serving and
    never touches them."""
    from dataclasses import replace

    from inventory.limit import LimitError, limited

    lbs = inputs.inventory.groups.get(inputs.plan.load_balancers, ())
    cut = limited(inputs.inventory, limit, keep=lbs)
    try:
        kept = {i.key for i in resolve_instances(inputs.plan, cut)}
    except TopologyError:
        raise LimitError(f"{limit!r} leaves none of the plan's hosts (group {inputs.plan.hosts!r}): "
                         f"only load balancers") from None
    untouched = tuple(i for i in resolve_instances(inputs.plan, inputs.inventory) if i.key not in kept)
    return replace(inputs, inventory=cut, untouched=untouched)


def make_driver(inputs: Inputs, *, time_scale: float, accept_new_host_keys: bool) -> FleetDriver:
    """The simulated fleet for a simulated inventory, SSH otherwise."""
    plan = inputs.plan
    if inputs.inventory.simulated:
        from inventory.simfleet import SimFleet

        instances = resolve_instances(plan, inputs.inventory) + list(inputs.untouched)  # all serve in its nginx
        running = ("main", "blue")
        if plan.strategy == "blue_green":
            colour = live(plan)
            active = [i for i in instances if i.colour == colour]
            initial = bluegreen_state(plan, {colour: active}, colour, "sim-initial")
            running = ("main", getattr(plan.blue_green, colour))  # the live colour serves, like the LB says
        else:
            initial = rolling_state(plan, instances, (), "sim-initial")
        driver = SimFleet(initial, time_scale=time_scale, running_slots=running)
        driver.register_ports(instances + adoptable(plan, instances))  # main answers too, as on a fresh sandbox
        return driver
    if time_scale != 1.0:
        raise UsageError("--time-scale applies only to a simulated fleet")
    from inventory.sshfleet import SshFleet

    return SshFleet(nginx_config_path=plan.nginx.config, upstream=plan.nginx.upstream,
                    marker_port=plan.nginx.marker_port, accept_new_host_keys=accept_new_host_keys)


def journal_path(record: str | None, plan: Plan, version: str) -> Path:
    if record:
        return Path(record)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{plan.name}-{version}")
    return default_dir() / f"{stamp}-{safe}-{os.getpid()}.jsonl"  # the pid: two runs in one second


class Session:
    """Everything one run needs, built before anything touches a host."""

    def __init__(self, inputs: Inputs, *, argv: list[str], record: str | None, time_scale: float = 1.0,
                 accept_new_host_keys: bool = False, interactive: bool = False, auto_promote: bool = False,
                 resume: Resume | None = None, lock_wait: float = 0.0, break_stale_lock: bool = False,
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
                             lock_max_age=lock_max_age, untouched=inputs.untouched)
        self.runner = runner_for(inputs.plan)
        header = make_header(argv, inputs.plan_path, inputs.inventory_path, self.simulated,
                             self.redactor.text, tool_version())
        header["inventory_engine"] = inputs.inventory.engine
        self.inventory_engine = inputs.inventory.engine if inputs.inventory_given else ""
        header["resumes"] = resume.journal if resume else None
        self.journal = JournalWriter.open_new(path, header)
        self.journal.on_error = lambda msg: self.engine.fail_stop(f"journal {path}: {msg}")
        self.bus.subscribe(self.journal)
        self.notifier = Notifier(inputs.plan, self.bus, self.redactor.text) if inputs.plan.notify.targets else None
        if self.notifier is not None:
            self.bus.subscribe(self.notifier)
        self.run_id = f"{re.sub(r'[^A-Za-z0-9._-]', '_', inputs.plan.name)[:24]}-{os.getpid()}"
        self.control = ControlServer(self, self.run_id)
        self.on_listening: Callable[[], None] = lambda: None  # --detach: tells the parent the run is up
        self.result: RunResult | None = None

    async def run(self) -> RunResult:
        try:
            await self.control.start()
        except OSError as exc:  # the run goes on; only remote control is lost
            self.emit(Notice(level="warning", message=f"no control socket: {exc.strerror or exc}"))
        finally:
            self.on_listening()
        try:
            self.result = await self.engine.run(self.runner)
        finally:
            if self.notifier is not None:  # the engine is done: bounded by notify.flush
                await self.notifier.drain()
        return self.result

    # -- what the views and the control server use of a live run (control/server.py LiveRun) --
    @property
    def status(self) -> RunStatus:
        """The run's status as the engine keeps it (strategies/status.py)."""
        return self.engine.status

    def elapsed(self) -> float:
        return self.engine.elapsed()

    @property
    def time_scale(self) -> float:
        """A SIMULATED clock's pace (--time-scale); 1 on real hosts."""
        return float(self.driver.clock.scale)

    def command(self, cmd: Command, source: str = "operator", sender: Sender | None = None) -> bool:
        """Ask the run to do something; acted on at its next safe point."""
        return self.engine.command(cmd, source, sender)

    def emit(self, event: Event) -> None:
        self.engine.emit(event)

    async def journal_tail(self, key: str) -> str:
        """The last lines of an instance's systemd journal (the TUI's detail view)."""
        return await self.engine.journal_tail(key)

    def detached_notice(self, pid: int) -> str:
        return (f"console: detached: run {self.run_id} (pid {pid}) continues in the background; journal "
                f"{self.journal.path}; follow it with `console attach {self.run_id}`, "
                f"`console status {self.run_id}`")

    def finish(self, result: RunResult | None, error: str | None = None) -> ResultRecord:
        """Close the journal and build the result record."""
        if result is None:
            code, outcome, message = Exit.INTERNAL, "internal_error", error or "internal error"
        else:
            code, outcome, message = FOR_OUTCOME[result.outcome], result.outcome.value, result.message
        final_hash = self.journal.close(outcome, int(code))
        record: ResultRecord = {"outcome": outcome, "exit_code": int(code), "message": message,
                  "simulated": self.simulated, "journal": str(self.journal.path), "journal_hash": final_hash,
                  "versions": result.versions if result else {}, "clients": self.engine.clients.as_dict()}
        self.control.close(record)
        return record


def install_interrupts(run: Session, on_signal: Callable[[str], None] = lambda name: None,
                       on_hangup: str = DEFAULT_ON_HANGUP) -> None:
    """SIGINT and SIGTERM stop the engine at the next safe point: every
    instance in nginx on one version, the journal closed, and `console
    resume` able to continue from there. SIGHUP (the operator's terminal or
    SSH session went away) does the same with --on-hangup stop; with
    --on-hangup detach the run goes on, writing only to its journal and
    control socket."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        def handler(sig: signal.Signals = sig) -> None:
            if sig == signal.SIGHUP:
                quiet_stdio()  # the terminal is gone: writing to it would only fail (EIO)
                if on_hangup == "detach":
                    run.emit(Notice(level="warning", message="terminal hung up: the run continues detached"))
                    return
            run.command(Command.ABORT, source=f"signal {sig.name}")
            on_signal(sig.name)  # after the abort: telling a hung-up terminal may fail
        loop.add_signal_handler(sig, handler)


def _tell(message: str) -> None:
    """A line on stderr, which may be a terminal that hung up (EIO, EPIPE)."""
    from .headless import silence

    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        silence(sys.stderr)


async def finish_headless(session: Session, reporter: HeadlessReporter | None, run: Awaitable[RunResult],
                          on_hangup: str = DEFAULT_ON_HANGUP) -> int:
    """Await a run (the headless reporter attached, or none once detached):
    interrupts stop it at a safe point, an internal error is reported and
    the journal still closed, and the result record ends the output.
    Returns the exit code."""
    install_interrupts(session, lambda name: _tell(f"{name}: stopping at the next safe point"), on_hangup)
    result, error = None, None
    try:
        result = await run
    except Exception as exc:  # noqa: BLE001 - report, close the journal, exit 1
        error = f"internal error: {exc!r}"
        _tell(error)
    record = session.finish(result, error)
    if reporter is not None:
        reporter.result(record)
    return record["exit_code"]


def run_headless(session: Session, fmt: str, *, on_hangup: str = DEFAULT_ON_HANGUP, detach: bool = False,
                 verbose: bool = False) -> int:
    """Headless, or with `detach` in the background (new session, no
    terminal output: only the journal and the control socket)."""
    from .headless import HeadlessReporter

    reporter = None
    if detach:
        session.on_listening = leave_terminal(session.detached_notice)
    else:
        reporter = HeadlessReporter(sys.stdout, fmt, session.simulated, verbose)
        if fmt == "text" and session.inventory_engine:
            print(f"inventory {session.inputs.inventory_path} read by {session.inventory_engine}", flush=True)
        session.bus.subscribe(reporter)
        print(f"control: run {session.run_id}: `console status|attach|pause ... {session.run_id}`",
              file=sys.stderr, flush=True)
    return asyncio.run(finish_headless(session, reporter, session.run(), on_hangup))


__all__ = ["InputError", "Inputs", "Session", "UsageError", "load_inputs", "run_headless"]
