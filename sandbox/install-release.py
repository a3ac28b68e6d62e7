#!/usr/bin/python3
"""install-release [--slot SLOT] VERSION

Installed as /opt/agent/bin/install-release on every sandbox agent host.
Creates /opt/agent/releases/VERSION/{VERSION,behaviour.json} from
/opt/agent/catalog/VERSION.json (or healthy defaults), remembers the old
target in slots/SLOT/previous and switches slots/SLOT/current atomically.
Exit 2 on a bad argument.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

ROOT = os.environ.get("AGENT_ROOT", "/opt/agent")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
SLOT_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def _symlink_atomic(target: str, link: str) -> None:
    tmp = f"{link}.tmp.{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2): same as mv -T


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="install-release")
    parser.add_argument("--slot", default="main")
    parser.add_argument("version")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if not VERSION_RE.fullmatch(args.version):
        print(f"install-release: invalid version {args.version!r}", file=sys.stderr)
        return 2
    if not SLOT_RE.fullmatch(args.slot):
        print(f"install-release: invalid slot {args.slot!r}", file=sys.stderr)
        return 2
    behaviour: object = {}
    catalog = os.path.join(ROOT, "catalog", args.version + ".json")
    if os.path.exists(catalog):
        with open(catalog, encoding="utf-8") as f:
            behaviour = json.load(f)
        if not isinstance(behaviour, dict):
            print(f"install-release: {catalog} is not a JSON object", file=sys.stderr)
            return 2
    release = os.path.join(ROOT, "releases", args.version)
    os.makedirs(release, exist_ok=True)
    _write(os.path.join(release, "VERSION"), args.version + "\n")
    _write(os.path.join(release, "behaviour.json"), json.dumps(behaviour) + "\n")
    slot_dir = os.path.join(ROOT, "slots", args.slot)
    os.makedirs(slot_dir, exist_ok=True)
    current = os.path.join(slot_dir, "current")
    if os.path.islink(current):
        old = os.readlink(current)
        if old != release:
            _symlink_atomic(old, os.path.join(slot_dir, "previous"))
    _symlink_atomic(release, current)
    print(f"installed {args.version} in slot {args.slot}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
