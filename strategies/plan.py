"""Rollout plans: what to ship, where, and how (rolling, canary, blue-green).

    plan = load_plan("examples/canary.yaml", version_override="2.0.0")
    summary(plan)                       # one line for logs / the UI
    render_commands(plan, "2.0.0", "main", "agent-01")   # shell-quoted values

Plans are frozen pydantic models. The loader accepts the native form (fields
below) and the seed article's blocks (``rolling_deployment:``,
``canary_deployment:``, ``blue_green_deployment:``), see ``plan_seed``.
Every bad input raises ``PlanError``: one line naming file, line and field.
"""
from __future__ import annotations

import os
import re
import shlex
import string
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from inventory.ssh_config import expand_home
from inventory.validate import GROUP_NAME, RELEASE_VERSION, VAR_NAME, did_you_mean, show
from inventory.yaml_source import YamlDoc, format_path, parse_yaml, read_text

from . import plan_types as T
from .durations import format_duration
from .errors import PlanError
from .metric_plan import MetricsPlan

SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")
SLOT = re.compile(r"^[a-z][a-z0-9_-]{0,20}$")
UNIT = re.compile(r"^[A-Za-z0-9@._{}-]+$")
UPSTREAM = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,60}$")
ABS_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,200}$")
URL_PATH = re.compile(r"^/[A-Za-z0-9._~/%?&=+:-]{0,200}$")
COMMAND_FIELDS = ("version", "slot", "service", "host", "secrets")
SECRET_FIELD = re.compile(r"secrets\[([A-Za-z_][A-Za-z0-9_]{0,63})\]")

Duration = Annotated[float, BeforeValidator(T.duration)]
PositiveDuration = Annotated[float, BeforeValidator(T.positive_duration)]
Fraction = Annotated[float, BeforeValidator(T.fraction)]
Quality = Annotated[float, BeforeValidator(T.quality)]
Port = Annotated[int, BeforeValidator(T.port)]
Count = Annotated[int, BeforeValidator(lambda v: T.integer(v, 1, 1_000_000, "a count"))]
Count0 = Annotated[int, BeforeValidator(lambda v: T.integer(v, 0, 1_000_000_000, "a count"))]


# Each name rule as an error says it: in words, not as the regex it is.
IN_WORDS = {
    SERVICE: "a lowercase letter, then up to 40 lowercase letters, digits, '_' or '-'",
    SLOT: "a lowercase letter, then up to 20 lowercase letters, digits, '_' or '-'",
    UPSTREAM: "a lowercase letter, then up to 40 lowercase letters, digits or '_'",
    HEADER: "a letter, then up to 60 letters, digits or '-'",
    ABS_PATH: "'/' then up to 200 letters, digits, '.', '_', '-' or '/'",
    URL_PATH: "'/' then up to 200 letters, digits or any of . _ ~ / % ? & = + : -",
    GROUP_NAME: "a letter, digit or '_', then up to 127 letters, digits, '_', '.' or '-'",
    RELEASE_VERSION: ("a letter or digit, then up to 63 letters, digits, '.', '_', '+' or '-' "
                      "(e.g. 2.0.0, 2.1.0-rc.1; no spaces, no shell characters)"),
}


def rule_in_words(pattern: re.Pattern[str], what: str) -> str:
    return f"expected {what}: {IN_WORDS[pattern]}" if pattern in IN_WORDS else f"expected {what}"


def _regex(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: Any) -> Any:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{rule_in_words(pattern, what)}; got {show(value)}")
        return value

    return BeforeValidator(check)


def _optional(inner: typing.Callable[[Any], Any]) -> BeforeValidator:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return BeforeValidator(check)


def _or_empty(inner: typing.Callable[[Any], Any]) -> BeforeValidator:
    """null (or absent) reads as "", which a model's defaults then fill."""
    def check(value: Any) -> Any:
        return "" if value is None else inner(value)

    return BeforeValidator(check)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _template_fields(template: str, allowed: tuple[str, ...]) -> None:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {show(template)}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _text, name, spec, conv in parts:
        if name is None:
            continue
        if name == "secrets":
            raise ValueError("template field {secrets} takes a name: {secrets[NAME]}")
        if SECRET_FIELD.fullmatch(name) and "secrets" in allowed:  # declared under `secrets:` (Plan._secret_fields)
            name = "secrets"
        if name not in allowed:
            names = ", ".join("{" + a + "}" for a in allowed)
            hint = did_you_mean(name, allowed).replace('"', "")
            if "did you mean" in hint:
                hint = hint.replace("did you mean ", 'did you mean "{').replace("?", '}"?')
            else:
                hint = f"; allowed: {names}"
            raise ValueError(f"unknown template field {{{name}}}{hint}")
        if spec or conv:
            raise ValueError(f"template field {{{name}}} takes no format spec or conversion")


