"""Errors for bad input: always one line, naming file, line and field.

``str(err)`` is ``file:line: field: message`` (``file: field: message`` when
the line is unknown, and the field part is left out when empty).
"""
from __future__ import annotations


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class InputError(Exception):
    """Bad input in a file the user gave us (inventory, plan...)."""

    def __init__(self, file: str, line: int | None, field: str, message: str) -> None:
        self.file = str(file)
        self.line = line
        self.field = _one_line(field)
        self.message = _one_line(message)
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where]
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[type[InputError], tuple[str, int | None, str, str]]:
        # keep picklable despite the custom __init__
        return (type(self), (self.file, self.line, self.field, self.message))


class InventoryError(InputError):
    """Bad inventory file."""
