"""Plan loading: native form, seed blocks, defaults, errors with exact lines."""
from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from inventory.errors import InputError
from inventory.loaders import embedded_fleet_path, load_inventory
from strategies.durations import parse_duration
from strategies.errors import PlanError
from strategies.plan import Plan, Rule, Step, load_plan, render_commands, summary
from strategies.topology import unit_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# The article's blocks exactly as printed (its extraction lost the indentation).
FLAT_ROLLING = """# 滾動部署配置
rolling_deployment:
strategy: rolling
replacement_rate: 0.1
replacement_interval: 30s
monitoring:
metrics:
- error_rate
- latency
- instance_health
thresholds:
error_rate: 0.02
latency: 2s
rollback:
enabled: true
delay: 60s
"""
FLAT_CANARY = """# 金絲雀部署配置
canary_deployment:
strategy: canary
initial_traffic: 0.01
max_traffic: 1.0
step_size: 0.04
step_interval: 30s
monitoring:
metrics:
- error_rate
- latency
- quality_score
thresholds:
error_rate: 0.01
latency: 2s
quality_score: 0.95
rollback:
enabled: true
delay: 300s # 5 分鐘
"""
FLAT_BLUE_GREEN = """# 藍綠部署配置
blue_green_deployment:
strategy: blue_green
production_env: green
staging_env: blue
traffic_switch:
delay: 45s
timeout: 60s
rollback:
enabled: true
delay: 5s
monitoring:
metrics:
- latency
- error_rate
- quality_score
threshold: 0.95
health_check:
endpoint: /health
interval: 30s
timeout: 10s
"""
FLAT_ALERTING = """alerting:
critical:
- health_check_failed
- error_rate > 5%
- p95_latency > 5s
important:
- error_rate > 1%
- p95_latency > 2s
- quality_score < 90
warning:
- error_rate > 0.5%
- cpu_usage > 70%
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


def error_of(path: Path, **kw) -> PlanError:
    with pytest.raises(PlanError) as info:
        load_plan(path, **kw)
    assert "\n" not in str(info.value)
    return info.value


# -- seeds ----------------------------------------------------------------------------

def check_rolling_seed(p: Plan) -> None:
    assert p.strategy == "rolling"
    assert p.rolling.batch == "10%"
    assert p.rolling.interval == 30.0
    assert p.thresholds.error_rate == 0.02
    assert p.thresholds.p95_latency == 2.0
    assert p.on_failure == "rollback"
    assert p.rollback_delay == 60.0


def check_canary_seed(p: Plan) -> None:
    assert p.strategy == "canary"
    weights = [s.set_weight for s in p.canary.steps if s.kind == "set_weight"]
    assert weights == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73, 77, 81, 85, 89, 93, 97, 100]
    kinds = [s.kind for s in p.canary.steps]
    assert kinds == ["set_weight", "analysis"] * 25 + ["set_weight"]
    assert all(s.analysis == 30.0 for s in p.canary.steps if s.kind == "analysis")
    assert (p.thresholds.error_rate, p.thresholds.p95_latency, p.thresholds.quality_score) == (0.01, 2.0, 0.95)
    assert p.on_failure == "rollback" and p.rollback_delay == 300.0


def check_blue_green_seed(p: Plan) -> None:
    assert p.strategy == "blue_green"
    bg = p.blue_green
    assert (bg.active, bg.pre_switch_delay, bg.rollback_window, bg.mode) == ("green", 45.0, 60.0, "units")
    assert p.thresholds.health_pass_rate == 0.95
    assert p.thresholds.quality_score == 0.95  # quality_score is among the metrics
    assert (p.health.path, p.health.interval, p.health.timeout) == ("/health", 30.0, 10.0)
    assert p.health.deadline == 3 * 30.0 + 10.0  # 3 passes every 30s and one slow probe fit
    assert p.on_failure == "rollback" and p.rollback_delay == 5.0


SEEDS = [
    ("rolling", FLAT_ROLLING, check_rolling_seed),
    ("canary", FLAT_CANARY, check_canary_seed),
    ("blue-green", FLAT_BLUE_GREEN, check_blue_green_seed),
]


@pytest.mark.parametrize("name, flat, check", SEEDS)
def test_seed_example_files(name, flat, check):
    plan = load_plan(EXAMPLES / "seed" / f"{name}.yaml", version_override="2.0.0")
    check(plan)
    assert plan.version == "2.0.0"
    assert plan.name == name
    assert plan.hosts == "agents" and plan.load_balancers == "lb"


@pytest.mark.parametrize("name, flat, check", SEEDS)
def test_seed_blocks_load_verbatim_as_printed(tmp_path, name, flat, check):
    p = tmp_path / f"{name}.yaml"
    p.write_text(flat)
    check(load_plan(p))
    indented = load_plan(EXAMPLES / "seed" / f"{name}.yaml")
    assert load_plan(p).model_dump(exclude={"source"}) == indented.model_dump(exclude={"source"})


def test_seed_block_with_alerting_and_native_keys_beside(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("version: 2.1.0\nhosts: canaries\n" + FLAT_CANARY + FLAT_ALERTING + "thresholds:\n  error_rate: 2%\n")
    plan = load_plan(p)
    check_canary_seed(plan.model_copy(update={"thresholds": plan.thresholds.model_copy(update={"error_rate": 0.01})}))
    assert plan.version == "2.1.0" and plan.hosts == "canaries"
    assert plan.thresholds.error_rate == 0.02  # the native key beside the block wins
    assert plan.thresholds.quality_score == 0.95  # the rest still comes from the block
    assert [str(r) for r in plan.alerts.warning] == ["error_rate > 0.005", "cpu > 0.7"]


def test_seed_rollback_disabled_means_pause(tmp_path):
    p = write(tmp_path, "r.yaml", """
        rolling_deployment:
          strategy: rolling
          replacement_rate: 25%
          rollback:
            enabled: false
        """)
    plan = load_plan(p)
    assert plan.on_failure == "pause" and plan.rolling.batch == "25%"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("canary_deployment:\n  strategy: canary\n  step_sise: 0.1\n", 3,
         'canary_deployment.step_sise: unknown key; did you mean "step_size"?'),
        ("canary_deployment:\n  strategy: canary\n  step_interval: 3x\n", 3,
         'canary_deployment.step_interval: expected a duration like 30s, 5m, 1h, 250ms or a number of seconds, got "3x"'),
        ("canary_deployment:\n  strategy: rolling\n", 2, 'canary_deployment.strategy: expected "canary"'),
        ("canary_deployment:\n  initial_traffic: 0.5\n  max_traffic: 0.2\n", 2, "is above max_traffic"),
        ("blue_green_deployment:\n  production_env: green\n  staging_env: green\n", 3,
         "blue_green_deployment.staging_env: staging_env must be the other colour"),
        ("blue_green_deployment:\n  production_env: purple\n", 2,
         "blue_green_deployment.production_env: expected one of blue, green"),
        ("rolling_deployment:\n  replacement_rate: 0\n", 2, "rolling_deployment.replacement_rate: expected a replacement rate"),
        ("rolling_deployment:\n  monitoring:\n    metrics:\n      - error_rate\n      - latncy\n", 5,
         'rolling_deployment.monitoring.metrics[1]: unknown metric "latncy"; did you mean "latency"?'),
        ("rolling_deployment:\n  monitoring:\n    thresholds:\n      latency: fast\n", 4,
         "rolling_deployment.monitoring.thresholds.latency: expected a duration"),
        ("rolling_deployment:\n  rollback:\n    enabled: sometimes\n", 3,
         "rolling_deployment.rollback.enabled: expected a boolean"),
        ("rolling_deployment:\n  strategy: rolling\ncanary_deployment:\n  strategy: canary\n", 3, "only one deployment block"),
        # a section written beside the block that is not a mapping: named by validation (it was an internal error
        # when the rollback delay's derived persistence read canary.sample_interval from it)
        ("canary_deployment:\n  rollback:\n    delay: 5m\ncanary: abc\n", 4, 'canary: expected a mapping, got "abc"'),
        ("canary_deployment:\n  rollback:\n    delay: 5m\nthresholds: abc\n", 4, 'thresholds: expected a mapping, got "abc"'),
    ],
)
def test_seed_errors(tmp_path, text, line, fragment):
    p = tmp_path / "seed.yaml"
    p.write_text(text)
    err = error_of(p)
    assert err.line == line
    assert str(err).startswith(f"{p}:{line}: ")
    assert fragment in str(err)


# -- native form ------------------------------------------------------------------------

@pytest.mark.parametrize("name, strategy", [("rolling", "rolling"), ("canary", "canary"), ("blue-green", "blue_green")])
def test_examples_load_and_fit_the_simulated_fleet(name, strategy):
    plan = load_plan(EXAMPLES / f"{name}.yaml")
    assert plan.strategy == strategy and plan.version == "2.0.0"
    assert plan.unit == "agent@{slot}.service" and unit_for(plan, plan.slot) == "agent@main.service"
    assert plan.port == 8080
    assert plan.deploy.commands == ["/opt/agent/bin/install-release --slot {slot} {version}"]
    inv = load_inventory(embedded_fleet_path())
    assert inv.group(plan.hosts) and inv.group(plan.load_balancers)
    assert plan.version in inv.hosts["agent-01"].var("sim_releases")
    line = summary(plan)
    assert "\n" not in line and plan.version in line


def test_defaults(tmp_path):
    plan = load_plan(write(tmp_path, "min.yaml", "strategy: canary\n"))
    assert plan.source == str(tmp_path / "min.yaml") and plan.name == "min"
    assert (plan.service, plan.version, plan.hosts, plan.load_balancers, plan.slot, plan.port) == (
        "agent", None, "agents", "lb", "main", 8080)
    assert plan.nginx.config == "/etc/nginx/conf.d/rollout-agent.conf"
    assert plan.nginx.access_log == "/var/log/nginx/rollout-agent.log"
    assert [s.describe() for s in plan.canary.steps] == [
        "1%", "analysis 1m", "5%", "analysis 1m", "10%", "analysis 1m", "50%", "analysis 1m", "100%"]
    assert plan.blue_green.ports.blue == 8081 and plan.blue_green.ports.green == 8082
    assert [str(r) for r in plan.alerts.critical] == ["health_check_failed > 0", "error_rate > 0.05", "p95_latency > 5"]
    assert [str(r) for r in plan.alerts.important] == ["error_rate > 0.01", "p95_latency > 2", "quality_score < 0.9"]
    assert plan.on_failure == "rollback" and plan.secrets == [] and plan.rollback_delay is None
    with pytest.raises(ValidationError, match="frozen"):
        plan.port = 1


def test_nginx_paths_follow_upstream(tmp_path):
    plan = load_plan(write(tmp_path, "n.yaml", "strategy: canary\nnginx:\n  upstream: chat\n"))
    assert plan.nginx.config == "/etc/nginx/conf.d/rollout-chat.conf"


def test_thresholds_accept_percent_and_durations(tmp_path):
    plan = load_plan(write(tmp_path, "t.yaml", """
        strategy: rolling
        thresholds:
          error_rate: 5%
          p95_latency: 800ms
          quality_score: 90
          cpu: "70%"
        rolling:
          batch: [1, 5, "20%"]
          max_fail_percentage: 10%
        """))
    t = plan.thresholds
    assert (t.error_rate, t.p95_latency, t.quality_score, t.cpu) == (0.05, 0.8, 0.9, 0.7)
    assert plan.rolling.batch == [1, 5, "20%"] and plan.rolling.max_fail_percentage == 10.0


def test_canary_steps_forms(tmp_path):
    plan = load_plan(write(tmp_path, "c.yaml", """
        strategy: canary
        canary:
          steps:
            - set_weight: 0.25
            - pause: null
            - pause: indefinite
            - pause: {duration: 5m}
            - analysis: 90s
        """))
    s = plan.canary.steps
    assert s[0] == Step(kind="set_weight", set_weight=0.25)
    assert s[1].indefinite and s[2].indefinite and s[3].pause == 300.0 and s[4].analysis == 90.0


def test_alert_rule_strings():
    assert Rule.model_validate("error_rate > 5%") == Rule(metric="error_rate", op=">", value=0.05)
    assert Rule.model_validate("p95_latency > 5s").value == 5.0
    assert Rule.model_validate("quality_score < 90") == Rule(metric="quality_score", op="<", value=0.9)
    assert Rule.model_validate("cpu_usage > 70%") == Rule(metric="cpu", op=">", value=0.7)
    assert Rule.model_validate("health_check_failed") == Rule(metric="health_check_failed", op=">", value=0)


def test_version_from_file_override_and_number_text(tmp_path):
    p = write(tmp_path, "v.yaml", "strategy: rolling\nversion: 2.10\n")
    assert load_plan(p).version == "2.10"  # as written, not the float 2.1
    assert load_plan(p, version_override="3.0.0-rc.1").version == "3.0.0-rc.1"


def test_hostile_version_is_rejected(tmp_path):
    p = write(tmp_path, "v.yaml", "strategy: rolling\nversion: 1.0;touch /tmp/pwned\n")
    err = error_of(p)
    assert (err.line, err.field) == (2, "version")
    assert str(err).startswith(f"{p}:2: version: expected a release version: a letter or digit, then")
    ok = write(tmp_path, "ok.yaml", "strategy: rolling\n")
    err = error_of(ok, version_override="1.0;touch /tmp/pwned")
    # from a flag: named by the flag alone (the plan file had no part in it), the rule in words
    assert str(err).startswith("--version: expected a release version: a letter or digit")
    assert str(ok) not in str(err) and "^" not in str(err) and "{0,63}" not in str(err)
    assert str(err).endswith('got "1.0;touch /tmp/pwned"')


def test_render_commands_quotes_every_value(tmp_path):
    plan = load_plan(write(tmp_path, "r.yaml", """
        strategy: rolling
        deploy:
          commands:
            - /opt/agent/bin/install-release --slot {slot} {version} && echo {host} {service} > /tmp/x
        """))
    inv_path = write(tmp_path, "inv.ini", "[agents]\nweb1 pinned_release='$(reboot)'\n")
    hostile = load_inventory(inv_path).hosts["web1"].var("pinned_release")
    assert hostile == "$(reboot)"
    [cmd] = render_commands(plan, hostile, "main", "web1")
    assert cmd == "/opt/agent/bin/install-release --slot main '$(reboot)' && echo web1 agent > /tmp/x"
    assert shlex.split(cmd)[3] == "$(reboot)"
    [cmd] = render_commands(plan, "1.0", "a b", "x;y")
    assert "'a b'" in cmd and "'x;y'" in cmd


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("strategy: rolling\nrolling:\n  batch: abc\n", 3,
         'rolling.batch: expected a count, a percentage like "20%" or a list of them, got "abc"'),
        ("strategy: rolling\nrolling:\n  batch: [1, \"0%\"]\n", 3, "rolling.batch: batch percentage must be above 0%"),
        ("strategy: rolling\nrollin:\n  batch: 1\n", 2, 'rollin: unknown key; did you mean "rolling"?'),
        ("strategy: rolling\nrolling:\n  bacth: 1\n", 3, 'rolling.bacth: unknown key; did you mean "batch"?'),
        ("strategy: rollin\n", 1, 'strategy: expected one of rolling, canary, blue_green, got "rollin"; did you mean "rolling"?'),
        ("version: '1'\n", 1, "strategy: missing required field"),
        ("strategy: canary\ndeploy:\n  commands:\n    - \"true\"\n    - install {vesion}\n", 5,
         'deploy.commands[1]: unknown template field {vesion}; did you mean "{version}"?'),
        ("strategy: canary\ndeploy:\n  commands: ['x {host.__class__}']\n", 3, "unknown template field"),
        ("strategy: canary\ncanary:\n  steps:\n    - set_weight: 1\n    - set_wieght: 5\n", 5,
         'canary.steps[1]: unknown step "set_wieght"; did you mean "set_weight"?'),
        ("strategy: canary\ncanary:\n  steps:\n    - set_weight: 0.125\n", 4, "0.01% steps"),
        ("strategy: canary\ncanary:\n  steps:\n    - {set_weight: 1, pause: 3}\n", 4, "a step is exactly one of"),
        ("strategy: canary\ncanary:\n  steps: []\n", 3, "canary.steps: expected a non-empty list"),
        ("strategy: canary\nalerts:\n  critical:\n    - eror_rate > 5%\n", 4,
         'alerts.critical[0]: unknown metric "eror_rate"; did you mean "error_rate"?'),
        ("strategy: canary\nalerts:\n  critical:\n    - error_rate >= 5%\n", 4, 'only ">" and "<"'),
        ("strategy: canary\nport: true\n", 2, "port: expected a port number (1-65535), got True"),
        ("strategy: blue_green\nblue_green:\n  ports: {blue: 8081, green: 8081}\n", 3, "blue and green need different ports"),
        ("strategy: blue_green\nblue_green:\n  blue: Blue!\n", 3, "blue_green.blue: expected a slot name"),
        ("strategy: canary\nport: 1\nport: 2\n", 3, "port: duplicate key 'port' (first defined on line 2)"),
        ("strategy: canary\nthresholds:\n  error_rate: 5\n", 3, "thresholds.error_rate: expected a fraction"),
        # values echoed as written: "200%", not the 2.0 it was read as
        ("strategy: canary\nthresholds:\n  error_rate: 200%\n", 3, 'thresholds.error_rate: expected a fraction '
         'between 0 and 1 or a percentage like "5%" (0-100%), got "200%"'),
        ("strategy: canary\nalerts:\n  critical:\n    - error_rate > 200%\n", 4, 'got "200%"'),
        ("strategy: rolling\nrolling:\n  max_fail_percentage: 200%\n", 3, 'got "200%"'),
        ("strategy: canary\ncanary:\n  steps:\n    - set_weight: 200%\n", 4, 'got "200%"'),
        ("strategy: canary\nunit: agent.socket\n", 2, 'unit: expected a systemd unit template ending in ".service"'),
        ("strategy: canary\nunit: agent@{version}.service\n", 2, "unknown template field {version}"),
        ("strategy: canary\nhealth:\n  path: /health; reboot\n", 3, "health.path: expected a URL path"),
        ("strategy: canary\nsecrets: [api-token]\n", 2, "secrets: expected a variable name"),
        ("strategy: canary\nsource: x\n", 2, "source: is set by the loader"),
        ("- strategy: canary\n", 1, "expected a mapping of plan settings, got a list"),
        ("strategy: canary\non_failure: explode\n", 2, "on_failure: expected one of rollback, pause, abort"),
        ("strategy: [canary\n", 1, "YAML syntax error"),
    ],
)
def test_plan_errors(tmp_path, text, line, fragment):
    p = tmp_path / "plan.yaml"
    p.write_text(text)
    err = error_of(p)
    assert isinstance(err, InputError)
    assert err.line == line, str(err)
    assert str(err).startswith(f"{p}:{line}: ")
    assert fragment in str(err)


def test_empty_and_missing_plan(tmp_path):
    (tmp_path / "e.yaml").write_text("# nothing\n")
    assert str(error_of(tmp_path / "e.yaml")) == f"{tmp_path / 'e.yaml'}: plan is empty"
    assert str(error_of(tmp_path / "nope.yaml")) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_earliest_error_is_reported(tmp_path):
    p = write(tmp_path, "p.yaml", "strategy: canary\nport: 0\nslot: BAD\n")
    assert error_of(p).line == 2


def test_durations():
    assert [parse_duration(v) for v in ("30s", "5m", "1h", "250ms", 7, "1.5", "1m30s")] == [30, 300, 3600, 0.25, 7, 1.5, 90]
    for bad in ("abc", "-1s", True, None, "", "5 parsecs"):
        with pytest.raises(ValueError, match="duration"):
            parse_duration(bad)


def test_notify_block(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text("name: n\nstrategy: rolling\nnotify:\n  timeout: 2s\n  retries: 1\n  targets:\n"
                 "    - {name: chat, kind: slack, url: 'https://hooks.example.com/T/B/x', tiers: [critical]}\n"
                 "    - {name: page, kind: command, command: /usr/local/bin/page --now}\n")
    plan = load_plan(p)
    chat, page = plan.notify.targets
    assert (chat.tiers, chat.events, page.command) == (["critical"], ["alert", "gate", "result"],
                                                       ["/usr/local/bin/page", "--now"])
    assert plan.notify.secret_values() == ["https://hooks.example.com/T/B/x"]
    assert load_plan(tmp_path / "plan.yaml").notify.timeout == 2.0


@pytest.mark.parametrize("target, line, fragment", [
    ("{name: a, kind: json}", 5, "notify.targets[0]: a json target takes `url:`"),
    ("{name: a, kind: json, url: 'ftp://x/y'}", 5, "notify.targets[0].url: expected an http:// or https:// URL"),
    ("{name: a, kind: sms, url: 'http://x/'}", 5, "notify.targets[0].kind"),
    ("{name: a, kind: json, url: 'http://x/', tiers: [urgent]}", 5, "notify.targets[0].tiers"),
    ("{name: a, kind: json, url: 'http://hooks.example.com/x'}", 5,
     "notify.targets[0]: an http:// URL sends events, tokens and headers in clear"),
])
def test_notify_block_errors(tmp_path, target, line, fragment):
    p = tmp_path / "plan.yaml"
    p.write_text(f"name: n\nstrategy: rolling\nnotify:\n  targets:\n    - {target}\n")
    with pytest.raises(PlanError) as info:
        load_plan(p)
    assert str(info.value).startswith(f"{p}:{line}: {fragment}"), str(info.value)


def test_a_group_the_inventory_lacks_is_named_at_its_line_in_the_plan(tmp_path):
    """The plan's reference is what is wrong: file:line of `hosts:` (or of
    blue_green.green in the groups form); a default the plan never wrote is
    said to be one."""
    from console.session import load_inputs

    p = write(tmp_path, "p.yaml", 'strategy: rolling\nversion: "2.0.0"\nhosts: agentz\n')
    with pytest.raises(InputError) as err:
        load_inputs(str(p), None, None)
    assert str(err.value).startswith(f"{p}:3: hosts: inventory ") and "no group 'agentz'" in str(err.value)
    bg = write(tmp_path, "bg.yaml", 'strategy: blue_green\nversion: "2.0.0"\nblue_green:\n  mode: groups\n'
                                    '  blue: agents\n  green: greens\n')
    with pytest.raises(InputError) as err:
        load_inputs(str(bg), None, None)
    assert str(err.value).startswith(f"{bg}:6: blue_green.green: ") and "'greens'" in str(err.value)
    lb = write(tmp_path, "lb.yaml", 'strategy: rolling\nversion: "2.0.0"\n')
    inv = write(tmp_path, "inv.yaml", "all:\n  children:\n    agents:\n      hosts:\n        a1:\n")
    with pytest.raises(InputError) as err:
        load_inputs(str(lb), str(inv), None)
    assert str(err.value).startswith(f"{lb}: load_balancers: ") and "this is the default" in str(err.value)
