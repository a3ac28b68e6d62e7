"""Inventory loading: Ansible YAML/INI formats, precedence, validation errors."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from inventory.errors import InputError, InventoryError
from inventory.loaders import embedded_fleet_path, load_inventory
from inventory.yaml_source import parse_yaml


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return p


YAML_INV = """
all:
  vars:
    color: all
    ansible_user: deploy
    rollout_secrets: [api_token]
  hosts:
    bastion:
      ansible_host: 10.0.0.1
  children:
    agents:
      vars:
        color: agents
      hosts:
        web[01:03]:
          ansible_port: "2222"
      children:
        canary:
          vars:
            color: canary
          hosts:
            web02:
              color: host
              ansible_become: "yes"
    zeta:
      vars: {color: zeta}
      hosts:
        web03:
    alpha:
      vars: {color: alpha, db_password: hunter2, rollout_secrets: [db_password]}
      hosts:
        web03:
        web01:
"""


def test_yaml_inventory_hosts_groups_and_connection_fields(tmp_path):
    inv = load_inventory(write(tmp_path, "hosts.yaml", YAML_INV))
    assert list(inv.hosts) == ["bastion", "web01", "web02", "web03"]
    assert inv.groups["all"] == ("bastion", "web01", "web02", "web03")
    assert inv.groups["agents"] == ("web01", "web02", "web03")  # children included
    assert inv.groups["canary"] == ("web02",)
    assert inv.groups["alpha"] == ("web01", "web03")  # inventory order, not listing order
    bastion = inv.hosts["bastion"]
    assert (bastion.address, bastion.port, bastion.user, bastion.become) == ("10.0.0.1", 22, "deploy", False)
    web02 = inv.hosts["web02"]
    assert (web02.address, web02.port, web02.become) == ("web02", 2222, True)
    assert set(web02.groups) == {"agents", "canary"}
    assert inv.secrets == frozenset({"api_token", "db_password"})
    assert inv.group("agents")[0].name == "web01"
    with pytest.raises(KeyError):
        inv.group("nope")


def test_variable_precedence_like_ansible(tmp_path):
    inv = load_inventory(write(tmp_path, "hosts.yaml", YAML_INV))
    assert inv.hosts["bastion"].var("color") == "all"
    assert inv.hosts["web02"].var("color") == "host"  # host vars beat every group
    # web01: agents and alpha are both depth 1 -> alphabetical order, later ("alpha") wins
    assert inv.hosts["web01"].var("color") == "alpha"
    # web03: agents, alpha, zeta all depth 1 -> zeta is last alphabetically
    assert inv.hosts["web03"].var("color") == "zeta"


def test_child_group_beats_parent_regardless_of_name(tmp_path):
    p = write(tmp_path, "inv.yml", """
        all:
          children:
            zparent:
              vars: {x: parent}
              children:
                achild:
                  vars: {x: child}
                  hosts: {h1: }
        """)
    assert load_inventory(p).hosts["h1"].var("x") == "child"


def test_ini_inventory(tmp_path):
    p = write(tmp_path, "hosts.ini", """
        # comment
        bastion ansible_host=10.0.0.1

        [agents]
        web[01:03] ansible_port=2222
        web04 ansible_host=web4.example.com ansible_user=ops api_token="$(reboot)" ansible_become=yes

        [agents:vars]
        color=agents
        rollout_secrets=api_token

        [lb]
        lb-01

        [prod:children]
        agents
        lb

        [prod:vars]
        color=prod

        [all:vars]
        color=all
        """)
    inv = load_inventory(p)
    assert inv.groups["all"] == ("bastion", "web01", "web02", "web03", "web04", "lb-01")
    assert inv.groups["prod"] == ("web01", "web02", "web03", "web04", "lb-01")
    assert inv.groups["ungrouped"] == ("bastion",)
    w4 = inv.hosts["web04"]
    assert (w4.address, w4.user, w4.port, w4.become) == ("web4.example.com", "ops", 22, True)
    assert w4.var("api_token") == "$(reboot)"
    assert inv.hosts["web02"].port == 2222
    assert inv.hosts["web01"].var("color") == "agents"  # child group beats parent
    assert inv.hosts["lb-01"].var("color") == "prod"
    assert inv.hosts["bastion"].var("color") == "all"
    assert inv.secrets == frozenset({"api_token"})


def test_ini_without_extension(tmp_path):
    p = write(tmp_path, "hosts", "[agents]\nagent-1\n")
    assert load_inventory(p).groups["agents"] == ("agent-1",)


def test_embedded_default_fleet():
    path = embedded_fleet_path()
    assert path.name == "default.yaml" and path.parent.name == "fleets"
    inv = load_inventory(path)
    assert inv.simulated
    assert inv.groups["agents"] == tuple(f"agent-{i:02d}" for i in range(1, 11))
    assert inv.groups["lb"] == ("lb-01",)
    assert inv.hosts["agent-01"].var("sim_releases")["2.1.0-bad"] == {"error_rate": 0.08}
    with pytest.raises(InventoryError):
        embedded_fleet_path("../etc/passwd")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("all:\n  children:\n    agents:\n      hosts:\n        web1:\n          ansible_port: 70000\n",
         "inv.yaml:6: all.children.agents.hosts.web1.ansible_port: expected a port number 1-65535, got 70000"),
        ("all:\n  hosts:\n    web1:\n      ansible_host: \"10.0.0.1; rm -rf /\"\n",
         "inv.yaml:4: all.hosts.web1.ansible_host: expected a hostname or IP address"),
        ("all:\n  hosts:\n    web1:\n      ansible_host: -oProxyCommand=x\n",
         "inv.yaml:4: all.hosts.web1.ansible_host: expected a hostname or IP address"),
        ("all:\n  hosts:\n    web1:\n      ansible_host: $(reboot)\n",
         "inv.yaml:4: all.hosts.web1.ansible_host: expected a hostname or IP address"),
        ("all:\n  hosts:\n    web1:\n      ansible_user: Root\n",
         "inv.yaml:4: all.hosts.web1.ansible_user: expected a user name"),
        ("all:\n  hosts:\n    'web 1':\n", "inv.yaml:3: all.hosts.web 1: bad host name \"web 1\""),
        ("all:\n  hots:\n    web1:\n", 'inv.yaml:2: all.hots: unknown key; did you mean "hosts"?'),
        ("all:\n  children:\n    agents:\n", "inv.yaml: inventory has no hosts"),
        ("", "inv.yaml: inventory has no hosts"),
        ("all:\n  hosts:\n    web1:\n      ansible_become: maybe\n",
         "inv.yaml:4: all.hosts.web1.ansible_become: expected a boolean"),
        ("all:\n  hosts:\n    web1: {}\n    web1: {}\n", "inv.yaml:4: all.hosts.web1: duplicate key 'web1'"),
        ("all:\n  hosts: [web1]\n", "inv.yaml:2: all.hosts: expected a mapping of host names"),
        ("all:\n  hosts:\n    web1:\n  bad: [\n", "inv.yaml:4: YAML syntax error"),
    ],
)
def test_yaml_inventory_errors(tmp_path, text, expected):
    p = tmp_path / "inv.yaml"
    p.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path) + "/")
    assert msg[len(str(tmp_path)) + 1 :].startswith(expected)
    assert "\n" not in msg


def test_error_attributes(tmp_path):
    p = tmp_path / "inv.yaml"
    p.write_text("all:\n  hosts:\n    web1:\n      ansible_port: 0\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    err = info.value
    assert isinstance(err, InputError)
    assert (err.file, err.line, err.field) == (str(p), 4, "all.hosts.web1.ansible_port")
    assert str(err) == f"{p}:4: all.hosts.web1.ansible_port: {err.message}"


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("[a]\nweb1 ansible_user=Root\n", 2, "a.hosts.web1.ansible_user: expected a user name"),
        ("[a:var]\nx=1\n", 1, '[a:var]: unknown section kind "var"; did you mean "vars"?'),
        ("[a]\nweb1 x=\"unterminated\n", 2, "cannot parse host line"),
        ("[a]\nweb1 ansible_port=99999\n", 2, "a.hosts.web1.ansible_port: expected a port number"),
        ("[a]\nweb1 ansible_host=a|b\n", 2, "expected a hostname or IP address"),
        ("[a]\nweb1 novalue\n", 2, "expected key=value"),
        ("[a:children]\nb\n[b:children]\na\n[b]\nh\n", 1, "group cycle"),
    ],
)
def test_ini_inventory_errors(tmp_path, text, line, fragment):
    p = tmp_path / "inv.ini"
    p.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"{p}:{line}: ")


def test_missing_file_and_bad_extension(tmp_path):
    with pytest.raises(InventoryError, match="file not found"):
        load_inventory(tmp_path / "nope.yaml")
    (tmp_path / "x.toml").write_text("a = 1\n")
    with pytest.raises(InventoryError, match="unknown inventory format"):
        load_inventory(tmp_path / "x.toml")


def test_ipv6_and_ranges(tmp_path):
    p = write(tmp_path, "inv.yaml", """
        all:
          hosts:
            v6: {ansible_host: "::1"}
            db-[a:c]:
            n[1:5:2]:
        """)
    inv = load_inventory(p)
    assert inv.hosts["v6"].address == "::1"
    assert list(inv.hosts) == ["v6", "db-a", "db-b", "db-c", "n1", "n3", "n5"]


def test_yaml_source_line_locator():
    doc = parse_yaml("a:\n  b: 1\n  c:\n    - x\n    - y\n", file="t.yaml")
    assert doc.data == {"a": {"b": 1, "c": ["x", "y"]}}
    assert doc.line_of(("a", "b")) == 2
    assert doc.line_of(("a", "c", 1)) == 5
    assert doc.line_of(("a", "c", 1, "missing")) == 5  # nearest parent
    assert doc.line_of(("zz",)) == 1


def test_yaml_source_rejects_unsafe_tags_and_alias_loops():
    with pytest.raises(InputError, match="t.yaml:1: a: unsupported tag"):
        parse_yaml("a: !!python/object/apply:os.system [id]\n", file="t.yaml")
    with pytest.raises(InputError, match="recursive YAML alias"):
        parse_yaml("a: &x [*x]\n", file="t.yaml")
