"""Value annotations and name rules the plan's sections share: durations,
fractions, names held to a rule said in words, command templates whose
fields the shell reads as literal words; and `Section`, the frozen model
that refuses unknown keys.
"""
from __future__ import annotations

import re
import string
import typing
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from inventory.validate import GROUP_NAME, RELEASE_VERSION, did_you_mean, show

from . import values as T

SERVICE = re.compile(r"^[a-z][a-z0-9_-]{0,40}$")
SLOT = re.compile(r"^[a-z][a-z0-9_-]{0,20}$")
UNIT = re.compile(r"^[A-Za-z0-9@._{}-]+$")
UPSTREAM = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
HEADER = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,60}$")
ABS_PATH = re.compile(r"^/[A-Za-z0-9._/-]{1,200}$")
URL_PATH = re.compile(r"^/[A-Za-z0-9._~/%?&=+:-]{0,200}$")
COMMAND_FIELDS = ("version", "slot", "service", "host", "secrets")
SECRET_FIELD = re.compile(r"secrets\[([A-Za-z_][A-Za-z0-9_]{0,63})\]")

Duration = Annotated[float, BeforeValidator(T.duration)]
PositiveDuration = Annotated[float, BeforeValidator(T.positive_duration)]
Fraction = Annotated[float, BeforeValidator(T.fraction)]
Quality = Annotated[float, BeforeValidator(T.quality)]
Port = Annotated[int, BeforeValidator(T.port)]
Count = Annotated[int, BeforeValidator(lambda v: T.integer(v, 1, 1_000_000, "a count"))]
Count0 = Annotated[int, BeforeValidator(lambda v: T.integer(v, 0, 1_000_000_000, "a count"))]


# Each name rule as an error says it: in words, not as the regex it is.
IN_WORDS = {
    SERVICE: "a lowercase letter, then up to 40 lowercase letters, digits, '_' or '-'",
    SLOT: "a lowercase letter, then up to 20 lowercase letters, digits, '_' or '-'",
    UPSTREAM: "a lowercase letter, then up to 40 lowercase letters, digits or '_'",
    HEADER: "a letter, then up to 60 letters, digits or '-'",
    ABS_PATH: "'/' then up to 200 letters, digits, '.', '_', '-' or '/'",
    URL_PATH: "'/' then up to 200 letters, digits or any of . _ ~ / % ? & = + : -",
    GROUP_NAME: "a letter, digit or '_', then up to 127 letters, digits, '_', '.' or '-'",
    RELEASE_VERSION: ("a letter or digit, then up to 63 letters, digits, '.', '_', '+' or '-' "
                      "(e.g. 2.0.0, 2.1.0-rc.1; no spaces, no shell characters)"),
}


def rule_in_words(pattern: re.Pattern[str], what: str) -> str:
    return f"expected {what}: {IN_WORDS[pattern]}" if pattern in IN_WORDS else f"expected {what}"


def regex(pattern: re.Pattern[str], what: str) -> BeforeValidator:
    def check(value: object) -> object:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise ValueError(f"{rule_in_words(pattern, what)}; got {show(value)}")
        return value

    return BeforeValidator(check)


def optional(inner: typing.Callable[[object], object]) -> BeforeValidator:
    def check(value: object) -> object:
        return None if value is None else inner(value)

    return BeforeValidator(check)


def or_empty(inner: typing.Callable[[object], object]) -> BeforeValidator:
    """null (or absent) reads as "", which a model's defaults then fill."""
    def check(value: object) -> object:
        return "" if value is None else inner(value)

    return BeforeValidator(check)


class Section(BaseModel):
    """A part of the plan: frozen, and an unknown key is an error (a typo never
    passes silently as a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def template_fields(template: str, allowed: tuple[str, ...]) -> None:
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"bad template {show(template)}: {exc} (write {{{{ and }}}} for literal braces)") from None
    for _text, name, spec, conv in parts:
        if name is None:
            continue
        if name == "secrets":
            raise ValueError("template field {secrets} takes a name: {secrets[NAME]}")
        if SECRET_FIELD.fullmatch(name) and "secrets" in allowed:  # declared under `secrets:` (Plan._secret_fields)
            name = "secrets"
        if name not in allowed:
            names = ", ".join("{" + a + "}" for a in allowed)
            hint = did_you_mean(name, allowed).replace('"', "")
            if "did you mean" in hint:
                hint = hint.replace("did you mean ", 'did you mean "{').replace("?", '}"?')
            else:
                hint = f"; allowed: {names}"
            raise ValueError(f"unknown template field {{{name}}}{hint}")
        if spec or conv:
            raise ValueError(f"template field {{{name}}} takes no format spec or conversion")


def quoting_at_fields(template: str) -> None:
    """Each field must stand where the shell reads its value as one literal
    word: outside quotes, backquotes and here-documents. The value is
    substituted shell-quoted ('...'), which is a word of its own anywhere
    unquoted (`releases/{version}` included), but inside "..." the quotes are
    literal and `$(...)` in a host-reported version would run (issue 23)."""
    if "<<" in template and "{" in template.split("<<", 1)[1].replace("{{", ""):
        raise ValueError("a template field after << (a here-document) is not quoted by the shell: "
                         "pass the value as an argument")
    quote = ""  # the quote we are inside: ', " or `
    i = 0
    while i < len(template):
        ch = template[i]
        if template.startswith(("{{", "}}"), i):
            i += 2
            continue
        if ch == "{" and quote:
            name = template[i + 1:template.index("}", i)]
            where = {"'": "single quotes", '"': "double quotes", "`": "backquotes"}[quote]
            raise ValueError(f"template field {{{name}}} is inside {where}: write it as a shell word of its own "
                             f"({'{' + name + '}'} unquoted; the console quotes its value)")
        if ch == "\\" and quote != "'":
            i += 2
            continue
        if ch in "'\"`" and (not quote or quote == ch):
            quote = "" if quote else ch
        i += 1
