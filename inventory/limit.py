"""`--limit PATTERN`: choosing hosts the way `ansible --limit` does.

A pattern is terms separated by `,` (or `:`, Ansible's older separator,
when the pattern has no comma). A term is a host or group name, `all` or
`*`, a shell wildcard (`web*`, `db-0?`), a regular expression after `~`
(`~web-0[13]`, matched from the start of the name), or `@FILE` (the file's
lines are more terms). `&term` keeps only hosts also in term, `!term`
drops hosts in term. As in Ansible, plain terms are joined first, then the
`&` terms intersect and the `!` terms subtract, whatever order they were
written in; the result keeps the inventory's host order. A group term may
take a subscript: `web[0]`, `web[-1]`, `web[1:3]` (both ends included).
Reimplemented from Ansible's documented behaviour (Ansible is GPL-3).

Pure: `select` takes the inventory's names and returns names.
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

from .errors import InputError
from .model import Inventory

_SUBSCRIPT = re.compile(r"^(.+?)\[(-?\d+)(?::(-?\d*))?\]$")
_WILDCARD = re.compile(r"[*?\[]")
_COLON_OUTSIDE_BRACKETS = re.compile(r":(?![^\[]*\])")  # `web[0:2]:db` splits into `web[0:2]` and `db`


class LimitError(InputError):
    """A --limit that cannot be read or matches nothing."""

    def __init__(self, message: str) -> None:
        super().__init__("--limit", None, "", message)


def split_terms(pattern: str) -> list[str]:
    """The terms of a pattern; `@FILE` terms replaced by the file's lines."""
    terms: list[str] = []
    for raw in pattern.split(",") if "," in pattern else _COLON_OUTSIDE_BRACKETS.split(pattern):
        term = raw.strip()
        if not term:
            continue
        if term.startswith("@"):
            try:
                lines = Path(term[1:]).read_text().splitlines()
            except OSError as exc:
                raise LimitError(f"{term[1:]}: {exc.strerror or exc}") from None
            terms.extend(t for line in lines for t in split_terms(line.strip()) if not t.startswith("#"))
        else:
            terms.append(term)
    return terms


def _subscript(names: Sequence[str], start: int, end: int | None, term: str) -> list[str]:
    if end is None:
        if not -len(names) <= start < len(names):
            raise LimitError(f"{term!r}: index {start} is outside the group's {len(names)} host(s)")
        return [names[start]]
    return list(names[start:end + 1])


def _match(term: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The hosts one term (without its & or !) stands for."""
    if term in ("all", "*"):
        return list(hosts)
    sub = _SUBSCRIPT.match(term)
    if sub and sub.group(1) in groups:
        start = int(sub.group(2))
        end = None if sub.group(3) is None else (int(sub.group(3)) if sub.group(3) else len(groups[sub.group(1)]) - 1)
        return _subscript(list(groups[sub.group(1)]), start, end, term)
    if term.startswith("~"):
        try:
            regex = re.compile(term[1:])
        except re.error as exc:
            raise LimitError(f"{term!r}: not a regular expression: {exc}") from None
        matched_groups = [g for g in groups if regex.match(g)]
        return _union([list(groups[g]) for g in matched_groups] + [[h for h in hosts if regex.match(h)]])
    if term in groups:
        return list(groups[term])
    if term in hosts:
        return [term]
    if _WILDCARD.search(term):
        matched_groups = [g for g in groups if fnmatch.fnmatchcase(g, term)]
        return _union([list(groups[g]) for g in matched_groups]
                      + [[h for h in hosts if fnmatch.fnmatchcase(h, term)]])
    return []


def _union(lists: Sequence[Sequence[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for names in lists:
        seen.update(dict.fromkeys(names))
    return list(seen)


def select(pattern: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """The host names `pattern` selects, in inventory (`hosts`) order.
    LimitError when a term matches nothing or the result is empty (Ansible
    warns and runs nothing; a rollout is better refused)."""
    terms = split_terms(pattern)
    if not terms:
        raise LimitError(f"{pattern!r} names no host")
    plain = [t for t in terms if t[0] not in "&!"]
    chosen = set(_union([_term_hosts(t, hosts, groups) for t in plain]) if plain else hosts)
    for term in (t for t in terms if t[0] == "&"):
        chosen &= set(_term_hosts(term[1:], hosts, groups))
    for term in (t for t in terms if t[0] == "!"):
        chosen -= set(_term_hosts(term[1:], hosts, groups))
    picked = [h for h in hosts if h in chosen]
    if not picked:
        raise LimitError(f"{pattern!r} leaves no host")
    return picked


def _term_hosts(term: str, hosts: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    found = _match(term, hosts, groups)
    if not found:
        raise LimitError(f"{term!r} matches no host or group of the inventory")
    return found


def limited(inventory: Inventory, pattern: str, keep: Sequence[str] = ()) -> Inventory:
    """The inventory cut to the hosts `pattern` selects, plus `keep` (the
    load balancers, which a rollout always needs); groups keep their order
    and lose the other hosts."""
    picked = set(select(pattern, list(inventory.hosts), inventory.groups)) | set(keep)

    def cut(groups: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {g: tuple(h for h in names if h in picked) for g, names in groups.items()}

    return replace(inventory, hosts={n: h for n, h in inventory.hosts.items() if n in picked},
                   groups=cut(inventory.groups), direct=cut(inventory.direct))
