"""JSON text as Python's `json` module writes it (Label Studio's converter uses it), made by orjson.

orjson is 10–20× faster and writes the same bytes for strings, integers, nesting and indentation;
it spells floats below 1e-4 differently (`0.0000194` and `1e-7` where Python writes `1.94e-05` and
`1e-07`) and refuses integers beyond 64 bits. Text that may hold such a float, and values orjson
refuses, go through `json` instead, so the output never depends on which library wrote it.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS = frozenset(b"0123456789")
_NUMBER_CHARACTERS = _DIGITS | {ord(".")}


def indented_json(value: Any) -> bytes:
    """`json.dumps(value, indent=2, ensure_ascii=False)`, UTF-8 encoded."""
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except orjson.JSONEncodeError:
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    if _may_hold_small_float(text):
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    return text


def compact_json(value: Any) -> str:
    """`json.dumps(value, ensure_ascii=False, separators=(",", ":"))`."""
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if _may_hold_small_float(text):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.decode()


def _may_hold_small_float(text: bytes) -> bool:
    """A number with a negative exponent, or a fraction starting 0.0000, somewhere in `text`.
    Strings can look like one (`"frame2e-3"`, `"10.0000"`): they only cost the slower path."""
    at = text.find(b"e-", 1)
    while at != -1:
        if text[at - 1] in _DIGITS:
            return True
        at = text.find(b"e-", at + 1)
    at = text.find(b"0.0000")
    while at != -1:
        if at == 0 or text[at - 1] not in _NUMBER_CHARACTERS:
            return True
        at = text.find(b"0.0000", at + 1)
    return False
