"""Parse the JSON access log the managed nginx file writes (pure, no I/O).

One line per request: {"t","pool","status","ustatus","uaddr","rt","urt"}
(see nginx_config.render). `pool` holds the full upstream name
("agent_stable"); it is reported without the "<upstream>_" prefix. A request
counts once, by its final `status`; `ustatus` with several comma-separated
values ("502, 200") means nginx retried it on another backend (`retried`;
`hidden` when the retry succeeded, so the client never saw the failure). Torn or
garbage lines are counted, never raised.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .driver import PoolStats


@dataclass
class ParseResult:
    pools: dict[str, PoolStats] = field(default_factory=dict)
    bad_lines: int = 0
    backends: dict[str, int] = field(default_factory=dict)  # final upstream addr -> count


def _num(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _last(value: str) -> str:
    # "$upstream_addr" looks like "a:1, b:2" or "a:1, b:2 : c:3" (internal redirect)
    parts = [p.strip() for p in value.replace(" : ", ", ").split(",") if p.strip()]
    return parts[-1] if parts else ""


def pool_of(full: str, upstream: str | None) -> str:
    if upstream and full.startswith(upstream + "_"):
        return full[len(upstream) + 1:]
    return full


def _list(value: object) -> list[str]:
    return [p.strip() for p in str(value or "").replace(" : ", ", ").split(",") if p.strip()]


Try = tuple[str, bool, float | None]  # (backend, failed, seconds)


def tries_of(rec: dict[str, object]) -> list[Try]:
    """Each try nginx made for one request. A try failed when its backend
    answered 5xx or not at all ("-")."""
    addrs, statuses, times = _list(rec.get("uaddr")), _list(rec.get("ustatus")), _list(rec.get("urt"))
    out: list[Try] = []
    for n, addr in enumerate(addrs):
        if ":" not in addr:  # "-" or a named location: no backend tried
            continue
        status = _num(statuses[n]) if n < len(statuses) else None
        out.append((addr, status is None or status >= 500, _num(times[n]) if n < len(times) else None))
    return out


def parse_line(line: str, upstream: str | None = None) -> tuple[str, int, bool, float | None, str, list[Try]] | None:
    """(pool, status, retried, rt, final backend, tries) or None for a bad line."""
    line = line.strip()
    if not line:
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if not isinstance(rec, dict):
        return None
    status = _num(rec.get("status"))
    if status is None:
        return None
    pool = pool_of(str(rec.get("pool") or "-"), upstream)
    ustatus = str(rec.get("ustatus") or "")
    tries = [p for p in ustatus.replace(" : ", ", ").split(",") if p.strip()]
    retried = len(tries) > 1
    rt = _num(rec.get("rt"))
    return pool, int(status), retried, rt, _last(str(rec.get("uaddr") or "")), tries_of(rec)


def parse(text: str, upstream: str | None = None) -> ParseResult:
    """Parse complete lines; callers keep any trailing partial line."""
    res = ParseResult()
    for line in text.splitlines():
        if not line.strip():
            continue
        parsed = parse_line(line, upstream)
        if parsed is None:
            res.bad_lines += 1
            continue
        pool, status, retried, rt, addr, tries = parsed
        st = res.pools.setdefault(pool, PoolStats())
        seen: set[str] = set()
        for backend, failed, seconds in tries:
            st.tried(backend, failed, seconds, again=backend in seen)
            seen.add(backend)
        st.requests += 1
        if status >= 500:
            st.errors += 1
        if retried:
            st.retried += 1
            st.hidden += status < 500
        if rt is not None:
            st.latencies.append(rt)
        if addr:
            res.backends[addr] = res.backends.get(addr, 0) + 1
    return res


def parse_pools(text: str, upstream: str | None = None) -> dict[str, PoolStats]:
    return parse(text, upstream).pools


def split_complete(buffer: str) -> tuple[str, str]:
    """(complete lines, trailing partial line) of a chunk of log text."""
    idx = buffer.rfind("\n")
    if idx < 0:
        return "", buffer
    return buffer[: idx + 1], buffer[idx + 1:]
