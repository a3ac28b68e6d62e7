"""Headless output: one line per event, readable text or JSON Lines.

A subscriber like the TUI and the journal; it only formats. The final
result record is written by the session once the exit code is known.
"""
from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, TextIO

from inventory.validate import clean_text
from strategies.events import Event
from strategies.metrics import format_value

if TYPE_CHECKING:
    from .status_record import ResultRecord


def _fields(event: Event) -> dict[str, Any]:
    """The event's fields as they are, without `to_dict`'s deep copy: read
    only, and cheap enough for every event of a 10,000-host batch (the
    TUI describes each one it folds; `asdict` of each cost most of that)."""
    return {"kind": event.kind, **vars(event)}


def describe(event: Event) -> str | None:
    """A one-line human description of an event (None to stay quiet)."""
    e = _fields(event)
    kind = e["kind"]
    if kind == "run_started":
        label = "SIMULATED fleet" if e["simulated"] else "fleet"
        return (f"{e['strategy']} {e['service']} -> {e['version']} on {len(e['instances'])} instance(s), "
                f"{len(e['steps'])} step(s), {label}")
    if kind == "phase":
        return f"phase {e['phase']}" + (f": {e['reason']}" if e["reason"] else "")
    if kind == "step_started":
        names = ", ".join(e["instances"][:8]) + (" ..." if len(e["instances"]) > 8 else "")
        return f"{e['title']}" + (f": {names}" if names else "")
    if kind == "instance":
        return f"{e['instance']} {e['phase'].value}" + (f" ({e['detail']})" if e["detail"] else "")
    if kind == "command":
        status = "?" if e["exit_status"] is None else e["exit_status"]
        tail = (e["stderr"] or "").strip().splitlines()[-1:] if e["exit_status"] else []
        return f"{e['host']} $ {e['command']} -> exit {status} ({e['duration']:.2f}s)" + (
            f": {tail[0]}" if tail else "")
    if kind == "health":
        return None if e["ok"] or e.get("idle") else f"{e['instance']} health failed: {e['detail']}"
    if kind == "traffic":
        pools = ", ".join(f"{p}={len(b)}" for p, b in sorted(e["pools"].items()))
        weights = ", ".join(f"{p} {w:g}%" for p, w in sorted(e["weights"].items()))
        return f"nginx generation {e['generation']}: {pools}" + (f"; split {weights}" if weights else "") + (
            f" ({e['duration'] * 1000:.0f} ms)")
    if kind in ("metrics", "clients", "judge_sample"):
        return None
    if kind == "judge_budget":
        return (f"judge: false-alarm budget {e['alpha'] * 100:g}% per release over {e['windows']} window(s), "
                f"{e['per_window'] * 100:.3g}% to the first" + (", the rest evenly over the others" if e["windows"] > 1 else "")
                + f", split across {len(e['tests'])} tests"
                + ("; SHADOW: verdicts recorded, none acted on" if e["shadow"] else ""))
    if kind == "gate":
        if not e["final"] and e["verdict"] != "fail":
            return None
        reasons = "; ".join(e["reasons"])
        seen = f", {e['seen']} requests" if e.get("seen") else ""
        shadow = " (shadow judge: not acted on)" if e.get("shadow") else ""
        return f"gate {e['name']}: {e['verdict']}{seen}{shadow}" + (f" ({reasons})" if reasons else "")
    if kind == "routing_verified":
        if not e["left_out"]:
            return None
        return "routing: left out, not verified: " + ", ".join(f"{k} ({v})" for k, v in e["left_out"].items())
    if kind == "capacity":
        return None if e["ok"] else (f"capacity guard: {', '.join(e['unhealthy'])} unhealthy; draining would leave "
                                     f"{e['after']} serving (floor {e['floor']})")
    if kind == "alert" and e.get("instance"):
        return f"ALERT {e['tier']}: {e['instance']} down ({e['reason']}) seen from {e['where']}"
    if kind == "alert":
        return (f"ALERT {e['tier']}: {e['metric']} {format_value(e['metric'], e['value'])} "
                f"(threshold {format_value(e['metric'], e['threshold'])}) on {e['where']}"
                + (f"; judged on {e['basis']}" if e.get("basis") else ""))
    if kind == "operator":
        return f"operator {e['command']} from {e['source']}: {'accepted' if e['accepted'] else 'refused'}" + (
            f" ({e['detail']})" if e["detail"] else "")
    if kind == "notice":
        return f"{e['level']}: {e['message']}"
    if kind == "notify":
        status = "" if e["status"] is None else f", status {e['status']}"
        return (f"notify {e['target']}: {e['about']}{' ' + e['tier'] if e['tier'] else ''} {e['outcome']} "
                f"after {e['attempts']} attempt(s){status}" + (f": {e['error']}" if e["error"] else ""))
    if kind == "run_finished":
        clients = e.get("clients") or {}
        seen = (f" (clients: {clients['failed']} of {clients['requests']} requests failed)"
                if clients.get("requests") else "")
        return f"finished: {e['outcome']} after {e['duration']:.1f}s: {e['message']}{seen}"
    return None


def silence(stream: TextIO) -> None:
    """Point a dead stream's descriptor at /dev/null, so the bytes still in
    its buffer flush harmlessly at exit instead of failing the exit code."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
    except (OSError, ValueError):
        pass


class HeadlessReporter:
    """Writes events to a stream as text lines or JSON Lines. JSON is ASCII
    (non-ASCII escaped), so no byte a remote host prints, U+2028 included,
    can split a line for a consumer."""

    def __init__(self, stream: TextIO, fmt: str = "text", simulated: bool = False, verbose: bool = False):
        self.stream = stream
        self.fmt = fmt
        # text: a remote command that succeeded is a line only when asked for (a blue-green run on four
        # hosts printed 100 of them among 50 lines a person reads; the journal keeps them all)
        self.verbose = verbose
        self.prefix = "SIMULATED " if simulated else ""
        self.gone = False  # the output's reader is gone: the run goes on, the journal keeps the record
        if fmt == "text" and simulated:
            self._line("SIMULATED fleet: in-process stand-in, no real host is touched")

    def _line(self, text: str) -> None:
        if self.gone:
            return
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except OSError:  # EPIPE, EIO: the terminal or the reader went away (SIGHUP comes with it)
            self.gone = True
            silence(self.stream)

    def __call__(self, event: Event) -> None:
        if self.fmt == "json":
            self._line(json.dumps(event.to_dict(), separators=(",", ":")))
            return
        if event.kind == "command" and getattr(event, "exit_status", None) == 0 and not self.verbose:
            return
        text = describe(event)
        if text is not None:  # host text may be in it: no escape sequence reaches the terminal
            self._line(f"{self.prefix}[{event.at:8.2f}s] {clean_text(text)}")

    def result(self, record: ResultRecord) -> None:
        if self.fmt == "json":
            self._line(json.dumps({"kind": "result", **record}, separators=(",", ":")))
        else:
            parts = [f"result: {record['outcome']} (exit {record['exit_code']})", record["message"]]
            if record["journal"]:
                parts.append(f"journal {record['journal']} sha256 {record['journal_hash']}")
            self._line(clean_text(" | ".join(p for p in parts if p)))
