"""Values from hosts and users held to whole-value patterns (issue 23,
findings 4, 7 and 9; docs/threat-model.md, "agent hosts")."""
from __future__ import annotations

import io

import pytest

from console.headless import HeadlessReporter
from inventory.errors import InputError
from inventory.nginx_config import Backend, ConfigError, LbState, validate
from inventory.validate import check_address, check_user, clean_text, reported_version
from simfleet import write_plan
from strategies.events import Notice
from strategies.plan import UnsafeValue, check_template_values, load_plan


@pytest.mark.parametrize("override", ["2.0.0\n", "2.0.0\n$(id)"])
def test_a_version_with_a_trailing_newline_is_refused(tmp_path, override):
    plan = write_plan(tmp_path / "plan.yaml")
    with pytest.raises(InputError, match="version"):
        load_plan(plan, version_override=override)


@pytest.mark.parametrize("section", [{"nginx": {"upstream": "agent\n"}}, {"slot": "main\n"},
                                     {"health": {"path": "/health\n"}}, {"nginx": {"header": "X-Canary\n"}},
                                     {"hosts": "agents\n"}])
def test_plan_names_with_a_trailing_newline_are_refused(tmp_path, section):
    with pytest.raises(InputError):
        load_plan(write_plan(tmp_path / "plan.yaml", **section))


def test_inventory_and_nginx_validators_match_whole_values():
    for bad in ("root\n", "deploy\n"):
        with pytest.raises(ValueError):
            check_user(bad)
    assert check_address("web1.example.com\n") == "web1.example.com"  # surrounding space is stripped
    with pytest.raises(ValueError):
        check_address("web1.example.com\nx")
    with pytest.raises(ConfigError):
        validate(LbState("agent\n", {"stable": (Backend("10.0.0.1", 8080),)}, "stable"))
    with pytest.raises(ConfigError):
        validate(LbState("agent", {"stable": (Backend("10.0.0.1\n", 8080),)}, "stable"))


@pytest.mark.parametrize("command,where", [('install "{version}"', "double quotes"),
                                           ("install '{slot}'", "single quotes"),
                                           ("x=`echo {version}`", "backquotes")])
def test_a_template_field_inside_quotes_is_refused_with_file_and_line(tmp_path, command, where):
    plan = write_plan(tmp_path / "plan.yaml", deploy={"commands": ["true", command]})
    with pytest.raises(InputError, match=rf"{plan}:\d+: deploy\.commands.*inside {where}"):
        load_plan(plan)


def test_fields_as_words_or_parts_of_unquoted_words_pass(tmp_path):
    plan = write_plan(tmp_path / "plan.yaml", deploy={
        "commands": ["test -d /opt/agent/releases/{version}", "echo \"done:\" {host} 'x'", "printf '%s' {slot}"]})
    assert len(load_plan(plan).deploy.commands) == 3


@pytest.mark.parametrize("reported", ["1.0.0$(id -un)", "1.0.0\n", "1.0.0 --force", "../../etc", "-rf", "x" * 65])
def test_a_host_reported_version_is_refused_as_user_input_would_be(reported):
    version, why = reported_version(reported)
    assert version is None and "is not a release version" in why
    with pytest.raises(UnsafeValue):
        check_template_values(reported, "main")


def test_good_reported_values_pass():
    assert reported_version("1.2.3+build.7") == ("1.2.3+build.7", "")
    assert reported_version(None) == (None, "")
    check_template_values("1.0.0", "agents-blue")
    with pytest.raises(UnsafeValue, match="slot"):
        check_template_values("1.0.0", "main;id")


def test_control_characters_from_hosts_never_reach_the_terminal():
    hostile = "ok\x1b[2J\x1b]0;pwned\x07\r\u202eevil\u2028result: succeeded\x9b"
    assert clean_text(hostile) == "ok[2J]0;pwnedevilresult: succeeded"
    out = io.StringIO()
    HeadlessReporter(out)(Notice(at=1.0, level="warning", message=hostile))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text and "\u2028" not in text and "\x07" not in text
    assert text.count("\n") == 1