def _quoting_at_fields(template: str) -> None:
    """Each field must stand where the shell reads its value as one literal
    word: outside quotes, backquotes and here-documents. The value is
    substituted shell-quoted ('...'), which is a word of its own anywhere
    unquoted (`releases/{version}` included), but inside "..." the quotes are
    literal and `$(...)` in a host-reported version would run (issue 23)."""
    if "<<" in template and "{" in template.split("<<", 1)[1].replace("{{", ""):
        raise ValueError("a template field after << (a here-document) is not quoted by the shell: "
                         "pass the value as an argument")
    quote = ""  # the quote we are inside: ', " or `
    i = 0
    while i < len(template):
        ch = template[i]
        if template.startswith(("{{", "}}"), i):
            i += 2
            continue
        if ch == "{" and quote:
            name = template[i + 1:template.index("}", i)]
            where = {"'": "single quotes", '"': "double quotes", "`": "backquotes"}[quote]
            raise ValueError(f"template field {{{name}}} is inside {where}: write it as a shell word of its own "
                             f"({'{' + name + '}'} unquoted; the console quotes its value)")
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if ch in "'\"`" and (not quote or quote == ch):
            quote = "" if quote else ch
        i += 1


# -- sections ---------------------------------------------------------------------

def _commands(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of command templates, got {show(value)}")
    return value


def _command(cmd: Any) -> Any:
    if not isinstance(cmd, str) or not cmd.strip():
        raise ValueError(f"expected a command template string, got {show(cmd)}")
    if "\0" in cmd:
        raise ValueError("command contains a NUL byte")
    _template_fields(cmd, COMMAND_FIELDS)
    _quoting_at_fields(cmd)
    return cmd


class Deploy(_Model):
    commands: Annotated[list[Annotated[str, BeforeValidator(_command)]], BeforeValidator(_commands)] = [
        "/opt/agent/bin/install-release --slot {slot} {version}"]
    timeout: PositiveDuration = 120.0
    # Run on each host by `console check` and before every rollout; must
    # exit 0 if the release is present or fetchable. Same fields and quoting
    # as commands (strategies/checklist.py: render_check).
    check: Annotated[str | None, _optional(_command)] = None


class Health(_Model):
    path: Annotated[str, _regex(URL_PATH, "a URL path")] = "/health"
    port: Annotated[int | None, _optional(T.port)] = None
    timeout: PositiveDuration = 2.0
    interval: PositiveDuration = 1.0
    passes: Count = 3
    deadline: PositiveDuration = 60.0
    expect_version: bool = True


class Nginx(_Model):
    upstream: Annotated[str, _regex(UPSTREAM, "an nginx upstream name")] = "agent"
    # "" until _defaults names them after the upstream: typed str wherever they travel
    config: Annotated[str, _or_empty(_regex(ABS_PATH, "an absolute path").func)] = ""
    access_log: Annotated[str, _or_empty(_regex(ABS_PATH, "an absolute path").func)] = ""
    marker_port: Port = 8099
    force_header: Annotated[str | None, _optional(_regex(HEADER, "a header name").func)] = "X-Canary"
    sticky: str | None = None
    reload_timeout: PositiveDuration = 5.0

    @field_validator("sticky", mode="before")
    @classmethod
    def _sticky(cls, value: Any) -> Any:
        if value is None or value == "cookie":
            return value
        if isinstance(value, str) and HEADER.fullmatch(value):
            return value
        raise ValueError(f'expected null, "cookie" or a request header name, got {show(value)}')

    @model_validator(mode="after")
    def _defaults(self) -> Nginx:
        if not self.config:
            object.__setattr__(self, "config", f"/etc/nginx/conf.d/rollout-{self.upstream}.conf")
        if not self.access_log:
            object.__setattr__(self, "access_log", f"/var/log/nginx/rollout-{self.upstream}.log")
        return self


class Drain(_Model):
    timeout: Duration = 30.0


def _max_fail(value: Any) -> float:
    written = value
    m = T.PERCENT.fullmatch(value) if isinstance(value, str) else None
    if m:
        value = float(m.group(1))
    if not T.is_number(value) or not 0 <= value <= 100:
        raise ValueError(f"expected a percentage 0-100, got {show(written)}")
    return float(value)


class Rolling(_Model):
    """`capacity_guard`: what to do when an instance that should serve is
    down before a batch and draining it would leave too few: `pause` for a
    human (exit 7 headless), or `on_failure`."""

    batch: Annotated[int | str | list[int | str], BeforeValidator(T.batch)] = 1
    interval: Duration = 0.0
    max_fail_percentage: Annotated[float, BeforeValidator(_max_fail)] = 0.0
    capacity_guard: Literal["pause", "on_failure"] = "pause"


STEP_KINDS = ("set_weight", "pause", "analysis")


def _pause(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("indefinite", "forever", "")):
        return None
    if isinstance(value, dict):
        extra = [k for k in value if k != "duration"]
        if extra:
            raise ValueError(f"unknown key {show(extra[0])} in pause{did_you_mean(extra[0], ['duration'])}")
        return _pause(value.get("duration"))
    return T.duration(value)


class Step(_Model):
    """One canary step: exactly one of set_weight (percent), pause (seconds;
    None = wait for promote) or analysis (seconds). ``kind`` says which."""

    kind: Literal["set_weight", "pause", "analysis"]
    set_weight: float | None = None
    pause: float | None = None
    analysis: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: Any) -> Any:
        if isinstance(data, Step):
            return data
        if isinstance(data, dict) and "kind" in data:
            return data
        if not isinstance(data, dict) or len(data) != 1:
            keys = ", ".join(f"{{{k}: ...}}" for k in STEP_KINDS)
            got = f"keys {', '.join(map(str, data))}" if isinstance(data, dict) and data else show(data)
            raise ValueError(f"a step is exactly one of {keys}, got {got}")
        (key, value), = data.items()
        if key not in STEP_KINDS:
            raise ValueError(f"unknown step {show(key)}{did_you_mean(key, STEP_KINDS)}")
        if key == "set_weight":
            return {"kind": key, key: T.percent_weight(value)}
        if key == "pause":
            return {"kind": key, key: _pause(value)}
        return {"kind": key, key: T.positive_duration(value)}

    @model_validator(mode="after")
    def _consistent(self) -> Step:
        for k in STEP_KINDS:
            if k != self.kind and getattr(self, k) is not None:
                raise ValueError(f"a {self.kind} step cannot also set {k}")
        if self.kind in ("set_weight", "analysis") and getattr(self, self.kind) is None:
            raise ValueError(f"a {self.kind} step needs a value")
        return self

    @property
    def indefinite(self) -> bool:
        return self.kind == "pause" and self.pause is None

    def describe(self) -> str:
        if self.kind == "set_weight":
            return f"{self.set_weight:g}%"
        if self.kind == "pause":
            return "pause" if self.pause is None else f"pause {format_duration(self.pause)}"
        return f"analysis {format_duration(self.analysis or 0)}"


