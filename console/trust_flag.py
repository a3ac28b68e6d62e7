"""`--trust-ssh-config FILE`: the operator's explicit, per-file opt-in to an
inventory's ssh config running local code (ProxyCommand, Match exec,
IdentityAgent). Without it such a file is refused at load
(inventory/ssh_config.py, docs/threat-model.md)."""
from __future__ import annotations

import argparse
from typing import Sequence

from inventory.ssh_config import trust_ssh_configs


class _Trust(argparse.Action):
    """Records each named file as trusted as it is parsed, before any
    inventory is read."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[object] | None, option_string: str | None = None) -> None:
        files = [*(getattr(namespace, self.dest, None) or []), str(values)]
        setattr(namespace, self.dest, files)
        trust_ssh_configs(files)


def add_trust_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-ssh-config", action=_Trust, metavar="FILE", default=[],
                   help="let this ssh config (named by an inventory's -F) run what it says on this machine: "
                        "ProxyCommand, Match exec, IdentityAgent (refused otherwise); repeatable")
