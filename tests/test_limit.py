"""`--limit` patterns as `ansible --limit` reads them (inventory/limit.py),
pure: names in, names out. The expectations are Ansible's documented
examples (Patterns: targeting hosts and groups)."""
from __future__ import annotations

import pytest

from inventory.limit import LimitError, limited, select
from inventory.loaders import embedded_fleet_path, load_inventory

HOSTS = ["web-01", "web-02", "web-03", "db-01", "db-02", "lb-01"]
GROUPS = {"all": tuple(HOSTS), "webservers": ("web-01", "web-02", "web-03"), "dbservers": ("db-01", "db-02"),
          "staging": ("web-03", "db-02"), "lb": ("lb-01",)}


@pytest.mark.parametrize("pattern,expected", [
    ("all", HOSTS),
    ("*", HOSTS),
    ("web-02", ["web-02"]),
    ("webservers", ["web-01", "web-02", "web-03"]),
    ("webservers:dbservers", ["web-01", "web-02", "web-03", "db-01", "db-02"]),
    ("webservers,dbservers", ["web-01", "web-02", "web-03", "db-01", "db-02"]),
    ("dbservers,web-01", ["web-01", "db-01", "db-02"]),                  # inventory order, not pattern order
    ("webservers:!staging", ["web-01", "web-02"]),
    ("webservers:&staging", ["web-03"]),
    ("!staging:webservers", ["web-01", "web-02"]),                        # exclusions apply after the union
    ("webservers:dbservers:&staging:!db-02", ["web-03"]),
    ("web-0*", ["web-01", "web-02", "web-03"]),
    ("*-01", ["web-01", "db-01", "lb-01"]),
    ("db-0?", ["db-01", "db-02"]),
    ("~web-0[13]", ["web-01", "web-03"]),
    ("~(web|db)-02", ["web-02", "db-02"]),
    ("~.*servers", ["web-01", "web-02", "web-03", "db-01", "db-02"]),      # a regex matches group names too
    ("webservers[0]", ["web-01"]),
    ("webservers[-1]", ["web-03"]),
    ("webservers[0:1]", ["web-01", "web-02"]),
    ("webservers[1:]", ["web-02", "web-03"]),
    ("webservers[0:1]:db-01", ["web-01", "web-02", "db-01"]),
    (" webservers , !web-02 ", ["web-01", "web-03"]),
])
def test_patterns(pattern, expected):
    assert select(pattern, HOSTS, GROUPS) == expected


def test_a_file_of_patterns(tmp_path):
    hosts = tmp_path / "retry"
    hosts.write_text("web-01\n# a comment\ndb-02\n")
    assert select(f"@{hosts}", HOSTS, GROUPS) == ["web-01", "db-02"]
    assert select(f"@{hosts}:!db-02", HOSTS, GROUPS) == ["web-01"]


@pytest.mark.parametrize("pattern,needle", [
    ("nope", "'nope' matches no host or group"),
    ("webservers:&dbservers", "leaves no host"),
    ("~[", "not a regular expression"),
    ("webservers[7]", "outside the group's 3 host(s)"),
    ("@/nonexistent/file", "/nonexistent/file"),
    (",", "names no host"),
])
def test_bad_patterns_are_one_line_input_errors(pattern, needle):
    with pytest.raises(LimitError) as err:
        select(pattern, HOSTS, GROUPS)
    assert needle in str(err.value) and str(err.value).startswith("--limit: ") and "\n" not in str(err.value)


def test_limited_inventory_keeps_the_load_balancers_and_group_order():
    inv = load_inventory(embedded_fleet_path())
    cut = limited(inv, "agents:!agent-0[2-9]", keep=inv.groups["lb"])
    assert list(cut.hosts) == ["agent-01", "agent-10", "lb-01"]
    assert cut.groups["agents"] == ("agent-01", "agent-10") and cut.groups["lb"] == ("lb-01",)
    assert cut.hosts["agent-01"] is inv.hosts["agent-01"]  # the hosts themselves are untouched
