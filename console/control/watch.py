"""`console status --watch`: follow live runs as text, in a plain SSH session
or a CI log. No curses, no cursor movement when stdout is not a terminal:
one line per change of a run's phase, step, gate verdict or weights (not of
its elapsed seconds), and one line when it ends. On a terminal the same
lines are printed; nothing is redrawn, so the scrollback is the history.

It polls the runs' status over their control sockets (a status request
costs a run a few hundred microseconds) rather than following their event
streams, so it needs no engine code and copes with runs appearing and
ending while it watches."""
from __future__ import annotations

import json
import time
from typing import Callable, Mapping

from ..exitcodes import Exit
from ..status_record import EndedRun, StatusRecord
from ..status_text import weights_text

Runs = Callable[[], tuple[list[StatusRecord], list[EndedRun]]]


def state_line(s: StatusRecord) -> str:
    """The parts of a live run's status that make a change worth a line."""
    step, gate = s["step"], s["gate"]
    return (f"{s['run_id']} {s['phase']}" + (f" ({s['phase_reason']})" if s["phase_reason"] else "")
            + (f"  step {step['index']}/{step['total']} {step['title']}".rstrip() if step["total"] else "")
            + (f"  gate {gate['name']} {gate['verdict']}" if gate else "") + f"  weights {weights_text(s)}")


def ended_line(s: EndedRun) -> str:
    return f"{s['run_id']} ENDED {s['outcome']} (exit {s['exit_code']}): {s['message']}"


def _emit(text: str, record: Mapping[str, object], fmt: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    if fmt == "json":
        print(json.dumps({"at": stamp, **record}, separators=(",", ":")), flush=True)
    else:
        print(f"{stamp} {text}", flush=True)


def watch(runs: Runs, selector: str | None, interval: float, fmt: str = "text") -> int:
    """Print changes until every run seen live has ended; the exit code of
    the run when exactly one was followed, else 0. Ctrl-C stops watching
    (never the runs)."""
    last: dict[str, str] = {}
    followed: dict[str, int | None] = {}
    first_live, first_ended = runs()
    already_ended = {s["run_id"] for s in first_ended}
    if not first_live:
        print("no live run" + (f" matches {selector!r}" if selector else "") + "; waiting for one (Ctrl-C to stop)",
              flush=True)
    try:
        while True:
            live, ended = runs()
            for s in live:
                line = state_line(s)
                followed.setdefault(s["run_id"], None)
                if last.get(s["run_id"]) != line:
                    last[s["run_id"]] = line
                    _emit(line, {"run_id": s["run_id"], "phase": s["phase"], "step": s["step"],
                                 "gate": s["gate"], "weights": s["weights"]}, fmt)
            live_ids = {s["run_id"] for s in live}
            for s in ended:
                if s["run_id"] in followed and followed[s["run_id"]] is None and s["run_id"] not in already_ended:
                    followed[s["run_id"]] = int(s["exit_code"])
                    _emit(ended_line(s), {"run_id": s["run_id"], "outcome": s["outcome"],
                                          "exit_code": s["exit_code"], "message": s["message"]}, fmt)
            gone = [r for r, code in followed.items() if code is None and r not in live_ids
                    and not any(s["run_id"] == r for s in ended)]
            for run_id in gone:  # ended without a result file (killed): say so once
                followed[run_id] = int(Exit.NO_RUN)
                _emit(f"{run_id} GONE (no result: the run was killed?)", {"run_id": run_id, "gone": True}, fmt)
            if followed and all(code is not None for code in followed.values()):
                codes = list(followed.values())
                return int(codes[0]) if len(codes) == 1 and codes[0] is not None else Exit.OK
            time.sleep(interval)
    except KeyboardInterrupt:
        return Exit.OK
