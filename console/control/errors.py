"""How a control client reports a refusal or a stale socket: one line on
stderr and the exit code the error's kind maps to. Shared by the control
commands (console/control/commands.py) and `console attach`
(console/control/attach.py), which the commands open lazily."""
from __future__ import annotations

import sys
from pathlib import Path

from ..exitcodes import Exit
from .client import ControlError

FOR_ERROR = {"no_run": Exit.NO_RUN, "ambiguous": Exit.BAD_INPUT, "denied": Exit.DENIED,
             "bad_request": Exit.BAD_INPUT, "protocol": Exit.INTERNAL}


def report_stale(path: Path) -> None:
    print(f"console: removed a stale control socket {path} (its run is gone)", file=sys.stderr)


_TOLD: set[str] = set()  # problems already reported (`console status --watch` asks every second)


def report_malformed(path: Path, problem: str) -> None:
    """A run's answer or result file that is not a status record: one line
    (once per process), and it is left out."""
    if problem not in _TOLD:
        _TOLD.add(problem)
        print(f"console: skipped: {problem}", file=sys.stderr)


def report_error(exc: ControlError) -> int:
    print(f"console: {'refused' if exc.code == 'denied' else 'error'}: {exc}", file=sys.stderr)
    return FOR_ERROR.get(exc.code, Exit.INTERNAL)
