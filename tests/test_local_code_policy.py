"""An inventory never runs code on this machine (issue 23, finding 1;
docs/threat-model.md, "inventory authors"): the ssh config it names with
-F is read first, and what would run a program, load a library or lend the
operator's agent is refused naming FILE:LINE, unless the operator trusts
that file on the command line. Nothing in the file has run when it is
refused (a marker file proves it)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from inventory.errors import InventoryError
from inventory.loaders import load_inventory
from inventory.ssh import config_jump
from inventory.ssh_config import trust_ssh_configs


@pytest.fixture(autouse=True)
def untrusted():
    trust_ssh_configs([])
    yield
    trust_ssh_configs([])


def setup(tmp_path, config: str, extra_files: dict[str, str] | None = None):
    cfg = tmp_path / "ssh_config"
    cfg.write_text(textwrap.dedent(config).lstrip("\n"))
    for name, text in (extra_files or {}).items():
        (tmp_path / name).write_text(text)
    inv = tmp_path / "hosts.yml"
    inv.write_text(f'all:\n  hosts:\n    web1:\n      ansible_host: 10.9.9.9\n'
                   f'      ansible_ssh_common_args: "-F {cfg}"\n')
    return inv, cfg


REFUSED = [
    ('Match exec "touch {mark}"\n    User x\n', 1, "Match: refused: Match exec"),
    ("Host *\n    ProxyCommand sh -c 'touch {mark}; nc %h %p'\n", 2, "ProxyCommand"),
    ("Host *\n    User x\n    LocalCommand touch {mark}\n", 3, "LocalCommand"),
    ("Host *\n    PermitLocalCommand yes\n", 2, "PermitLocalCommand"),
    ("Host *\n    ForwardAgent yes\n", 2, "ForwardAgent"),
    ("Host *\n    IdentityAgent /tmp/someone-elses-agent.sock\n", 2, "IdentityAgent"),
    ("Host *\n    KnownHostsCommand /bin/touch {mark}\n", 2, "KnownHostsCommand"),
    ("Host *\n    PKCS11Provider /tmp/evil.so\n", 2, "PKCS11Provider"),
    ("Match host x !exec=\"touch {mark}\"\n", 1, "Match"),
    ("Host *\n    proxycommand=sh -c 'touch {mark}'\n", 2, "proxycommand"),
]


@pytest.mark.parametrize("config,line,word", REFUSED, ids=[r[2] + str(i) for i, r in enumerate(REFUSED)])
def test_local_code_in_an_inventory_ssh_config_is_refused_with_file_and_line(tmp_path, config, line, word):
    mark = tmp_path / "ran"
    inv, cfg = setup(tmp_path, config.format(mark=mark))
    with pytest.raises(InventoryError) as err:
        load_inventory(inv)
    message = str(err.value)
    assert f"{cfg}:{line}: {word}" in message
    assert "ansible_ssh_common_args" in message and str(inv) in message  # the inventory's side too
    assert not mark.exists()


def test_an_included_file_is_read_too(tmp_path):
    mark = tmp_path / "ran"
    inv, cfg = setup(tmp_path, f"Include {tmp_path}/more_*\nHost *\n    User x\n",
                     {"more_1": f"Host *\n    ProxyCommand touch {mark}\n"})
    with pytest.raises(InventoryError, match=rf"{tmp_path}/more_1:2: ProxyCommand"):
        load_inventory(inv)
    assert not mark.exists()


def test_the_jump_host_in_disguise_is_dialled_as_a_hop_not_run(tmp_path):
    inv, _ = setup(tmp_path, "Host *\n    ProxyCommand ssh -W %h:%p -p 2200 ops@bastion\n    ProxyJump none\n")
    host = load_inventory(inv).hosts["web1"]
    assert not host.connection.trusted_config
    hops = config_jump(host)
    assert [(h.host, h.port, h.user) for h in hops] == [("bastion", 2200, "ops")]


def test_harmless_settings_pass(tmp_path):
    inv, _ = setup(tmp_path, """
        Host *
            User deploy
            ForwardAgent no
            PermitLocalCommand no
            IdentityAgent none
            ProxyCommand none
        """)
    assert load_inventory(inv).hosts["web1"].connection.ssh_config


def test_the_operator_may_trust_one_file_on_the_command_line(tmp_path):
    inv, cfg = setup(tmp_path, "Host *\n    ProxyCommand nc %h %p\n")
    trust_ssh_configs([str(tmp_path / "other_config")])  # a different file: still refused
    with pytest.raises(InventoryError, match="--trust-ssh-config"):
        load_inventory(inv)
    trust_ssh_configs([str(cfg)])
    assert load_inventory(inv).hosts["web1"].connection.trusted_config


def test_agent_forwarding_stays_refused_even_when_trusted(tmp_path):
    inv, cfg = setup(tmp_path, "Host *\n    ForwardAgent yes\n")
    trust_ssh_configs([str(cfg)])
    with pytest.raises(InventoryError, match=r"ssh_config:2: ForwardAgent: refused: agent forwarding is always off"):
        load_inventory(inv)


def test_a_config_another_user_may_write_is_refused(tmp_path):
    inv, cfg = setup(tmp_path, "Host *\n    User x\n")
    os.chmod(cfg, 0o666)
    with pytest.raises(InventoryError, match="writable by its owner only"):
        load_inventory(inv)
    os.chmod(cfg, 0o644)
    os.chown(cfg, 65534, 65534)  # tests run as root (the sandbox needs it)
    with pytest.raises(InventoryError, match="owned by uid 65534"):
        load_inventory(inv)


def test_cli_refuses_with_one_line_and_exit_2_and_trust_flag_lets_it_through(tmp_path):
    mark = tmp_path / "ran"
    inv, cfg = setup(tmp_path, f'Match exec "touch {mark}"\n')
    check = [sys.executable, "-m", "console", "check", "--plan", "examples/rolling.yaml", "--inventory", str(inv)]
    run = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and f"{cfg}:1: Match" in run.stderr
    assert not mark.exists()
    # trusted: the file is read (asyncssh runs its Match exec), so the next error is the plan's groups
    run = subprocess.run([*check, "--trust-ssh-config", str(cfg)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Match" not in run.stderr, run.stderr


def test_root_with_a_users_home_reads_its_own_ssh_config_not_theirs(tmp_path, monkeypatch):
    """`sudo -E` and `su` without `-` keep the user's $HOME; asyncssh would
    read their ~/.ssh/config (its Match exec running as root) and trust
    their known_hosts. ~ is the password database's home, as in OpenSSH."""
    from inventory.ssh import known_hosts_path
    from inventory.ssh_config import passwd_home

    mark = tmp_path / "ran"
    users = tmp_path / "user-home"
    (users / ".ssh").mkdir(parents=True)
    (users / ".ssh" / "config").write_text(f'Match exec "touch {mark}"\n    User x\n')
    monkeypatch.setenv("HOME", str(users))
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    web1: {ansible_host: 10.9.9.9}\n")
    host = load_inventory(inv).hosts["web1"]
    config_jump(host)  # reads the ssh config as a connection does
    assert not mark.exists()
    assert known_hosts_path(host) == str(passwd_home() / ".ssh" / "known_hosts")


def test_the_users_own_ssh_config_is_checked_as_openssh_checks_it(tmp_path, monkeypatch):
    from inventory.driver import DriverError

    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host *\n    User x\n")
    os.chmod(tmp_path / ".ssh" / "config", 0o666)
    monkeypatch.setattr("inventory.ssh_config.passwd_home", lambda: tmp_path)
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  hosts:\n    web1: {ansible_host: 10.9.9.9}\n")
    with pytest.raises(DriverError, match="writable by its owner only"):
        config_jump(load_inventory(inv).hosts["web1"])
