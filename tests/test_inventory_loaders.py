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
    assert inv.groups["alpha"] == ("web03", "web01")  # the group's own listing order, as Ansible
    bastion = inv.hosts["bastion"]
    assert (bastion.address, bastion.port, bastion.user, bastion.become) == ("10.0.0.1", None, "deploy", False)
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
    assert (w4.address, w4.user, w4.port, w4.become) == ("web4.example.com", "ops", None, True)
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
        ("all:\n  hosts:\n    web1:\n      ansible_user: \"-oProxyCommand=x\"\n",
         "inv.yaml:4: all.hosts.web1.ansible_user: expected a user name"),
        ("all:\n  hosts:\n    'web 1':\n", "inv.yaml:3: all.hosts.web 1: bad host name \"web 1\""),
        ("all:\n  hots:\n    web1:\n", 'inv.yaml:2: all.hots: unknown key; did you mean "hosts"?'),
        ("all:\n  children:\n    agents:\n", "inv.yaml: inventory has no hosts"),
        ("", "inv.yaml: inventory has no hosts"),
        ("all:\n  hosts:\n    web1:\n      ansible_become: maybe\n",
         "inv.yaml:4: all.hosts.web1.ansible_become: expected a boolean"),
        ("all:\n  hosts:\n    web1: {}\n    web1: {}\n", "inv.yaml:4: all.hosts.web1: duplicate key 'web1'"),
        ("all:\n  hosts: [web1]\n", "inv.yaml:2: all.hosts: expected a mapping"),
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
        ("[a]\nweb1 ansible_user='a b'\n", 2, "a.hosts.web1.ansible_user: expected a user name"),
        ("[a:var]\nx=1\n", 1, '[a:var]: unknown section kind "var"; did you mean "vars"?'),
        ("[a]\nweb1 x=\"unterminated\n", 2, "cannot parse host line"),
        ("[a]\nweb1 ansible_port=99999\n", 2, "a.hosts.web1.ansible_port: expected a port number"),
        ("[a]\nweb1 ansible_host=a|b\n", 2, "expected a hostname or IP address"),
        ("[a]\nweb1 novalue\n", 2, "expected key=value"),
        ("[a:children]\nb\n[b:children]\na\n[b]\nh\n", 1, "group cycle"),
        # a tuple as a dict key in a literal: ansible-inventory fails on it (it was an internal error here)
        ("[a]\nweb1 x={(1,2):3}\n", 2, "a.hosts.web1.x: a tuple as a mapping key ((1, 2)): ansible-inventory cannot list it"),
        ("[a]\nweb1\n[a:vars]\nx={'k': {(1,): 2}}\n", 4, "a:vars.x: a tuple as a mapping key ((1,))"),
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
    with pytest.raises(InventoryError, match="TOML inventories need the Ansible engine"):
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


# -- read exactly as Ansible reads it (issue 14) -------------------------------