DEFAULT_CANARY_STEPS = [
    {"set_weight": 1}, {"analysis": "60s"}, {"set_weight": 5}, {"analysis": "60s"},
    {"set_weight": 10}, {"analysis": "60s"}, {"set_weight": 50}, {"analysis": "60s"},
    {"set_weight": 100},
]


def _steps(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of steps, got {show(value)}")
    return value


class Canary(_Model):
    steps: Annotated[list[Step], BeforeValidator(_steps)] = Field(
        default_factory=lambda: [Step.model_validate(s) for s in DEFAULT_CANARY_STEPS]
    )
    sample_interval: PositiveDuration = 5.0
    # what the canary is judged against: the stable pool, or a matched
    # baseline (Spinnaker's advice): as many stable instances as the canary
    # has, restarted on the old version at the same moment and given the
    # canary's share, so warm-up, host and cache effects cancel out
    baseline: Literal["stable", "matched"] = "stable"
    # a serving instance down, and the next set_weight step's drain would
    # leave fewer serving than the plan's largest move allows (or would move
    # the dead one): pause for a human, or apply on_failure (as rolling's)
    capacity_guard: Literal["pause", "on_failure"] = "pause"


class Ports(_Model):
    blue: Port = 8081
    green: Port = 8082

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.blue == self.green:
            raise ValueError(f"blue and green need different ports, both are {self.blue}")
        return self


class BlueGreen(_Model):
    mode: Literal["groups", "units"] = "units"
    # the colour serving now; "auto" (the default) reads it from nginx's live
    # routing at preflight, and adopts the plan's own slot (units form) when
    # nginx serves from that instead of either colour
    active: Literal["blue", "green", "auto"] = "auto"
    blue: str = "blue"
    green: str = "green"
    ports: Ports = Ports()
    pre_switch_delay: Duration = 0.0
    rollback_window: Duration = 30.0

    @field_validator("blue", "green", mode="before")
    @classmethod
    def _names(cls, value: Any, info: ValidationInfo) -> Any:
        mode = info.data.get("mode", "units")
        pattern, what = (SLOT, "a slot name") if mode == "units" else (GROUP_NAME, "an inventory group name")
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{rule_in_words(pattern, what)} (mode {mode}); got {show(value)}")
        return value

    @model_validator(mode="after")
    def _distinct(self) -> BlueGreen:
        if self.blue == self.green:
            raise ValueError(f"blue and green must differ, both are {show(self.blue)}")
        return self


def _confidence(value: Any) -> float:
    number = T.fraction(value)
    if not 0.5 <= number < 1.0:
        raise ValueError(f"expected a confidence from 50% to below 100% (e.g. 99%), got {show(value)}")
    return number


def _budget(value: Any) -> float:
    number = T.fraction(value)
    if not 0.0 < number <= 0.2:
        raise ValueError(f'expected a false-alarm budget above 0 and at most 20% (e.g. "1%"), got {show(value)}')
    return number


class Thresholds(_Model):
    """What the judge (strategies/analysis.py) holds a release to.

    `cpu` is an alert level on the unit's own CPU (cores); the gate compares
    CPU against the baseline instead. `min_requests` is the least a window
    must see before it may pass (0: judge on health and quality alone, an
    explicit opt-out). `confidence` sets both risks of the error test: a
    good release stopped, a bad one passed (1 - confidence each).
    `max_window` is how long a window may be extended while the evidence
    is not yet enough; then it is inconclusive and a human decides."""

    error_rate: Fraction = 0.01
    p95_latency: Duration = 2.0
    quality_score: Quality = 0.90
    health_pass_rate: Fraction = 0.95
    cpu: Fraction = 0.80
    persistence: Count = 2
    min_requests: Count0 = 20
    compare_to_stable: bool = True
    confidence: Annotated[float, BeforeValidator(_confidence)] = 0.99
    max_window: PositiveDuration = 900.0


class Analysis(_Model):
    """How the judge is run. `false_alarm_budget` is the chance, per
    release, that a release as good as its baseline is wrongly stopped: it
    is spread over the plan's judged windows and split across every test
    (strategies/judge_stats.py). `latency_warm_up`: an instance's latencies
    are not judged until it is this old, counted from its own restart (an
    instance just restarted is slow while it warms up; one restarted long
    ago is judged at once), and by the median test once it is twice as old;
    errors are judged at once. Recorded samples, whose instances'
    restarts are unknown, leave out the window's first seconds instead. `shadow`: every verdict is
    recorded and none acted on (a new judge tried on live releases without
    gating them)."""

    false_alarm_budget: Annotated[float, BeforeValidator(_budget)] = 0.01
    latency_warm_up: Duration = 30.0
    shadow: bool = False


class Rule(_Model):
    metric: Literal["error_rate", "p95_latency", "quality_score", "health_pass_rate", "cpu", "health_check_failed"]
    op: Literal[">", "<"]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, Rule):
            return data
        return T.parse_rule(data)

    def matches(self, observed: float) -> bool:
        return observed > self.value if self.op == ">" else observed < self.value

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


