"""Ask a Prometheus server for one number: an instant query over its HTTP
API (GET /api/v1/query), through httpx.

    async with prometheus.client() as http:
        value = await prometheus.query(http, "http://prom:9090", promql, timeout=5)

Anything but exactly one finite number raises `NoData` with its `Kind`:
the judge states it as "no data" and never passes a window on it, and
nothing here ends a run (a timeout, a refused connection, an HTTP error, a
query Prometheus rejects, an empty result, several series, NaN).
"""
from __future__ import annotations

import enum
import math

import httpx

MAX_DETAIL = 160


class Kind(enum.StrEnum):
    TIMEOUT = "timeout"
    UNREACHABLE = "server unreachable"
    SERVER_ERROR = "server error"
    BAD_QUERY = "bad query"
    EMPTY = "empty result"
    SEVERAL = "several series"
    NOT_NUMERIC = "non-numeric sample"


class NoData(Exception):
    def __init__(self, kind: Kind, detail: str = "") -> None:
        super().__init__(f"{kind.value}: {detail}" if detail else kind.value)
        self.kind = kind
        self.detail = detail[:MAX_DETAIL]


def duration(seconds: float) -> str:
    """5.0 -> "5s", 1.5 -> "1500ms": a PromQL duration (integers only)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def client() -> httpx.AsyncClient:
    """An HTTP client for the server: proxies from the environment are not
    used (trust_env=False), as a console's own environment should not
    redirect its judge."""
    return httpx.AsyncClient(trust_env=False)


async def query(http: httpx.AsyncClient, url: str, promql: str, timeout: float) -> float:
    """The single value of an instant query (vector of one series, or a
    scalar)."""
    try:
        r = await http.get(f"{url}/api/v1/query", params={"query": promql, "timeout": duration(timeout)},
                           timeout=timeout)
    except httpx.TimeoutException:
        raise NoData(Kind.TIMEOUT, f"after {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise NoData(Kind.UNREACHABLE, f"{type(exc).__name__}: {exc}") from None
    try:
        body: object = r.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    if r.status_code in (400, 422) or body.get("errorType") in ("bad_data", "execution"):
        raise NoData(Kind.BAD_QUERY, str(body.get("error") or f"HTTP {r.status_code}"))
    if body.get("errorType") == "timeout":  # the server's own query timeout
        raise NoData(Kind.TIMEOUT, str(body.get("error") or ""))
    if r.status_code != 200 or body.get("status") != "success":
        raise NoData(Kind.SERVER_ERROR, f"HTTP {r.status_code} {body.get('error') or ''}".strip())
    return single_value(body.get("data"))


def single_value(data: object) -> float:
    """The one number in an instant query's `data` (NoData otherwise)."""
    if not isinstance(data, dict):
        raise NoData(Kind.SERVER_ERROR, "answer without data")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        sample = result
    elif kind == "vector" and isinstance(result, list):
        if not result:
            raise NoData(Kind.EMPTY)
        if len(result) > 1:
            raise NoData(Kind.SEVERAL, f"{len(result)} series for one instance; aggregate them, e.g. sum(...)")
        sample = result[0].get("value") if isinstance(result[0], dict) else None
    else:
        raise NoData(Kind.BAD_QUERY, f"result type {kind!r}; the judge needs an instant vector or a scalar")
    if not isinstance(sample, list) or len(sample) != 2:
        raise NoData(Kind.SERVER_ERROR, "malformed sample")
    try:
        value = float(sample[1])
    except (TypeError, ValueError):
        raise NoData(Kind.NOT_NUMERIC, repr(sample[1])[:40]) from None
    if not math.isfinite(value):
        raise NoData(Kind.NOT_NUMERIC, repr(sample[1])[:40])
    return value
