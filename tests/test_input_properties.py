"""Property tests: any input gives a valid model or a one-line InputError."""
from __future__ import annotations

import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from inventory.errors import InputError
from inventory.loaders import load_inventory
from inventory.model import Inventory
from strategies.plan import Plan, load_plan

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))
FLEET = ROOT / "inventory" / "fleets" / "default.yaml"
TMP = Path(tempfile.mkdtemp(prefix="rollout-props-"))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLAN_KEYS = [
    "strategy", "version", "service", "hosts", "load_balancers", "slot", "port", "unit", "deploy", "commands",
    "health", "nginx", "drain", "rolling", "batch", "canary", "steps", "set_weight", "pause", "analysis",
    "blue_green", "mode", "active", "ports", "blue", "green", "thresholds", "error_rate", "p95_latency",
    "alerts", "alerting", "critical", "warning", "on_failure", "secrets", "rolling_deployment",
    "canary_deployment", "blue_green_deployment", "replacement_rate", "initial_traffic", "step_size",
    "monitoring", "metrics", "rollback", "enabled", "delay", "timeout", "all", "hosts", "vars", "children",
    "ansible_host", "ansible_port", "ansible_user", "ansible_become", "rollout_secrets", "web1",
]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.sampled_from(["rolling", "canary", "blue_green", "30s", "5%", "abc", "{version}", "$(reboot)", "2.0.0",
                     "error_rate > 5%", "units", "blue", "-x", "", "indefinite", "web[01:03]"]),
    st.text(max_size=12),
)
KEYS = st.one_of(st.sampled_from(PLAN_KEYS), st.text(min_size=1, max_size=8))
STRUCTURES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=5)),
    max_leaves=25,
)

BAD_VALUES = ["abc", "-1", "0", "1e9", "[", "{", "&a", "*a", "~", '"$(reboot)"', "100%", "!!binary x"]
_counter = [0]


def _file(suffix: str, text: str) -> Path:
    _counter[0] += 1
    p = TMP / f"case{_counter[0]}{suffix}"
    p.write_bytes(text.encode("utf-8", errors="replace"))
    return p


def _check(loader, path: Path, kind) -> None:
    try:
        result = loader(path)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message, message
        assert path.name in message, message
        assert message.startswith(str(path)), message
        return
    assert isinstance(result, kind)


def _check_plan(path: Path) -> None:
    _check(load_plan, path, Plan)


def _check_inventory(path: Path) -> None:
    _check(load_inventory, path, Inventory)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text):
    _check_plan(_file(".yaml", text))
    _check_inventory(_file(".yaml", text))
    _check_inventory(_file(".ini", text))


@st.composite
def mutated(draw, sources):
    text = draw(st.sampled_from(sources)).read_text()
    lines = text.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "dup", "indent", "dedent", "replace", "insert", "truncate"]))
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip()
        elif op == "replace":
            key = lines[i].split(":", 1)[0]
            value = draw(st.sampled_from(BAD_VALUES))
            lines[i] = f"{key}: {value}\n"
        elif op == "insert":
            lines.insert(i, draw(st.text(max_size=20)) + "\n")
        else:
            j = draw(st.integers(0, max(0, len(lines[i]) - 1)))
            lines[i] = lines[i][:j] + "\n"
    return "".join(lines)


@SETTINGS
@given(mutated(EXAMPLES))
def test_mutated_plans(text):
    _check_plan(_file(".yaml", text))


@SETTINGS
@given(mutated([FLEET]))
def test_mutated_inventory(text):
    _check_inventory(_file(".yaml", text))


@SETTINGS
@given(STRUCTURES)
def test_random_structures(data):
    text = yaml.safe_dump(data, allow_unicode=True)
    _check_plan(_file(".yaml", text))
    _check_inventory(_file(".yml", text))


@SETTINGS
@given(st.sampled_from(["rolling_deployment", "canary_deployment", "blue_green_deployment", "rolling", "canary",
                        "blue_green", "thresholds", "alerts", "health", "nginx", "deploy"]),
       st.dictionaries(KEYS, STRUCTURES, max_size=5))
def test_random_sections(section, body):
    data = {section: body}
    if not section.endswith("_deployment"):
        data["strategy"] = "canary"
    _check_plan(_file(".yaml", yaml.safe_dump(data, allow_unicode=True)))


INI_LINES = st.one_of(
    st.sampled_from(["[agents]", "[agents:vars]", "[lb:children]", "[all:vars]", "[all:children]", "[x:kids]", "[",
                     "agents", "lb", "all", "web[01:03] ansible_port=2222", "web[9:1]", "web[1:99999]",
                     "h1 ansible_host=$(reboot)", "h2 ansible_become=maybe", "h3 ansible_user=ops x='a b'",
                     "rollout_secrets=a,b", "rollout_secrets=['x']", "color=red", "h4 \"unclosed", "h5 =x",
                     "h6 ansible_port=[1]", "ansible_group_priority=x", "# c", ""]),
    st.text(max_size=15),
)


@SETTINGS
@given(st.lists(INI_LINES, max_size=12))
def test_random_ini(lines):
    _check_inventory(_file(".ini", "\n".join(lines) + "\n"))
