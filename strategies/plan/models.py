"""The plan's sections and the `Plan` itself: frozen pydantic models whose
validators refuse bad values in one line (the loader, strategies/plan/load.py,
adds file and line).
"""
from __future__ import annotations

import re
import shlex
import string
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from inventory.validate import GROUP_NAME, RELEASE_VERSION, VAR_NAME, did_you_mean, show

from ..durations import format_duration
from . import values as T
from .fields import (
    ABS_PATH,
    COMMAND_FIELDS,
    HEADER,
    IN_WORDS,
    SECRET_FIELD,
    SERVICE,
    SLOT,
    UNIT,
    UPSTREAM,
    URL_PATH,
    Count,
    Count0,
    Duration,
    Fraction,
    Port,
    PositiveDuration,
    Quality,
    Section,
    optional,
    or_empty,
    quoting_at_fields,
    regex,
    rule_in_words,
    template_fields,
)
from .metrics import MetricsPlan

# -- sections ---------------------------------------------------------------------

def _commands(value: object) -> object:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of command templates, got {show(value)}")
    return value


def _command(cmd: object) -> object:
    if not isinstance(cmd, str) or not cmd.strip():
        raise ValueError(f"expected a command template string, got {show(cmd)}")
    if "\0" in cmd:
        raise ValueError("command contains a NUL byte")
    template_fields(cmd, COMMAND_FIELDS)
    quoting_at_fields(cmd)
    return cmd


class Deploy(Section):
    commands: Annotated[list[Annotated[str, BeforeValidator(_command)]], BeforeValidator(_commands)] = [
        "/opt/agent/bin/install-release --slot {slot} {version}"]
    timeout: PositiveDuration = 120.0
    # Run on each host by `console check` and before every rollout; must
    # exit 0 if the release is present or fetchable. Same fields and quoting
    # as commands (strategies/checklist.py: render_check).
    check: Annotated[str | None, optional(_command)] = None


class Health(Section):
    path: Annotated[str, regex(URL_PATH, "a URL path")] = "/health"
    port: Annotated[int | None, optional(T.port)] = None
    timeout: PositiveDuration = 2.0
    interval: PositiveDuration = 1.0
    passes: Count = 3
    deadline: PositiveDuration = 60.0
    expect_version: bool = True


class Nginx(Section):
    upstream: Annotated[str, regex(UPSTREAM, "an nginx upstream name")] = "agent"
    # "" until _defaults names them after the upstream: typed str wherever they travel
    config: Annotated[str, or_empty(regex(ABS_PATH, "an absolute path").func)] = ""
    access_log: Annotated[str, or_empty(regex(ABS_PATH, "an absolute path").func)] = ""
    marker_port: Port = 8099
    force_header: Annotated[str | None, optional(regex(HEADER, "a header name").func)] = "X-Canary"
    sticky: str | None = None
    reload_timeout: PositiveDuration = 5.0

    @field_validator("sticky", mode="before")
    @classmethod
    def _sticky(cls, value: object) -> object:
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


class Drain(Section):
    timeout: Duration = 30.0


def _max_fail(value: object) -> float:
    written = value
    m = T.PERCENT.fullmatch(value) if isinstance(value, str) else None
    if m:
        value = float(m.group(1))
    if not T.is_number(value) or not 0 <= value <= 100:
        raise ValueError(f"expected a percentage 0-100, got {show(written)}")
    return float(value)


class Rolling(Section):
    """`capacity_guard`: what to do when an instance that should serve is
    down before a batch and draining it would leave too few: `pause` for a
    human (exit 7 headless), or `on_failure`."""

    batch: Annotated[int | str | list[int | str], BeforeValidator(T.batch)] = 1
    interval: Duration = 0.0
    max_fail_percentage: Annotated[float, BeforeValidator(_max_fail)] = 0.0
    capacity_guard: Literal["pause", "on_failure"] = "pause"


STEP_KINDS = ("set_weight", "pause", "analysis")


def _pause(value: object) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("indefinite", "forever", "")):
        return None
    if isinstance(value, dict):
        extra = [k for k in value if k != "duration"]
        if extra:
            raise ValueError(f"unknown key {show(extra[0])} in pause{did_you_mean(extra[0], ['duration'])}")
        return _pause(value.get("duration"))
    return T.duration(value)


class Step(Section):
    """One canary step: exactly one of set_weight (percent), pause (seconds;
    None = wait for promote) or analysis (seconds). ``kind`` says which."""

    kind: Literal["set_weight", "pause", "analysis"]
    set_weight: float | None = None
    pause: float | None = None
    analysis: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_of(cls, data: object) -> object:
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


def _steps(value: object) -> object:
    if not isinstance(value, list) or not value:
        raise ValueError(f"expected a non-empty list of steps, got {show(value)}")
    return value


class Canary(Section):
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


class Ports(Section):
    blue: Port = 8081
    green: Port = 8082

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        if self.blue == self.green:
            raise ValueError(f"blue and green need different ports, both are {self.blue}")
        return self


class BlueGreen(Section):
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
    def _names(cls, value: object, info: ValidationInfo) -> object:
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