SEED_ALERTING = {
    "critical": ["health_check_failed", "error_rate > 5%", "p95_latency > 5s"],
    "important": ["error_rate > 1%", "p95_latency > 2s", "quality_score < 90"],
    "warning": ["error_rate > 0.5%", "cpu_usage > 70%"],
}


def _rules(tier: str) -> Any:  # a pydantic FieldInfo, typed Any by pydantic itself
    return Field(default_factory=lambda: [Rule.model_validate(r) for r in SEED_ALERTING[tier]])


def _rule_list(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f'expected a list of rules like "error_rate > 5%", got {show(value)}')
    return value


RuleList = Annotated[list[Rule], BeforeValidator(_rule_list)]


class Alerts(_Model):
    critical: RuleList = _rules("critical")
    important: RuleList = _rules("important")
    warning: RuleList = _rules("warning")


NOTIFY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
IN_WORDS[NOTIFY_NAME] = "a letter or digit, then up to 40 letters, digits, '_', '.' or '-'"
NOTIFY_URL = re.compile(r"^https?://[^\s/?#@]+(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$")


def _notify_url(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, str) or not NOTIFY_URL.fullmatch(value):
        raise ValueError(f"expected an http:// or https:// URL, got {show(value)}")
    return value


def _argv(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a and "\0" not in a for a in value):
        raise ValueError(f"expected a command as a list of arguments (run without a shell), got {show(value)}")
    return value


