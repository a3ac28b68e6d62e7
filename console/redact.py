"""Secrets never leave the process: every event is scrubbed before any
subscriber (screen, stdout, journal) sees it."""
from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterable

from inventory.model import Inventory
from strategies.events import Event
from strategies.plan import Plan

MASK = "***"
_SECRET_WORD = r"(?:password|passwd|pass|token|secret|api[-_]?key|access[-_]?key|private[-_]?key|credentials?)"
# The fallback for secrets no plan or inventory named (named ones are masked
# by value): --password=x, DEPLOY_TOKEN=x, curl -u user:pass, scheme://user:pass@,
# and any header that carries a credential (Authorization: <any scheme> x,
# X-Api-Key:, PRIVATE-TOKEN:, Cookie:).
_PATTERNS = [
    re.compile(rf"(?i)(--?{_SECRET_WORD}[= ])(\S+)"),
    re.compile(rf"(?i)(\b[A-Za-z0-9_.-]*{_SECRET_WORD}[A-Za-z0-9_]*=)(\S+)"),
    re.compile(r"(?i)((?:^|\s)(?:-u|--user|--proxy-user)(?:=|\s+)['\"]?[^\s:'\"]*:)([^\s'\"]+)"),
    re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s/:@'\"]*:)([^\s/@'\"]+)(?=@)"),
    re.compile(r"(?i)(\b(?:proxy-)?authorization\s*:\s*(?:[a-z][\w-]*\s+)?)([^\s'\"]+)"),
    re.compile(rf"(?i)((?<![\w-])(?!(?:proxy-)?authorization)(?:[\w-]*-)?(?:{_SECRET_WORD}|auth[\w-]*|cookie|session)"
               r"\s*:\s*)([^\s'\"]+)"),
]


class Redactor:
    """Replaces known secret values and token-looking arguments with ***."""

    def __init__(self, secret_values: Iterable[str] = ()):
        values = sorted({v for v in secret_values if v and len(v) >= 3}, key=len, reverse=True)
        self._values = re.compile("|".join(re.escape(v) for v in values)) if values else None

    def text(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(MASK, text)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def value(self, value: object) -> object:
        """A field's value with its strings redacted, lists and dicts walked."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        return value

    def __call__(self, event: Event) -> Event:
        changes: dict[str, Any] = {}  # each the redacted value of the event's own field, same type
        for f in dataclasses.fields(event):
            old = getattr(event, f.name)
            new = self.value(old)
            if new != old:
                changes[f.name] = new
        return dataclasses.replace(event, **changes) if changes else event


def secret_values(inventory: Inventory, plan: Plan) -> list[str]:
    """Values of every variable the inventory or plan marks secret, and of
    the plan's named secrets."""
    names = set(inventory.secrets) | set(plan.secret_var_names())
    out = []
    for host in inventory.hosts.values():
        for name in names:
            value = host.vars.get(name)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                out.append(str(value))
    return out + plan.named_secret_values() + plan.notify.secret_values()
