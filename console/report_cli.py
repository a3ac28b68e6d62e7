"""`console report JOURNAL [--html FILE]`: a recorded session as a report.

Without --html, a plain-text summary on stdout. With it, one HTML file
that works offline (console/report/html.py). A journal that is not one,
is cut mid-record or has a schema this console does not read is refused
in one line naming file and line (exit 2); a journal that fails its hash
chain is still reported, with that said first, and exits 4 like
`console audit verify`.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from .exitcodes import Exit

PROG = "console report"


def parser() -> argparse.ArgumentParser:
    from .cli_args import Parser as _Parser

    p = _Parser(prog=PROG, description="Report on a recorded session: timeline, verdicts with their evidence, "
                "alerts and commands, client totals, the article's post-deployment checklist; plain text, or "
                "one self-contained HTML page with plots (--html).")
    p.add_argument("journal", help="a session journal (JSON Lines, see `console audit verify`)")
    p.add_argument("--html", metavar="FILE", help="write the HTML report here ('-' for stdout) instead of "
                   "printing the text summary; needs the `report` extra (matplotlib)")
    return p


def _fail(message: str, code: int = Exit.BAD_INPUT) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    from .journal import read_journal, verify
    from .report import text
    from .report.extract import extract

    path = Path(args.journal)
    try:
        journal = read_journal(path)
    except FileNotFoundError:
        return _fail(f"{path}: no such file")
    except IsADirectoryError:
        return _fail(f"{path}: is a directory, not a journal")
    except OSError as exc:
        return _fail(f"{path}: cannot read: {exc.strerror or exc}")
    except ValueError as exc:
        return _fail(str(exc))
    if journal.torn_tail:
        return _fail(f"{path}:{len(journal.records) + 1}: truncated: the last record is cut off "
                     "(`console audit verify` says more)")
    report = extract(journal, verify(path), source=str(path))
    if args.html is None:
        sys.stdout.write(text.render(report))
    else:
        from .report import html
        from .report.plots import MissingPlotting

        try:
            page = html.render(report)
        except MissingPlotting as exc:
            return _fail(f"--html: {exc}")
        if args.html == "-":
            sys.stdout.write(page)
        else:
            try:
                Path(args.html).write_text(page, encoding="utf-8")
            except OSError as exc:
                return _fail(f"--html {args.html}: cannot write: {exc.strerror or exc}")
            print(f"report written to {os.path.abspath(args.html)}"
                  + ("" if report.integrity.ok else " (the journal FAILS verification: said at the top)"))
    if not report.integrity.ok:
        print(f"{PROG}: the journal fails verification: {report.integrity.message}", file=sys.stderr)
        return Exit.FAILED
    return Exit.OK