def test_group_vars_and_host_vars_beside_the_inventory(tmp_path):
    inv_path = write(tmp_path, "hosts.ini", """
        [web]
        web01
        web02 v=host-inline

        [web:vars]
        v=inv-web
        only_inv=1
        """)
    (tmp_path / "group_vars" / "web").mkdir(parents=True)
    write(tmp_path, "group_vars/all.yml", "ansible_user: deploy\nv: all-file\n")
    write(tmp_path, "group_vars/web/10-a.yml", "v: web-a\nfrom_a: 1\n")
    write(tmp_path, "group_vars/web/20-b.json", '{"v": "web-b"}\n')
    write(tmp_path, "group_vars/web/notes.txt", "v: ignored\n")
    (tmp_path / "group_vars" / "web" / "sub").mkdir()
    write(tmp_path, "group_vars/web/sub/30-c.yaml", "from_sub: 3\n")
    (tmp_path / "host_vars").mkdir()
    write(tmp_path, "host_vars/web02.yaml", "v: host-file\n")
    inv = load_inventory(inv_path)
    w1, w2 = inv.hosts["web01"], inv.hosts["web02"]
    assert w1.user == "deploy"
    # group_vars files beat every group's inventory vars; later files win
    assert (w1.var("v"), w1.var("from_a"), w1.var("from_sub"), w1.var("only_inv")) == ("web-b", 1, 3, 1)
    assert w2.var("v") == "host-file"  # host_vars file beats the host's own line
    # a bad value in a vars file is reported in that file
    write(tmp_path, "host_vars/web01", "ansible_port: nope\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv_path)
    assert str(info.value).startswith(f"{tmp_path}/host_vars/web01:1: ansible_port: expected a port number")


def test_host_order_and_ungrouped_as_ansible(tmp_path):
    p = write(tmp_path, "hosts", """
        top
        both
        [prod:children]
        web
        db
        [db]
        db1
        [web]
        both
        web1
        [all]
        direct
        """)
    inv = load_inventory(p)
    # a [x:children] entry declared later joins when declared: db before web
    assert inv.children["prod"] == ("db", "web")
    assert inv.groups["prod"] == ("db1", "both", "web1")
    # hosts listed before the first section leave `ungrouped` once in a group;
    # hosts only in [all] join it
    assert inv.groups["ungrouped"] == ("top", "direct")
    assert inv.groups["all"] == ("direct", "top", "db1", "both", "web1")
    y = write(tmp_path, "inv.yml", """
        all:
          children:
            g:
              children:
                sub: {hosts: {s1: }}
              hosts: {g1: }
          hosts: {a1: }
        """)
    inv = load_inventory(y)
    assert inv.groups["g"] == ("g1", "s1")  # own hosts first, then subgroups'
    assert inv.groups["ungrouped"] == ("a1",)
    assert inv.groups["all"] == ("a1", "g1", "s1")


def test_ini_values_typed_as_ansible(tmp_path):
    p = write(tmp_path, "hosts.ini", """
        [agents]
        a1 flag=False n=1_000 s='x y' raw=false l="[1, 2]"

        [all:vars]
        rollout_simulated=False
        motd=homelab # SSH user
        num=8 # a number
        """)
    inv = load_inventory(p)
    a1 = inv.hosts["a1"]
    assert (a1.var("flag"), a1.var("n"), a1.var("s"), a1.var("raw"), a1.var("l")) == (False, 1000, "x y", "false", [1, 2])
    assert a1.var("motd") == "homelab # SSH user"  # inline comment kept, as Ansible keeps it
    assert a1.var("num") == 8
    assert not inv.simulated
    p.write_text(p.read_text().replace("rollout_simulated=False", "rollout_simulated=false"))
    assert not load_inventory(p).simulated  # the string "false" is false, as `| bool` reads it
    p.write_text(p.read_text().replace("motd=homelab", "ansible_user=homelab"))
    with pytest.raises(InventoryError, match=r"hosts.ini:6: all:vars.ansible_user: expected a user name"):
        load_inventory(p)


def test_patterns_ports_and_ranges_ansible_accepts(tmp_path):
    p = write(tmp_path, "hosts.example", """
        [web]
        badwolf.example.com:5309
        [A:B][0:1].example.org
        test_host_[:2]
        n[1:6:2]-x ansible_user=first.last
        "[::1]:2200"
        [db]
        db[01:02] ansible_user=Admin
        """)
    inv = load_inventory(p)
    assert list(inv.hosts) == ["badwolf.example.com", "A0.example.org", "A1.example.org", "B0.example.org",
                               "B1.example.org", "test_host_0", "test_host_1", "test_host_2", "n1-x", "n3-x",
                               "n5-x", "::1", "db01", "db02"]
    assert inv.hosts["badwolf.example.com"].port == 5309
    assert inv.hosts["::1"].port == 2200
    assert inv.hosts["n3-x"].user == "first.last" and inv.hosts["db02"].user == "Admin"
    assert load_inventory(write(tmp_path, "inventory.handlers", "[h]\nh1\n")).groups["h"] == ("h1",)
    y = write(tmp_path, "inventory", "all:\n  children:\n    g:\n      hosts: single.example.com:2201\n")
    inv = load_inventory(y)  # YAML by its content; `hosts:` as a plain string
    assert inv.groups["g"] == ("single.example.com",)
    assert inv.hosts["single.example.com"].port == 2201


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("hosts", "[web]\nweb[1:2]x[a:9]\n", "hosts:2: web.hosts.web[1:2]x[a:9]: bad host range [a:9]"),
        ("hosts", "[web]\nweb[01:100]\n", "same width"),
        ("hosts", "[web]\nweb:\n", "ends in ':'"),
        ("hosts", "[a:children]\nnever\n", "hosts:2: a:children: includes undefined group \"never\""),
        ("hosts", "[x:vars]\ny=1\n[a]\nh\n", "hosts:1: [x:vars]: section for undefined group \"x\""),
        ("hosts", "[bad group]\n", "hosts:1: bad section header"),
        ("inv.yml", "plugin: aws_ec2\n", "inv.yml:1: plugin: inventory plugin configuration"),
        ("inv.toml", "[all]\n", "inv.toml: TOML inventories need the Ansible engine"),
    ],
)
def test_constructs_refused_in_one_line(tmp_path, name, text, expected):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_directories_and_scripts_refused(tmp_path):
    with pytest.raises(InventoryError, match="inventory directories need the Ansible engine"):
        load_inventory(tmp_path)
    p = write(tmp_path, "inv.py", "#!/bin/sh\necho '{}'\n")
    p.chmod(0o755)
    with pytest.raises(InventoryError, match="executable file: Ansible would run it as an inventory script"):
        load_inventory(p)
