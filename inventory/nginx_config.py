"""The nginx configuration the console owns, rendered from a desired state.

Pure: no I/O. The console owns exactly one file on each load balancer (by
default /etc/nginx/conf.d/rollout-<upstream>.conf, included in the http
context). The operator's server block proxies to ``http://$<upstream>_pool``;
this file decides what that variable holds:

* one upstream per pool (``agent_stable``, ``agent_canary``, ``agent_blue``...),
  listing only the backends that take traffic (drained ones are left out),
  optionally followed by another pool's backends as ``backup`` servers, so a
  request that finds every server of a small canary pool down is served by
  stable instead of failing;
* a ``split_clients`` block when traffic is split by weight (0.01 % steps),
  keyed per request or per sticky session;
* a ``map`` that lets a tester force a pool with a header;
* a JSON access log with the pool and upstream fields the analysis reads;
* a loopback-only marker server answering the config generation, which is how
  a reload is proven to have taken effect (a zero exit status does not).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Mapping

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
_HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,60}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.:\[\]-]{1,253}$")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,200}$")
_GENERATION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@dataclass(frozen=True)
class Backend:
    """One server line: where nginx sends a pool's requests."""

    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class LbState:
    """What the load balancer should do. ``weights`` maps pool -> percent;
    empty means every request goes to ``default_pool``."""

    upstream: str
    pools: Mapping[str, tuple[Backend, ...]]
    default_pool: str
    weights: Mapping[str, float] = field(default_factory=dict)
    generation: str = "0"
    access_log: str = "/var/log/nginx/rollout-agent.log"
    marker_port: int = 8099
    force_header: str | None = "X-Canary"
    sticky: str | None = None  # None, "cookie", or a request header name
    # pool -> pool whose backends back it up (nginx `backup`: used only
    # when every server of the pool failed this request)
    fallback: Mapping[str, str] = field(default_factory=dict)

    def with_pools(self, **changes: tuple[Backend, ...]) -> LbState:
        return replace(self, pools={**self.pools, **changes})


class ConfigError(ValueError):
    """The desired state cannot be expressed safely as nginx config."""


def pool_name(upstream: str, pool: str) -> str:
    return f"{upstream}_{pool}"


def _percent(value: float) -> str:
    return f"{value:.2f}%"