class NotifyTarget(_Model):
    """One place notifications go: a webhook taking generic JSON, a
    Slack-compatible webhook ({"text": ...}), or a command (argv, no shell)
    reading the JSON on stdin. URLs and header values are secrets: they are
    redacted from the journal and every output."""

    name: Annotated[str, _regex(NOTIFY_NAME, "a target name")]
    kind: Literal["json", "slack", "command"]
    url: Annotated[str | None, BeforeValidator(_notify_url)] = None
    headers: dict[Annotated[str, _regex(HEADER, "an HTTP header name")], str] = {}
    command: Annotated[list[str] | None, BeforeValidator(_argv)] = None
    tiers: list[Literal["critical", "important", "warning"]] = ["critical", "important", "warning"]
    events: list[Literal["alert", "gate", "result"]] = ["alert", "gate", "result"]
    # http:// sends the events, the URL's token and the headers in clear:
    # only where the plan says so for this target (docs/threat-model.md, "the network")
    allow_http: bool = False

    @model_validator(mode="after")
    def _where(self) -> NotifyTarget:
        if self.kind == "command":
            if self.command is None or self.url is not None:
                raise ValueError("a command target takes `command:` (and no url)")
        elif self.url is None or self.command is not None:
            raise ValueError(f"a {self.kind} target takes `url:` (and no command)")
        elif self.url.lower().startswith("http://") and not self.allow_http:
            raise ValueError("an http:// URL sends events, tokens and headers in clear: use https://, or set "
                             "`allow_http: true` on this target")
        return self


class Notify(_Model):
    """Where alerts, final gate verdicts and the result are sent. Delivery
    runs beside the engine, never in its way: each attempt is cut at
    `timeout`, failed attempts are retried `retries` times with back-off
    doubling from `backoff`, and at the end of the run the console waits at
    most `flush` for deliveries still in flight."""

    targets: list[NotifyTarget] = []
    timeout: PositiveDuration = 5.0
    retries: Annotated[int, BeforeValidator(lambda v: T.integer(v, 0, 10, "a retry count"))] = 3
    backoff: PositiveDuration = 1.0
    flush: Duration = 10.0
    # HTTPS_PROXY / HTTP_PROXY / NO_PROXY from the environment (a root shell
    # may have inherited a user's): only when the plan asks
    use_proxy_env: bool = False

    def secret_values(self) -> list[str]:
        """URLs and header values: never shown or journalled."""
        return [t.url for t in self.targets if t.url] + [v for t in self.targets for v in t.headers.values() if v]


