"""The type of free-form JSON: what a journal header, a control message or
an event's fields hold before (or instead of) a typed record. A value read
from outside is `object` until a checker has looked at it; one that is
JSON by construction is a `JSONValue`."""
from __future__ import annotations

from typing import TypeAlias

JSONValue: TypeAlias = "None | bool | int | float | str | list[JSONValue] | dict[str, JSONValue]"
JSONObject: TypeAlias = "dict[str, JSONValue]"
