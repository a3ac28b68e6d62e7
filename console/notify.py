"""Notifications: a plan's `notify:` block sends alerts (per tier), final
gate verdicts and the result to webhooks or commands.

An output like the journal: a bus subscriber. The subscriber only queues
(never awaits), so a slow or dead receiver cannot hold up the rollout; one
worker per target delivers in order, each attempt cut at the plan's
timeout, failures retried with doubling back-off. Every delivery, failed
or dropped one included, is published as a `NotificationDelivered` event,
so the journal records it. URLs and header values are secrets (the
session's redactor knows them): they appear nowhere, error texts included.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Callable, ClassVar

import httpx

from strategies.events import AlertRaised, Event, EventBus, GateEvaluated, RunFinished
from strategies.plan import NotifyTarget, Plan

from .headless import describe

QUEUE_LIMIT = 100  # per target; beyond it the oldest waiting notification is dropped


@dataclass(frozen=True, kw_only=True)
class NotificationDelivered(Event):
    """One notification's fate: outcome "delivered", "failed" (every attempt
    failed) or "dropped" (queue full, or still waiting when the run ended)."""

    kind: ClassVar[str] = "notify"
    target: str
    about: str  # alert | gate | result
    tier: str  # the alert's tier; "" for gate verdicts and results
    outcome: str
    attempts: int
    status: int | None = None  # HTTP status or command exit status of the last attempt
    error: str = ""
    duration: float = 0.0


def route(event: Event) -> tuple[str, str] | None:
    """(about, tier) for an event worth a notification, else None."""
    if isinstance(event, AlertRaised):
        return "alert", event.tier
    if isinstance(event, GateEvaluated) and event.final:
        return "gate", ""
    if isinstance(event, RunFinished):
        return "result", ""
    return None


def payload(kind: str, about: str, tier: str, event: Event, plan: Plan) -> bytes:
    if kind == "slack":
        text = describe(event) or event.kind
        head = f"[{tier}] " if tier else ""
        return json.dumps({"text": f"{head}{plan.name}: {plan.service} {plan.version}: {text}"}).encode()
    return json.dumps({"source": "rollout-console", "about": about, "tier": tier, "plan": plan.name,
                       "service": plan.service, "version": plan.version, "event": event.to_dict()}).encode()


@dataclass
class _Item:
    about: str
    tier: str
    body: bytes


class Notifier:
    """Delivers to a plan's notify targets off the engine's path."""

    def __init__(self, plan: Plan, bus: EventBus, redact: Callable[[str], str]) -> None:
        self.plan = plan
        self.notify = plan.notify
        self.bus = bus
        self.redact = redact
        self.queues: dict[str, asyncio.Queue[_Item]] = {}
        self.workers: list[asyncio.Task[None]] = []
        self.busy: dict[str, _Item | None] = {t.name: None for t in self.notify.targets}
        self.closed = False
        self._client: httpx.AsyncClient | None = None

    # -- bus side: never blocks ----------------------------------------------------
    def __call__(self, event: Event) -> None:
        routed = route(event)
        if routed is None or self.closed:
            return
        about, tier = routed
        self._start()
        for target in self.notify.targets:
            if about not in target.events or (about == "alert" and tier not in target.tiers):
                continue
            queue = self.queues[target.name]
            if queue.full():
                old = queue.get_nowait()
                self._record(target.name, old, "dropped", 0, None, "queue full", 0.0)
            queue.put_nowait(_Item(about, tier, payload(target.kind, about, tier, event, self.plan)))

    def _start(self) -> None:
        if self.workers:
            return
        loop = asyncio.get_running_loop()
        self._client = httpx.AsyncClient(timeout=self.notify.timeout, follow_redirects=False,
                                         trust_env=self.notify.use_proxy_env)
        for target in self.notify.targets:
            self.queues[target.name] = asyncio.Queue(QUEUE_LIMIT)
            self.workers.append(loop.create_task(self._work(target)))

    # -- delivery ------------------------------------------------------------------
    async def _work(self, target: NotifyTarget) -> None:
        queue = self.queues[target.name]
        while True:
            item = await queue.get()
            self.busy[target.name] = item
            try:
                await self._deliver(target, item)
            finally:
                self.busy[target.name] = None
                queue.task_done()

    async def _deliver(self, target: NotifyTarget, item: _Item) -> None:
        t0 = time.monotonic()
        delay = self.notify.backoff
        status: int | None = None
        error = ""
        attempts = 0
        for attempt in range(self.notify.retries + 1):
            attempts = attempt + 1
            try:
                status = await asyncio.wait_for(self._attempt(target, item.body), self.notify.timeout)
                ok = status == 0 if target.kind == "command" else 200 <= status < 300
                if ok:
                    self._record(target.name, item, "delivered", attempts, status, "", time.monotonic() - t0)
                    return
                error = f"exit status {status}" if target.kind == "command" else f"HTTP {status}"
            except TimeoutError:
                status, error = None, f"no answer within {self.notify.timeout:g} s"
            except (httpx.HTTPError, OSError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if attempt < self.notify.retries:
                await asyncio.sleep(delay)
                delay *= 2
        self._record(target.name, item, "failed", attempts, status, error, time.monotonic() - t0)

    async def _attempt(self, target: NotifyTarget, body: bytes) -> int:
        if target.kind == "command":
            assert target.command is not None  # the plan refuses a command target without one
            proc = await asyncio.create_subprocess_exec(
                *target.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL, start_new_session=True)
            try:
                await proc.communicate(body)
            except asyncio.CancelledError:
                proc.kill()
                await proc.wait()
                raise
            assert proc.returncode is not None  # communicate() waited for the exit
            return proc.returncode
        assert self._client is not None and target.url is not None  # start() made it; a webhook has its URL
        headers = {"content-type": "application/json", **target.headers}
        response = await self._client.post(target.url, content=body, headers=headers)
        return response.status_code

    def _record(self, target: str, item: _Item, outcome: str, attempts: int, status: int | None,
                error: str, duration: float) -> None:
        self.bus.publish(NotificationDelivered(
            target=target, about=item.about, tier=item.tier, outcome=outcome, attempts=attempts,
            status=status, error=self.redact(error)[:300], duration=round(duration, 3)))

    # -- end of run ----------------------------------------------------------------
    async def drain(self) -> None:
        """Wait at most `flush` for queued deliveries, then record what is
        left as dropped and stop. Called once the engine has finished."""
        if not self.workers:
            self.closed = True
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in self.queues.values())), self.notify.flush)
        except TimeoutError:
            pass
        self.closed = True
        in_flight = dict(self.busy)
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        for target in self.notify.targets:
            pending = in_flight[target.name]
            left = [pending] if pending else []
            queue = self.queues[target.name]
            while not queue.empty():
                left.append(queue.get_nowait())
            for item in left:
                self._record(target.name, item, "dropped", 0, None, f"still pending after {self.notify.flush:g} s flush",
                             0.0)
        if self._client is not None:
            await self._client.aclose()