def split_percentages(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """Round weights to nginx's 0.01 % precision, in render order.

    The largest pool comes last and is rendered as "*" (whatever is left), so
    the split always covers exactly 100 %."""
    raw = sum(float(w) for w in weights.values())
    if raw > 100.0001:
        raise ConfigError(f"traffic weights sum to {raw:.2f} %, more than 100 %")
    items = sorted(((p, round(float(w), 2)) for p, w in weights.items() if round(float(w), 2) > 0),
                   key=lambda pw: pw[1])
    if sum(w for _, w in items[:-1]) > 100:
        raise ConfigError("traffic weights round to more than 100 %")
    return items


def validate(state: LbState) -> None:
    """Refuse any value that could change the config's meaning."""
    if not _NAME.fullmatch(state.upstream):
        raise ConfigError(f"upstream name {state.upstream!r} must match {_NAME.pattern}")
    for pool, backends in state.pools.items():
        if not _NAME.fullmatch(pool):
            raise ConfigError(f"pool name {pool!r} must match {_NAME.pattern}")
        for b in backends:
            if not _ADDRESS.fullmatch(b.address) or not 0 < int(b.port) < 65536:
                raise ConfigError(f"backend {b.address!r}:{b.port!r} is not a host:port")
    if state.default_pool not in state.pools or not state.pools[state.default_pool]:
        raise ConfigError(f"default pool {state.default_pool!r} has no backends")
    for pool, weight in state.weights.items():
        if weight > 0 and not state.pools.get(pool):
            raise ConfigError(f"pool {pool!r} gets {weight} % of traffic but has no backends")
    for pool, spare in state.fallback.items():
        if not state.pools.get(pool) or not state.pools.get(spare) or pool == spare:
            raise ConfigError(f"pool {pool!r} cannot fall back to {spare!r}: both need backends")
    if state.force_header is not None and not _HEADER.fullmatch(state.force_header):
        raise ConfigError(f"force header {state.force_header!r} is not a header name")
    if state.sticky not in (None, "cookie") and not _HEADER.fullmatch(state.sticky):
        raise ConfigError(f"sticky header {state.sticky!r} is not a header name")
    if not _PATH.fullmatch(state.access_log):
        raise ConfigError(f"access log path {state.access_log!r} is not a plain absolute path")
    if not _GENERATION.fullmatch(state.generation):
        raise ConfigError(f"generation {state.generation!r} is not a plain token")
    if not 0 < int(state.marker_port) < 65536:
        raise ConfigError(f"marker port {state.marker_port!r} is out of range")


def _header_var(header: str) -> str:
    return "$http_" + header.lower().replace("-", "_")


def render(state: LbState) -> str:
    """The whole managed file for ``state``; raises ConfigError if unsafe."""
    validate(state)
    up = state.upstream
    var = f"${up}_pool"
    lines = [
        f"# Managed by rollout-console: do not edit. generation {state.generation}",
        f"log_format rollout_{up} escape=json "
        "'{\"t\":\"$msec\",\"pool\":\"" + var + "\",\"status\":\"$status\","
        "\"ustatus\":\"$upstream_status\",\"uaddr\":\"$upstream_addr\","
        "\"rt\":\"$request_time\",\"urt\":\"$upstream_response_time\"}';",
        f"access_log {state.access_log} rollout_{up};",
    ]
    for pool in sorted(state.pools):
        backends = state.pools[pool]
        if not backends:
            continue
        lines.append(f"upstream {pool_name(up, pool)} {{")
        for b in backends:
            lines.append(f"    server {b} max_fails=0;")
        spare = state.pools.get(state.fallback.get(pool, ""), ())
        own = set(backends)  # not `in backends`: O(pool x backups) per render
        for b in (b for b in spare if b not in own):
            lines.append(f"    server {b} backup max_fails=0;")
        lines.append("    keepalive 16;")
        lines.append("}")
    default = pool_name(up, state.default_pool)
    split = split_percentages(state.weights)
    route_var = default
    if split:
        key = "${request_id}"
        if state.sticky == "cookie":
            lines.append(f"userid on; userid_name rollout_{up}; userid_expires 1d;")
            key = "${uid_got}${uid_set}"
        elif state.sticky:
            lines.append(f"map {_header_var(state.sticky)} ${up}_stick {{")
            lines.append("    \"\" $request_id;")
            lines.append(f"    default {_header_var(state.sticky)};")
            lines.append("}")
            key = f"${{{up}_stick}}"
        lines.append(f'split_clients "{key}" ${up}_split {{')
        for pool, pct in split[:-1]:
            lines.append(f"    {_percent(pct)} {pool_name(up, pool)};")
        lines.append(f"    * {pool_name(up, split[-1][0])};")
        lines.append("}")
        route_var = f"${up}_split"
    if state.force_header:
        lines.append(f"map {_header_var(state.force_header)} {var} {{")
        lines.append(f"    default {route_var};")
        for pool in sorted(p for p, b in state.pools.items() if b):
            lines.append(f"    \"{pool}\" {pool_name(up, pool)};")
        lines.append("}")
    else:
        lines.append(f"map $request_id {var} {{ default {route_var}; }}")
    lines.append("server {")
    lines.append(f"    listen 127.0.0.1:{state.marker_port};")
    lines.append("    access_log off;")
    lines.append(f"    location = /__rollout/{up}/generation {{ return 200 \"{state.generation}\\n\"; }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


_SERVER_LINE = re.compile(r"^\s*server\s+(\S+):(\d+)\s+(?!backup\b)", re.M)
_UPSTREAM = re.compile(r"upstream\s+(\w+)\s*\{(.*?)\}", re.S)
_GEN = re.compile(r"generation (\S+)")


def parse_pools(text: str, upstream: str) -> dict[str, tuple[Backend, ...]]:
    """Read back which backends each pool holds from a managed file
    (its own servers: backups belong to the pool they back up from)."""
    out: dict[str, tuple[Backend, ...]] = {}
    prefix = upstream + "_"
    for name, body in _UPSTREAM.findall(text):
        if name.startswith(prefix):
            out[name[len(prefix):]] = tuple(
                Backend(a, int(p)) for a, p in _SERVER_LINE.findall(body)
            )
    return out


def parse_generation(text: str) -> str | None:
    m = _GEN.search(text)
    return m.group(1) if m else None


def _managed_line_shapes(up: str) -> list[re.Pattern[str]]:
    """Every line `render` can write for upstream `up`, as a pattern."""
    u = re.escape(up)
    pool = rf"{u}_[a-z][a-z0-9_]{{0,40}}"
    header = r"\$http_[a-z][a-z0-9_]{0,60}"
    server = r"[A-Za-z0-9.:\[\]-]{1,253}:\d{1,5}"
    log_format = re.escape(render(LbState(up, {"x": (Backend("h", 1),)}, "x")).splitlines()[1])
    shapes = [
        rf"# Managed by rollout-console: do not edit\. generation {_GENERATION.pattern[1:-1]}",
        log_format,
        rf"access_log /[A-Za-z0-9._/-]{{1,200}} rollout_{u};",
        rf"upstream {pool} \{{", rf"    server {server}( backup)? max_fails=0;", r"    keepalive 16;", r"\}",
        rf"userid on; userid_name rollout_{u}; userid_expires 1d;",
        rf"map {header} \${u}_stick \{{", r'    "" \$request_id;', rf"    default {header};",
        rf'split_clients "(\$\{{request_id\}}|\$\{{uid_got\}}\$\{{uid_set\}}|\$\{{{u}_stick\}})" \${u}_split \{{',
        rf"    \d{{1,3}}\.\d\d% {pool};", rf"    \* {pool};",
        rf"map {header} \${u}_pool \{{", rf"    default ({pool}|\${u}_split);", rf'    "[a-z][a-z0-9_]{{0,40}}" {pool};',
        rf"map \$request_id \${u}_pool \{{ default ({pool}|\${u}_split); \}}",
        r"server \{", r"    listen 127\.0\.0\.1:\d{1,5};", r"    access_log off;",
        rf'    location = /__rollout/{u}/generation \{{ return 200 "{_GENERATION.pattern[1:-1]}\\n"; \}}',
    ]
    return [re.compile(shape) for shape in shapes]


def check_managed_text(text: str, upstream: str) -> None:
    """Refuse a text said to be a managed file (a journal's LB snapshot,
    written back as root's nginx config on resume) unless it is one
    `render` could have written: a generation line first, and every line
    of a shape render writes (no include, no other directive)."""
    if not _NAME.fullmatch(upstream):
        raise ConfigError(f"upstream name {upstream!r} must match {_NAME.pattern}")
    lines = text.split("\n")
    if not text.endswith("\n") or parse_generation(lines[0]) is None or not lines[0].startswith("# Managed"):
        raise ConfigError("line 1: not a file managed by rollout-console")
    shapes = _managed_line_shapes(upstream)
    for number, line in enumerate(lines[:-1], 1):
        if not any(shape.fullmatch(line) for shape in shapes):
            raise ConfigError(f"line {number}: {line[:80]!r} is not a line rollout-console writes")


def marker_path(upstream: str) -> str:
    return f"/__rollout/{upstream}/generation"
