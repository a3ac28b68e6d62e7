"""Rendering the plan's command templates for one host: every substituted
value shell-quoted, values read back from hosts checked first, named
secrets read from the environment or a private file.
"""
from __future__ import annotations

import os
import shlex

from inventory.ssh_config import expand_home
from inventory.validate import GROUP_NAME, RELEASE_VERSION, show

from .models import Plan, SecretRef


class UnsafeValue(ValueError):
    """A value refused before it reaches a command template."""


def check_template_values(version: str, slot: str) -> None:
    """A version or slot read back from a host (a rollback target, the slot
    it runs in) held to what the operator may give, before it is rendered
    into root's commands: UnsafeValue otherwise."""
    if not RELEASE_VERSION.fullmatch(str(version)):
        raise UnsafeValue(f"version {show(version)} is not a release version ({RELEASE_VERSION.pattern})")
    if not GROUP_NAME.fullmatch(str(slot)):  # a slot of units mode or an inventory group
        raise UnsafeValue(f"slot {show(slot)} is not a slot or group name ({GROUP_NAME.pattern})")


def render_template(plan: Plan, template: str, version: str, slot: str, host_name: str, *,
                    reveal: bool = False) -> str:
    """One command template with every substituted value shell-quoted.

    The template text is the plan author's shell and is trusted; the values
    (version, slot, service, host) are not (see also check_template_values).
    Named secrets are substituted only with `reveal` (a command about to
    run); otherwise as *** (what a dry run prints)."""
    secrets = {k: shlex.quote(v) if reveal else "***" for k, v in plan._secret_values.items()}
    return template.format(version=shlex.quote(str(version)), slot=shlex.quote(str(slot)),
                           service=shlex.quote(str(plan.service)), host=shlex.quote(str(host_name)),
                           secrets=secrets)


def render_commands(plan: Plan, version: str, slot: str, host_name: str, *, reveal: bool = False) -> list[str]:
    """Deploy commands for one host (see `render_template`)."""
    return [render_template(plan, cmd, version, slot, host_name, reveal=reveal) for cmd in plan.deploy.commands]


def read_secret(ref: SecretRef) -> str:
    """A named secret's value: the environment variable, or the file (owned
    by this user or root, readable by its owner only, not a symlink)."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise ValueError(f"environment variable {ref.env} is not set")
        return value
    path = expand_home(str(ref.file))  # ~ as OpenSSH has it: never another user's $HOME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (os.geteuid(), 0) or st.st_mode & 0o077:
            raise ValueError(f"{path} must belong to you and be readable by its owner only (chmod 600)")
        value = os.read(fd, 64 * 1024).decode("utf-8", "replace").rstrip("\r\n")
    finally:
        os.close(fd)
    if not value:
        raise ValueError(f"{path} is empty")
    return value
