"""A journal's head signed with the operator's SSH key (`ssh-keygen -Y`).

The sealed head (console/journal_seal.py) is MACed with a key on this
machine: whoever holds the operator's account could rewrite a journal and
seal it again. A signature by the operator's SSH key (kept in an agent, or
on a hardware key) over the verified head, checked against an
allowed-signers file, is what a reviewer elsewhere can trust: `console audit
sign JOURNAL --key KEY` after the run, `console audit verify JOURNAL
--allowed-signers FILE` anywhere. The signature covers the journal's first
and last chain hashes and its record count; it is kept in `JOURNAL.sig`.
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from .private import write_private

NAMESPACE = "rollout-console-journal"


class SignError(Exception):
    """ssh-keygen refused or failed: its own words."""


def message(first: str, records: int, final: str) -> bytes:
    return f"rollout-console journal\nfirst {first}\nrecords {records}\nfinal {final}\n".encode()


def _keygen(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["ssh-keygen", *args], input=data, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SignError(f"ssh-keygen: {exc}") from None


def sign(journal: Path, key: str, data: bytes) -> Path:
    """Sign `data` with `key` (a private key, or a public key whose private
    half is in the agent); the signature goes to JOURNAL.sig."""
    with tempfile.TemporaryDirectory() as tmp:
        msg = Path(tmp) / "head"
        msg.write_bytes(data)
        done = _keygen(["-Y", "sign", "-q", "-f", key, "-n", NAMESPACE, str(msg)], b"")
        if done.returncode != 0:
            raise SignError(done.stderr.decode(errors="replace").strip() or "ssh-keygen -Y sign failed")
        sig = (Path(tmp) / "head.sig").read_bytes()
    target = journal.with_name(journal.name + ".sig")
    write_private(target, sig)
    return target


def check(journal: Path, allowed_signers: str, data: bytes) -> str:
    """The principal whose signature in JOURNAL.sig covers `data`, per the
    allowed-signers file; SignError otherwise."""
    sig = journal.with_name(journal.name + ".sig")
    if not sig.is_file():
        raise SignError(f"{sig}: no signature (console audit sign {journal} --key KEY)")
    found = _keygen(["-Y", "find-principals", "-s", str(sig), "-f", allowed_signers], b"")
    principal = found.stdout.decode(errors="replace").split("\n")[0].strip()
    if found.returncode != 0 or not principal:
        raise SignError(f"{sig}: signed by no key in {allowed_signers}")
    done = _keygen(["-Y", "verify", "-f", allowed_signers, "-I", principal, "-n", NAMESPACE, "-s", str(sig)], data)
    if done.returncode != 0:
        raise SignError(f"{sig}: the signature by {principal} does not cover this journal's head "
                        "(rewritten, cut or extended after it was signed)")
    return principal
