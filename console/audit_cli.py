"""`console audit`: verify a journal (its chain, sealed head, closing count;
or against a head sent elsewhere, or the operator's SSH signature), and sign
a verified one with the operator's SSH key (docs/threat-model.md)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .exitcodes import Exit


def parser() -> argparse.ArgumentParser:
    from .cli_args import Parser as _Parser

    p = _Parser(prog="console audit", description="Check a session journal's hash chain, or sign a verified one.")
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    v = sub.add_parser("verify", help="verify the chain; names the first broken record")
    v.add_argument("journal", metavar="JOURNAL", help="the session journal (.jsonl) to verify")
    how = v.add_mutually_exclusive_group()
    how.add_argument("--expect", metavar="HASH", help="the head recorded elsewhere (the run's journal_hash, as "
                     "notifications carry it): the journal must end there; needed where its sealed head is not")
    how.add_argument("--allowed-signers", metavar="FILE", help="check JOURNAL.sig (console audit sign) against "
                     "this ssh-keygen allowed-signers file instead")
    s = sub.add_parser("sign", help="sign a journal that verifies here with your SSH key (JOURNAL.sig)")
    s.add_argument("journal", metavar="JOURNAL", help="the session journal (.jsonl) to sign; it must verify here")
    s.add_argument("--key", required=True, metavar="FILE",
                   help="your SSH private key, or its public key with the private half in ssh-agent")
    return p


def main(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    from . import journal_sign
    from .journal import chain_hashes, head_message, verify

    path = Path(args.journal)
    if not path.is_file():
        print(f"console audit: error: {args.journal}: no such file", file=sys.stderr)
        return Exit.BAD_INPUT
    if args.action == "sign":
        result = verify(path)
        if not result.ok:
            print(f"console audit: refused: not signing a journal that does not verify: {result.message}",
                  file=sys.stderr)
            return Exit.FAILED
        try:
            sig = journal_sign.sign(path, args.key, head_message(chain_hashes(path)))
        except journal_sign.SignError as exc:
            print(f"console audit: error: {exc}", file=sys.stderr)
            return Exit.BAD_INPUT
        print(f"signed {path}: {sig}")
        return Exit.OK
    result = verify(path, args.expect, args.allowed_signers)
    print(("OK " if result.ok else "BROKEN ") + result.message + (f" final {result.final_hash}" if result.ok else ""))
    return Exit.OK if result.ok else Exit.FAILED
