"""The JSON alias both layers use for documents they build or read back.

A JSON document is what `json.loads` can return and `json.dumps` writes:
journals, event records, the sandbox's state file, an agent's answer.
Typing those as `JSON` rather than `Any` makes a reader narrow a value
(isinstance) before using it; a value whose shape is fixed gets a
TypedDict of its own where it is built.
"""
from __future__ import annotations

from typing import TypeAlias

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
JSONObject: TypeAlias = "dict[str, JSON]"
