"""A journal's first and last records, typed as they are read back.

The header says what ran, by whom, from which files; the closing record how
the session ended. Both are written by the console (console/journal.py
make_header, Journal.close) and read by replay, the report, `console
releases` and resume. A reader never trusts a field's type: a journal from
an older console lacks some, one edited by hand may hold anything (its
chain and seal are checked apart, console/journal.py verify). So `of` reads
every field it knows with a default for what is missing or of the wrong
type, once, here, instead of each reader guessing with `.get`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Mapping, Self


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _part(record: Mapping[str, object], key: str) -> Mapping[str, object]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Texts:
    """A part of a record whose fields are all text: each read as text, ""
    when missing or not text."""

    @classmethod
    def of(cls, entry: Mapping[str, object]) -> Self:
        return cls(*(_text(entry.get(f.name)) for f in fields(cls)))


@dataclass(frozen=True)
class FileRead(_Texts):
    """A file the run read: its path, SHA-256 and (redacted) text; empty when the run read none."""

    path: str = ""
    sha256: str = ""
    text: str = ""


@dataclass(frozen=True)
class Operator(_Texts):
    """Who ran the console: the user and host, and the SSH client the session's environment claims."""

    user: str = ""
    host: str = ""
    ssh_client_claimed: str = ""

    def label(self) -> str:
        return f"{self.user or '?'}@{self.host or '?'}"


@dataclass(frozen=True)
class Header:
    """The journal's header record (console/journal.py make_header, then the session's additions)."""

    tool_version: str = ""
    argv: tuple[str, ...] = ()
    operator: Operator = Operator()
    started: str = ""  # UTC, ISO 8601
    simulated: bool = False
    python: str = ""
    plan: FileRead = FileRead()
    inventory: FileRead = FileRead()
    inventory_engine: str = ""
    resumes: str = ""  # the journal of the session this one resumes ("" for a fresh run)

    @classmethod
    def of(cls, record: Mapping[str, object]) -> Header:
        argv = record.get("argv")
        return cls(tool_version=_text(record.get("tool_version")),
                   argv=tuple(a for a in argv if isinstance(a, str)) if isinstance(argv, list) else (),
                   operator=Operator.of(_part(record, "operator")), started=_text(record.get("started")),
                   simulated=record.get("simulated") is True, python=_text(record.get("python")),
                   plan=FileRead.of(_part(record, "plan")), inventory=FileRead.of(_part(record, "inventory")),
                   inventory_engine=_text(record.get("inventory_engine")), resumes=_text(record.get("resumes")))


@dataclass(frozen=True)
class Close:
    """The journal's closing record (console/journal.py Journal.close): the
    session's outcome and exit code, and what a failing disk cost it."""

    outcome: str = ""
    exit_code: int | None = None
    records: int = 0
    journal_error: str = ""
    lost_events: int = 0

    @classmethod
    def of(cls, record: Mapping[str, object]) -> Close:
        def count(key: str) -> int:
            value = record.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else 0

        code = record.get("exit_code")
        return cls(outcome=_text(record.get("outcome")),
                   exit_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
                   records=count("records"), journal_error=_text(record.get("journal_error")),
                   lost_events=count("lost_events"))