def _secrets(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of variable names or {{name, env|file}} secrets, got {show(value)}")
    for item in value:
        if isinstance(item, dict):
            continue  # a SecretRef, validated as one
        if not isinstance(item, str) or not VAR_NAME.fullmatch(item):
            raise ValueError(f"expected a variable name, got {show(item)}")
    return value


class SecretRef(_Model):
    """A named secret the plan's commands use as `{secrets[NAME]}`: read at
    load from the controller's environment or from a file only its owner may
    read, substituted shell-quoted, and masked by value in every output,
    journal, view and notification (docs/threat-model.md, "secrets")."""

    name: Annotated[str, _regex(VAR_NAME, "a secret name")]
    env: Annotated[str | None, _optional(_regex(VAR_NAME, "an environment variable name").func)] = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret takes exactly one of `env:` or `file:`")
        return self


def _unit(value: Any) -> Any:
    if not isinstance(value, str) or not UNIT.fullmatch(value) or not value.endswith(".service"):
        raise ValueError(f'expected a systemd unit template ending in ".service" ({UNIT.pattern}), got {show(value)}')
    _template_fields(value, ("slot",))
    return value


def _name(value: Any) -> Any:
    if not isinstance(value, str) or not value.strip() or len(value) > 100 or not value.isprintable():
        raise ValueError(f"expected a short one-line name, got {show(value)}")
    return value


class Plan(_Model):
    source: str
    name: Annotated[str, BeforeValidator(_name)]
    service: Annotated[str, _regex(SERVICE, "a service name")] = "agent"
    version: Annotated[str | None, _optional(_regex(RELEASE_VERSION, "a release version").func)] = None
    strategy: Literal["rolling", "canary", "blue_green"]
    hosts: Annotated[str, _regex(GROUP_NAME, "an inventory group name")] = "agents"
    load_balancers: Annotated[str, _regex(GROUP_NAME, "an inventory group name")] = "lb"
    slot: Annotated[str, _regex(SLOT, "a slot name")] = "main"
    port: Port = 8080
    unit: Annotated[str, BeforeValidator(_unit)] = "agent@{slot}.service"
    deploy: Deploy = Deploy()
    health: Health = Health()
    nginx: Nginx = Nginx()
    drain: Drain = Drain()
    rolling: Rolling = Rolling()
    canary: Canary = Canary()
    blue_green: BlueGreen = BlueGreen()
    thresholds: Thresholds = Thresholds()
    analysis: Analysis = Analysis()
    alerts: Alerts = Alerts()
    metrics: MetricsPlan = MetricsPlan()  # metric sources and custom metrics (metric_plan.py)
    notify: Notify = Notify()
    on_failure: Literal["rollback", "pause", "abort"] = "rollback"
    # inventory variables whose values are secret, and named secrets (SecretRef)
    secrets: Annotated[list[Annotated[Annotated[str, Tag("var")] | Annotated[SecretRef, Tag("ref")],
                                      Discriminator(lambda v: "ref" if isinstance(v, (dict, SecretRef)) else "var")]],
                       BeforeValidator(_secrets)] = []
    rollback_delay: Annotated[float | None, _optional(T.duration)] = None
    _secret_values: dict[str, str] = PrivateAttr(default_factory=dict)  # SecretRef name -> value, set by load_plan

    @model_validator(mode="after")
    def _secret_fields(self) -> Plan:
        """Every `{secrets[NAME]}` in a command names a declared secret."""
        named = {s.name for s in self.secrets if isinstance(s, SecretRef)}
        for cmd in [*self.deploy.commands, *([self.deploy.check] if self.deploy.check else [])]:
            for _text, field_name, _spec, _conv in string.Formatter().parse(cmd):
                m = SECRET_FIELD.fullmatch(field_name or "")
                if m and m.group(1) not in named:
                    raise ValueError(f"deploy: {{secrets[{m.group(1)}]}} names no secret under `secrets:` "
                                     f"(declare {{name: {m.group(1)}, env: VAR}} or {{name: ..., file: PATH}})")
        return self

    def secret_var_names(self) -> list[str]:
        """Inventory variables the plan marks secret."""
        return [s for s in self.secrets if isinstance(s, str)]

    def named_secret_values(self) -> list[str]:
        """The values of the plan's named secrets (masked everywhere)."""
        return list(self._secret_values.values())

    @field_validator("rollback_delay")
    @classmethod
    def _rollback_within_delay(cls, value: float | None, info: ValidationInfo) -> float | None:
        """rollback_delay (the seed's rollback.delay) bounds how long a failing
        check may stand before the rollback starts; refuse a persistence and
        sample interval that would let it stand longer."""
        t, c = info.data.get("thresholds"), info.data.get("canary")
        if value is None or t is None or c is None:
            return value
        standing = (t.persistence - 1) * c.sample_interval
        if standing > value:
            raise ValueError(
                f"a failing check must start the rollback within {format_duration(value)}, but "
                f"thresholds.persistence {t.persistence} samples every {format_duration(c.sample_interval)} "
                f"(canary.sample_interval) let it stand {format_duration(standing)}; lower one of them")
        return value


# -- public helpers -------------------------------------------------------------------

class UnsafeValue(ValueError):
    """A value refused before it reaches a command template."""


def check_template_values(version: str, slot: str) -> None:
    """A version or slot read back from a host (a rollback target, the slot
    it runs in) held to what the operator may give, before it is rendered
    into root's commands: UnsafeValue otherwise."""
    if not RELEASE_VERSION.fullmatch(str(version)):
        raise UnsafeValue(f"version {show(version)} is not a release version ({RELEASE_VERSION.pattern})")
    if not GROUP_NAME.fullmatch(str(slot)):  # a slot of units mode or an inventory group
        raise UnsafeValue(f"slot {show(slot)} is not a slot or group name ({GROUP_NAME.pattern})")


def render_template(plan: Plan, template: str, version: str, slot: str, host_name: str, *,
                    reveal: bool = False) -> str:
    """One command template with every substituted value shell-quoted.

    The template text is the plan author's shell and is trusted; the values
    (version, slot, service, host) are not (see also check_template_values).
    Named secrets are substituted only with `reveal` (a command about to
    run); otherwise as *** (what a dry run prints)."""
    secrets = {k: shlex.quote(v) if reveal else "***" for k, v in plan._secret_values.items()}
    return template.format(version=shlex.quote(str(version)), slot=shlex.quote(str(slot)),
                           service=shlex.quote(str(plan.service)), host=shlex.quote(str(host_name)),
                           secrets=secrets)


def render_commands(plan: Plan, version: str, slot: str, host_name: str, *, reveal: bool = False) -> list[str]:
    """Deploy commands for one host (see `render_template`)."""
    return [render_template(plan, cmd, version, slot, host_name, reveal=reveal) for cmd in plan.deploy.commands]


def _read_secret(ref: SecretRef) -> str:
    """A named secret's value: the environment variable, or the file (owned
    by this user or root, readable by its owner only, not a symlink)."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ValueError(f"environment variable {ref.env} is not set")
        return value
    path = expand_home(str(ref.file))  # ~ as OpenSSH has it: never another user's $HOME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (os.geteuid(), 0) or st.st_mode & 0o077:
            raise ValueError(f"{path} must belong to you and be readable by its owner only (chmod 600)")
        value = os.read(fd, 64 * 1024).decode("utf-8", "replace").rstrip("\r\n")
    finally:
        os.close(fd)
    if not value:
        raise ValueError(f"{path} is empty")
    return value


def summary(plan: Plan) -> str:
    """One line describing the plan."""
    version = plan.version or "(no version)"
    head = f"{plan.name}: {plan.strategy.replace('_', '-')} {plan.service} {version} on {plan.hosts} via {plan.load_balancers}"
    if plan.strategy == "rolling":
        b = plan.rolling.batch
        batches = ", ".join(map(str, b)) if isinstance(b, list) else str(b)
        detail = f"batch {batches}, interval {format_duration(plan.rolling.interval)}"
    elif plan.strategy == "canary":
        weights = [s.describe() for s in plan.canary.steps if s.kind == "set_weight"]
        if len(weights) > 6:
            weights = weights[:3] + ["..."] + weights[-2:]
        pauses = sum(1 for s in plan.canary.steps if s.kind != "set_weight")
        detail = f"weights {' > '.join(weights) or 'none'} ({len(plan.canary.steps)} steps, {pauses} waits)"
    else:
        bg = plan.blue_green
        active = bg.active if bg.active != "auto" else "read from live routing"
        detail = f"{bg.mode} {bg.blue}/{bg.green}, active {active}, rollback window {format_duration(bg.rollback_window)}"
    t = plan.thresholds
    return (
        f"{head}; {detail}; error_rate<={t.error_rate:g} p95<={format_duration(t.p95_latency)}; "
        f"on failure {plan.on_failure}"
    )


# -- loading ---------------------------------------------------------------------------

def _model_at(cls: Any, loc: tuple[Any, ...]) -> Any:
    """The pydantic model class found at ``loc`` below ``cls`` (or None)."""
    for part in loc:
        while True:
            origin = typing.get_origin(cls)
            if origin is Annotated:
                cls = typing.get_args(cls)[0]
                continue
            if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
                models = [a for a in typing.get_args(cls) if isinstance(a, type) and issubclass(a, BaseModel)]
                lists = [a for a in typing.get_args(cls) if typing.get_origin(a) is list]
                cls = models[0] if models else (lists[0] if lists else None)
                continue
            break
        if cls is None:
            return None
        if typing.get_origin(cls) is list:
            if isinstance(part, int):
                cls = typing.get_args(cls)[0]
                continue
            return None
        if isinstance(cls, type) and issubclass(cls, BaseModel) and isinstance(part, str):
            f = cls.model_fields.get(part)
            if f is None:
                return None
            cls = f.annotation
            continue
        return None
    while typing.get_origin(cls) is Annotated:
        cls = typing.get_args(cls)[0]
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _existing(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The longest prefix of ``loc`` that exists in ``data``."""
    out: list[Any] = []
    for part in loc:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            break
        out.append(part)
    return tuple(out)


class _Source:
    """Maps paths in the (possibly translated) plan data back to the file."""

    def __init__(self, doc: YamlDoc, origin: dict[tuple[Any, ...], tuple[Any, ...] | str]) -> None:
        self.doc = doc
        self.origin = origin

    def locate(self, path: tuple[Any, ...]) -> tuple[int | None, str]:
        for n in range(len(path), -1, -1):
            head = path[:n]
            if head in self.origin:
                src = self.origin[head]
                if isinstance(src, str):  # e.g. "--version"
                    return None, src
                src = tuple(src) + tuple(path[n:])
                return self.doc.line_of(src), format_path(src)
        return self.doc.line_of(path), format_path(path)


def _message(err: ErrorDetails, known: list[str] | None) -> str:
    typ, msg, value = err["type"], err["msg"], err.get("input")
    if typ == "extra_forbidden":
        key = err["loc"][-1]
        return "unknown key" + (did_you_mean(str(key), known) if known else "")
    if typ == "missing":
        return "missing required field"
    if msg.startswith("Value error, "):
        return msg[len("Value error, "):]
    if msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, "):]
    if typ == "literal_error" and isinstance(value, str):
        expected = re.findall(r"'([^']*)'", msg)
        hint = did_you_mean(value, expected)
        return f"expected one of {', '.join(expected)}, got {show(value)}{hint if hint.startswith('; did') else ''}"
    if typ in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping, got {show(value)}"
    if "got " in msg:
        return msg
    return f"{msg[0].lower() + msg[1:]}, got {show(value)}"


def _raise_validation(exc: ValidationError, data: dict[str, Any], src: _Source, file: str) -> typing.NoReturn:
    best = None
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = _existing(data, loc)
        missing_depth = 0 if err["type"] == "extra_forbidden" else 1
        if err["type"] in ("missing", "extra_forbidden") and len(loc) == len(path) + missing_depth:
            path = loc
        line, fld = src.locate(path)
        known = None
        if err["type"] == "extra_forbidden":
            model = _model_at(Plan, loc[:-1])
            known = [k for k in model.model_fields if not (model is Plan and k == "source")] if model else None
        key = (line if line is not None else 10**9,)
        if best is None or key < best[0]:
            flag = fld.startswith("--") and line is None  # a value from the command line, not the file
            best = (key, PlanError(fld, None, "", _message(err, known)) if flag
                    else PlanError(file, line, fld, _message(err, known)))
    assert best is not None  # a ValidationError holds at least one error
    raise best[1]


def load_plan(path: str | Path, *, version_override: str | None = None) -> Plan:
    """Load and validate a plan file (native or seed form)."""
    from .plan_seed import SEED_KEYS, reindent_flat, translate

    file = str(path)
    text = read_text(path, error_cls=PlanError)
    doc = parse_yaml(reindent_flat(text), file=file, error_cls=PlanError)
    data = doc.data
    if data is None:
        raise PlanError(file, None, "", "plan is empty")
    if not isinstance(data, dict):
        raise PlanError(file, doc.line_of(()), "", f"expected a mapping of plan settings, got {show(data)}")
    if "source" in data:
        raise PlanError(file, doc.line_of(("source",)), "source", "is set by the loader, remove it")
    origin: dict[tuple[Any, ...], Any] = {}
    if any(k in SEED_KEYS for k in data):
        data, origin = translate(doc, file)
    else:
        data = dict(data)
    if "alerting" in data and "alerts" not in data:
        data["alerts"] = data.pop("alerting")
        origin[("alerts",)] = origin.get(("alerting",), ("alerting",))
    if T.is_number(data.get("version")):
        # `version: 2.0` is a float to YAML; keep the text as written.
        src = origin.get(("version",), ("version",))
        data["version"] = doc.text_of(src) if not isinstance(src, str) else str(data["version"])
    if version_override is not None:
        data["version"] = version_override
        origin[("version",)] = "--version"
    data.setdefault("name", Path(file).stem or "plan")
    data["source"] = file
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        _raise_validation(exc, data, _Source(doc, origin), file)
    for i, ref in enumerate(plan.secrets):
        if isinstance(ref, SecretRef):
            line, fld = _Source(doc, origin).locate(("secrets", i))
            try:
                plan._secret_values[ref.name] = _read_secret(ref)
            except ValueError as exc:
                raise PlanError(file, line, fld, f"secret {ref.name}: {exc}") from None
    return plan


def field_line(path: str | Path, field: tuple[str, ...]) -> int | None:
    """The line of plan file `path` where `field` is written (for errors the
    plan's values meet later, e.g. a group the inventory lacks), or None when
    the plan leaves it to its default."""
    from .plan_seed import SEED_KEYS, reindent_flat, translate

    file = str(path)
    doc = parse_yaml(reindent_flat(read_text(path, error_cls=PlanError)), file=file, error_cls=PlanError)
    origin: dict[tuple[Any, ...], Any] = {}
    if isinstance(doc.data, dict) and any(k in SEED_KEYS for k in doc.data):
        origin = translate(doc, file)[1]
    src = origin.get(field, field)
    return None if isinstance(src, str) else doc.lines.get(tuple(src))


class _ThresholdsFile(_Model):
    thresholds: Thresholds = Thresholds()


def load_thresholds(path: str | Path) -> Thresholds:
    """A file holding a `thresholds:` block (for what-if replays); errors
    name file, line and field like plan errors."""
    file = str(path)
    doc = parse_yaml(read_text(path, error_cls=PlanError), file=file, error_cls=PlanError)
    data = doc.data
    if not isinstance(data, dict):
        raise PlanError(file, doc.line_of(()), "", f"expected a mapping with a thresholds: block, got {show(data)}")
    try:
        return _ThresholdsFile.model_validate(data).thresholds
    except ValidationError as exc:
        _raise_validation(exc, data, _Source(doc, {}), file)
