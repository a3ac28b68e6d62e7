"""Host patterns as Ansible reads them in INI and YAML inventories.

A pattern is a name with optional `[x:y]` / `[x:y:step]` ranges and an
optional `:port` (`badwolf.example.com:5309`, `[::1]:2222`,
`[A:F][0:9].example.org`, `test_host_[:99]`). Ansible only takes `:NN` as a
port when what is left is a valid host name or address; otherwise the whole
pattern is the name. Ranges: numeric (`[01:10]` keeps the zero padding and
needs equal widths), one letter (`[a:f]`, `[A:Z]`), an empty start means 0,
a numeric third part is the step; several ranges expand left to right.
Reimplemented from the documented behaviour (Ansible is GPL-3); the corpus
test compares it with `ansible-inventory`.
"""
from __future__ import annotations

import ipaddress
import re
import string

from .validate import show

MAX_HOSTS = 10_000

_NUM_RANGE = r"\[[0-9]+:[0-9]+(?::[0-9]+)?\]"
_ALNUM_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_ALNUM_RANGE})(?:[\w-]|{_ALNUM_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)
_IPV4_PART = rf"(?:[01]?[0-9]{{1,2}}|2[0-4][0-9]|25[0-5]|{_NUM_RANGE})"
_IPV4 = re.compile(rf"^(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}$")
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


def _is_address(text: str) -> bool:
    if _IPV4.fullmatch(text) or _HOSTNAME.fullmatch(text):
        return True
    if "[" in text:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def split_port(pattern: str) -> tuple[str, int | None]:
    """(pattern, port): the port only when the rest is a valid host."""
    text, port = pattern, None
    for regex in (_BRACKETED_PORT, _HOST_PORT):
        m = regex.fullmatch(text)
        if m:
            text, port = m.group(1), int(m.group(2))
    if _is_address(text):
        return text, port
    return pattern, None


def expand(pattern: str) -> list[str]:
    """Every host name a pattern stands for, in Ansible's order."""
    if "[" not in pattern:
        return [pattern]
    head, _, rest = pattern.partition("[")
    body, sep2, tail = rest.partition("]")
    if not sep2:
        raise ValueError(f"unclosed host range in {show(pattern)}")
    bounds = body.split(":")
    if len(bounds) not in (2, 3):
        raise ValueError(f"host range must be begin:end or begin:end:step in {show(pattern)}")
    begin, end = bounds[0] or "0", bounds[1]
    step_text = bounds[2] if len(bounds) == 3 else "1"
    if not end:
        raise ValueError(f"host range must specify an end value in {show(pattern)}")
    if not step_text.isdigit() or int(step_text) < 1:
        raise ValueError(f"host range step must be a whole number of at least 1 in {show(pattern)}")
    step = int(step_text)
    width = 0
    if begin[0] == "0" and len(begin) > 1:
        width = len(begin)
        if len(end) != width:
            raise ValueError(f"host range must give begin and end the same width in {show(pattern)}")
    letters = string.ascii_letters
    if len(begin) == 1 and len(end) == 1 and begin in letters and end in letters:
        a, b = letters.index(begin), letters.index(end)
        if a > b:
            raise ValueError(f"host range must have begin <= end in {show(pattern)}")
        items = list(letters[a:b + 1:step])
    elif begin.isdigit() and end.isdigit():
        nums = range(int(begin), int(end) + 1, step)
        if len(nums) > MAX_HOSTS:
            raise ValueError(f"host range expands to more than {MAX_HOSTS} hosts in {show(pattern)}")
        items = [str(n).zfill(width) for n in nums]
    else:
        raise ValueError(f"bad host range [{body}] in {show(pattern)}: use [01:10], [:99] or [a:f]")
    out: list[str] = []
    for item in items:
        out.extend(expand(head + item + tail))
        if len(out) > MAX_HOSTS:
            raise ValueError(f"host range expands to more than {MAX_HOSTS} hosts in {show(pattern)}")
    return out


def parse_pattern(pattern: str) -> tuple[list[str], int | None]:
    """(host names, port or None) for one inventory host pattern."""
    text, port = split_port(pattern)
    return expand(text), port
