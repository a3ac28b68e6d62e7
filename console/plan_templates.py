"""The commented plans `console init` writes, one per strategy of the
article's decision tree. Shipped as code (not read from examples/, which a
wheel does not install); `$name` fields are filled with string.Template,
so the plans' own `{slot}` / `{version}` template fields pass through.
tests/test_cli_init.py loads every one with the real plan loader."""
from __future__ import annotations

from string import Template

COMMON = """\
# Plan written by `console init` for $inventory.
# The decision tree (console recommend) chose $strategy: $why
#   path: $path
# Check it with `console --plan $output --inventory $inventory --dry-run`,
# then `console check --plan $output --inventory $inventory`.
version: "$version"          # quote versions: YAML reads 2.0 as a number; --release overrides
service: $service
hosts: $hosts                # inventory group running the service ($count host(s))
load_balancers: $lbs         # inventory group of nginx hosts
unit: $service@{slot}.service  # {slot} is substituted

deploy:
  # Template fields: {version} {slot} {service} {host}; values are shell-quoted.
  commands:
    - /opt/$service/bin/install-release --slot {slot} {version}
  timeout: 120s

health:
  path: /health
  timeout: 2s
  interval: 1s
  passes: 3                  # consecutive passes before an instance counts as healthy
"""

BODIES = {
    "rolling": """\
strategy: rolling
slot: main
port: 8080

rolling:
  batch: [1, "20%", "50%"]   # Ansible-style serial: 1 host, then 20 %, then 50 % at a time
  interval: 5s               # pause between batches
  max_fail_percentage: 0

thresholds:
  error_rate: 2%
  p95_latency: 2s

on_failure: rollback
""",
    "canary": """\
strategy: canary
port: 8080

canary:
  sample_interval: 5s
  steps:                     # 1 -> 5 -> 10 -> 50 -> 100 %, judged between steps
    - set_weight: 1
    - analysis: 30s
    - set_weight: 5
    - analysis: 30s
    - set_weight: 10
    - analysis: 30s
    - set_weight: 50
    - pause: {}              # wait for `console promote` (indefinite pause)
    - set_weight: 100

thresholds:
  error_rate: 1%
  p95_latency: 2s
  compare_to_stable: true    # judge the canary against the stable pool

on_failure: rollback
""",
    "blue_green": """\
strategy: blue_green

blue_green:
  mode: units                # blue and green are two slots on every host of `hosts`
  blue: blue
  green: green
  ports:
    blue: 8081
    green: 8082
  pre_switch_delay: 5s       # settle time before the switch
  rollback_window: 60s       # watch after the switch; revert on alerts

thresholds:
  health_pass_rate: 0.95
  error_rate: 1%

on_failure: rollback
""",
}


def render(strategy: str, **fields: object) -> str:
    """The plan text for `strategy` with `fields` filled in."""
    return Template(COMMON + "\n" + BODIES[strategy]).substitute({k: str(v) for k, v in fields.items()},
                                                                  strategy=strategy.replace("_", "-"))
