"""Connection variables: honoured (local, become_user, ProxyJump, -F) or
refused naming file, line and variable; local hosts run on the controller."""
from __future__ import annotations

import asyncio
import os
import textwrap

import pytest

from inventory.connection import Connection
from inventory.errors import InventoryError
from inventory.jump import JumpHop
from inventory.loaders import load_inventory
from inventory.model import Host
from inventory.ssh import SshPool, wrap_command


def inv(tmp_path, text: str, name: str = "hosts.yml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip("\n"))
    return load_inventory(p)


def test_honoured_connection_variables(tmp_path):
    (tmp_path / "rollout_config").write_text("Host *\n    ServerAliveInterval 5\n")
    i = inv(tmp_path, f"""
        all:
          vars:
            ansible_ssh_common_args: "-o ProxyJump=ops@bastion.example.com:2222 -o ServerAliveInterval=5"
          hosts:
            ctl: {{ansible_connection: local}}
            web1:
              ansible_become: true
              ansible_become_user: first.last
            web2:
              ansible_ssh_common_args: "-F {tmp_path}/rollout_config -J a@j1,j2:23 -C"
            web3:
              ansible_become_user: app   # no become: Ansible ignores it too
              ansible_shell_executable: /bin/sh
            web4:
              ansible_ssh_common_args: >-
                -o ProxyCommand="ssh -W %h:%p -q -p 2200 jumper@bastion2"
        """)
    h = i.hosts
    assert h["ctl"].connection.kind == "local"
    assert h["web1"].connection.become_user == "first.last"
    assert h["web1"].connection.jump == (JumpHop("bastion.example.com", 2222, "ops"),)
    assert h["web2"].connection.jump == (JumpHop("j1", None, "a"), JumpHop("j2", 23, None))
    assert h["web2"].connection.ssh_config == f"{tmp_path}/rollout_config"
    assert h["web3"].connection.become_user is None
    assert h["web4"].connection.jump == (JumpHop("bastion2", 2200, "jumper"),)  # the classic ProxyCommand


def test_first_proxyjump_wins_as_in_openssh(tmp_path):
    i = inv(tmp_path, """
        [a]
        h1 ansible_ssh_common_args="-o ProxyJump=first -J second" ansible_ssh_extra_args="-J third"
        """, "hosts")
    assert i.hosts["h1"].connection.jump == (JumpHop("first"),)


@pytest.mark.parametrize(
    "text, line, field, fragment",
    [
        ("all:\n  hosts:\n    h1:\n      ansible_connection: docker\n", 4, "all.hosts.h1.ansible_connection",
         'connection "docker" is not supported'),
        ("all:\n  hosts:\n    h1:\n      ansible_password: s3cret\n", 4, "all.hosts.h1.ansible_password",
         "passwords are not supported"),
        ("all:\n  vars:\n    ansible_become: yes\n    ansible_become_method: su\n  hosts:\n    h1:\n", 4,
         "all.vars.ansible_become_method", 'become method "su" is not supported'),
        ("all:\n  hosts:\n    h1:\n      ansible_ssh_common_args: \"-o ProxyCommand='nc -x proxy:1080 %h %p'\"\n", 4,
         "all.hosts.h1.ansible_ssh_common_args", 'ProxyCommand "nc -x proxy:1080 %h %p" is not supported'),
        ("all:\n  hosts:\n    h1:\n      ansible_ssh_common_args: \"-o ProxyCommand='ssh -i k -W %h:%p b'\"\n", 4,
         "all.hosts.h1.ansible_ssh_common_args", "only `ssh -W %h:%p [user@]bastion`"),
        ("all:\n  hosts:\n    h1:\n      ansible_shell_type: powershell\n", 4,
         "all.hosts.h1.ansible_shell_type", 'ansible_shell_type "powershell" is not supported'),
        ("all:\n  vars:\n    ansible_shell_executable: /bin/bash\n  hosts:\n    h1:\n", 3,
         "all.vars.ansible_shell_executable", 'ansible_shell_executable "/bin/bash" is not supported'),
        ("all:\n  hosts:\n    h1:\n      ansible_ssh_extra_args: -p 2222\n", 4,
         "all.hosts.h1.ansible_ssh_extra_args", 'ssh argument "-p" is not supported'),
        ("all:\n  hosts:\n    h1:\n      ansible_ssh_common_args: -o StrictHostKeyChecking=no\n", 4,
         "all.hosts.h1.ansible_ssh_common_args", 'ssh option "StrictHostKeyChecking"'),
    ],
)
def test_refused_connection_variables(tmp_path, text, line, field, fragment):
    p = tmp_path / "inv.yml"
    p.write_text(text)
    with pytest.raises(InventoryError) as info:
        load_inventory(p)
    err = info.value
    assert (err.file, err.line, err.field) == (str(p), line, field)
    assert fragment in err.message


def test_refusal_in_group_vars_file_names_that_file(tmp_path):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text("x: 1\nansible_become_pass: hunter2\n")
    (tmp_path / "hosts").write_text("h1\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(tmp_path / "hosts")
    assert str(info.value).startswith(f"{tmp_path}/group_vars/all.yml:2: ansible_become_pass: passwords are not supported")


def test_become_user_is_quoted_for_sudo():
    assert wrap_command("id -un", 10, True, "first.last") == "sudo -n -u first.last timeout -k 5 10 sh -c 'id -un'"
    assert wrap_command("id -un", 10, True, "a b;x") == "sudo -n -u 'a b;x' timeout -k 5 10 sh -c 'id -un'"
    assert wrap_command("id -un", 10, False, "app") == "timeout -k 5 10 sh -c 'id -un'"


async def _echo_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.readline())
    await writer.drain()
    writer.close()


async def test_local_connection_runs_on_the_controller(tmp_path):
    marker = tmp_path / "ran"
    host = Host(name="ctl", address="ctl.invalid", connection=Connection(kind="local"))
    pool = SshPool()
    try:
        assert await pool.connect(host) == 0.0  # no SSH dial: ctl.invalid does not even resolve
        rec = await pool.run(host, f"echo $$ > {marker}; echo out; echo err >&2; exit 3", 10)
        assert (rec.exit_status, rec.stdout, rec.stderr) == (3, "out", "err")
        pid = int(marker.read_text())
        assert pid != os.getpid() and pid > 0
        rec = await pool.run(host, "cat", 10, input="fed on stdin")
        assert rec.stdout == "fed on stdin"
        served = await asyncio.start_server(_echo_line, "127.0.0.1", 0)
        async with served:
            reader, writer = await pool.open_stream(host, served.sockets[0].getsockname()[1])
            writer.write(b"on the controller\n")
            assert await reader.readline() == b"on the controller\n"  # a plain local connection
            writer.close()
    finally:
        await pool.close()
