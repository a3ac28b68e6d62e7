"""Shared validators and helpers for inventory values (no I/O)."""
from __future__ import annotations

import difflib
import ipaddress
import re
from typing import Iterable

HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
HOSTNAME_ADDRESS = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
USER_NAME = re.compile(r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]{0,255}$")
GROUP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# A release version: safe as a path component and a shell word. The sandbox's
# install-release script keeps a copy (it runs on hosts without this package);
# tests/test_validate.py holds the two equal.
RELEASE_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
RANGE = re.compile(r"\[([0-9A-Za-z]+):([0-9A-Za-z]+)(?::([0-9]+))?\]")
MAX_RANGE = 10_000

# C0 and C1 controls (newline and tab kept), line and paragraph separators,
# bidi overrides: what lets host text move a terminal's cursor, recolour it,
# or forge a line of its own
_UNSAFE_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

_TRUE = {"yes", "true", "on", "1", "y"}
_FALSE = {"no", "false", "off", "0", "n", ""}


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The closest choice as a hint for an error message (or the choices)."""
    choices = sorted(set(choices))
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    if close:
        return f'; did you mean "{close[0]}"?'
    if choices:
        return "; expected one of: " + ", ".join(choices)
    return ""


def show(value: object, limit: int = 60) -> str:
    """A short one-line rendering of a bad value for error messages."""
    if isinstance(value, str):
        text = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    elif isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    elif value is None:
        text = "nothing (null)"
    else:
        text = repr(value)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clean_text(text: str) -> str:
    """Host-supplied text with the control characters a terminal would act on removed."""
    return _UNSAFE_TEXT.sub("", text)


def reported_version(value: object) -> tuple[str | None, str]:
    """A version a host reported (/health, /metrics), held to what a
    release version given by the operator must be (it becomes a rollback
    target, rendered into root's deploy commands): (version or None, why
    it was refused or "")."""
    if value is None:
        return None, ""
    text = str(value)
    if not RELEASE_VERSION.fullmatch(text):
        return None, f"reported version {show(text)} is not a release version ({RELEASE_VERSION.pattern})"
    return text, ""


def check_address(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a hostname or IP address, got {show(value)}")
    text = value.strip()
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        ipaddress.ip_address(candidate.split("%", 1)[0])
        if re.fullmatch(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]{1,32})?", candidate):
            return candidate
    except ValueError:
        pass
    if not HOSTNAME_ADDRESS.fullmatch(text) or ".." in text:
        raise ValueError(
            f"expected a hostname or IP address (letters, digits, '.', '-', '_'; no spaces, "
            f"no leading '-'), got {show(value)}"
        )
    return text


def check_port(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected a port number 1-65535, got {show(value)}")
    if isinstance(value, str) and re.fullmatch(r"\s*\d{1,6}\s*", value):
        value = int(value)
    if not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"expected a port number 1-65535, got {show(value)}")
    return value


def check_user(value: object) -> str:
    """Any name OpenSSH takes (`first.last`, `Admin`, `user@corp`): it goes
    to asyncssh as an argument and, for become, through shlex.quote."""
    if not isinstance(value, str) or not USER_NAME.fullmatch(value):
        raise ValueError(f"expected a user name (no spaces or control characters, not starting with '-'), "
                         f"got {show(value)}")
    return value


def check_key_file(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(c in value for c in "\n\r\0"):
        raise ValueError(f"expected a path to a private key file, got {show(value)}")
    return value


def check_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE and low:
            return False
    raise ValueError(f"expected a boolean (true/false, yes/no), got {show(value)}")