def _confidence(value: object) -> float:
    number = T.fraction(value)
    if not 0.5 <= number < 1.0:
        raise ValueError(f"expected a confidence from 50% to below 100% (e.g. 99%), got {show(value)}")
    return number


def _budget(value: object) -> float:
    number = T.fraction(value)
    if not 0.0 < number <= 0.2:
        raise ValueError(f'expected a false-alarm budget above 0 and at most 20% (e.g. "1%"), got {show(value)}')
    return number


class Thresholds(Section):
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


class Analysis(Section):
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


class Rule(Section):
    metric: Literal["error_rate", "p95_latency", "quality_score", "health_pass_rate", "cpu", "health_check_failed"]
    op: Literal[">", "<"]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: object) -> object:
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


def _rule_list(value: object) -> object:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f'expected a list of rules like "error_rate > 5%", got {show(value)}')
    return value


RuleList = Annotated[list[Rule], BeforeValidator(_rule_list)]


class Alerts(Section):
    critical: RuleList = _rules("critical")
    important: RuleList = _rules("important")
    warning: RuleList = _rules("warning")


NOTIFY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$")
IN_WORDS[NOTIFY_NAME] = "a letter or digit, then up to 40 letters, digits, '_', '.' or '-'"
NOTIFY_URL = re.compile(r"^https?://[^\s/?#@]+(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$")


def _notify_url(value: object) -> object:
    if value is None:
        return None
    if not isinstance(value, str) or not NOTIFY_URL.fullmatch(value):
        raise ValueError(f"expected an http:// or https:// URL, got {show(value)}")
    return value


def _argv(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, str):
        value = shlex.split(value)
    if not isinstance(value, list) or not value or not all(isinstance(a, str) and a and "\0" not in a for a in value):
        raise ValueError(f"expected a command as a list of arguments (run without a shell), got {show(value)}")
    return value


class NotifyTarget(Section):
    """One place notifications go: a webhook taking generic JSON, a
    Slack-compatible webhook ({"text": ...}), or a command (argv, no shell)
    reading the JSON on stdin. URLs and header values are secrets: they are
    redacted from the journal and every output."""

    name: Annotated[str, regex(NOTIFY_NAME, "a target name")]
    kind: Literal["json", "slack", "command"]
    url: Annotated[str | None, BeforeValidator(_notify_url)] = None
    headers: dict[Annotated[str, regex(HEADER, "an HTTP header name")], str] = {}
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


class Notify(Section):
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


def _secrets(value: object) -> object:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of variable names or {{name, env|file}} secrets, got {show(value)}")
    for item in value:
        if isinstance(item, dict):
            continue  # a SecretRef, validated as one
        if not isinstance(item, str) or not VAR_NAME.fullmatch(item):
            raise ValueError(f"expected a variable name, got {show(item)}")
    return value


class SecretRef(Section):
    """A named secret the plan's commands use as `{secrets[NAME]}`: read at
    load from the controller's environment or from a file only its owner may
    read, substituted shell-quoted, and masked by value in every output,
    journal, view and notification (docs/threat-model.md, "secrets")."""

    name: Annotated[str, regex(VAR_NAME, "a secret name")]
    env: Annotated[str | None, optional(regex(VAR_NAME, "an environment variable name").func)] = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret takes exactly one of `env:` or `file:`")
        return self


def _unit(value: object) -> object:
    if not isinstance(value, str) or not UNIT.fullmatch(value) or not value.endswith(".service"):
        raise ValueError(f'expected a systemd unit template ending in ".service" ({UNIT.pattern}), got {show(value)}')
    template_fields(value, ("slot",))
    return value


def _name(value: object) -> object:
    if not isinstance(value, str) or not value.strip() or len(value) > 100 or not value.isprintable():
        raise ValueError(f"expected a short one-line name, got {show(value)}")
    return value


class Plan(Section):
    source: str
    name: Annotated[str, BeforeValidator(_name)]
    service: Annotated[str, regex(SERVICE, "a service name")] = "agent"
    version: Annotated[str | None, optional(regex(RELEASE_VERSION, "a release version").func)] = None
    strategy: Literal["rolling", "canary", "blue_green"]
    hosts: Annotated[str, regex(GROUP_NAME, "an inventory group name")] = "agents"
    load_balancers: Annotated[str, regex(GROUP_NAME, "an inventory group name")] = "lb"
    slot: Annotated[str, regex(SLOT, "a slot name")] = "main"
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
    metrics: MetricsPlan = MetricsPlan()  # metric sources and custom metrics (metrics.py)
    notify: Notify = Notify()
    on_failure: Literal["rollback", "pause", "abort"] = "rollback"
    # inventory variables whose values are secret, and named secrets (SecretRef)
    secrets: Annotated[list[Annotated[Annotated[str, Tag("var")] | Annotated[SecretRef, Tag("ref")],
                                      Discriminator(lambda v: "ref" if isinstance(v, (dict, SecretRef)) else "var")]],
                       BeforeValidator(_secrets)] = []
    rollback_delay: Annotated[float | None, optional(T.duration)] = None
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
