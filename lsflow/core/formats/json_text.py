"""JSON text as Python's `json` module writes it (Label Studio's converter uses it), made by orjson.

orjson is 10–20× faster and writes the same bytes for strings, integers, nesting and indentation;
it spells floats below 1e-4 differently (`0.0000194` and `1e-7` where Python writes `1.94e-05` and
`1e-07`) and refuses integers beyond 64 bits. Text that may hold such a float, and values orjson
refuses, go through `json` instead, so the output never depends on which library wrote it.
"""

from __future__ import annotations

import json
import math
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
        return _with_python_floats(value, text)
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


def _with_python_floats(value: Any, text: bytes) -> bytes:
    """`indented_json` of a value that may hold floats orjson spells differently: those floats put in as
    placeholders, orjson's text made, and each placeholder replaced by `json`'s spelling. Python's
    `json` indents in Python, ~30× slower than this (a twentieth of JSON_MIN's records hold such a float)."""
    if b"\\u0000" in text:  # a placeholder could not be told from the value's own text
        return json.dumps(value, indent=2, ensure_ascii=False).encode()
    spelled: list[bytes] = []
    marked = _mark_floats(value, spelled)
    if not spelled:  # only strings looked like such floats: orjson's text is json's
        return text
    text = orjson.dumps(marked, option=orjson.OPT_INDENT_2)
    for number, spelling in enumerate(spelled):
        text = text.replace(b'"\\u0000%d\\u0000"' % number, spelling, 1)
    return text


def _mark_floats(value: Any, spelled: list[bytes]) -> Any:
    """`value` with each float that orjson spells unlike `json` (below 1e-4, or not finite) replaced
    by a placeholder string; `json`'s spelling of it appended to `spelled`."""
    if isinstance(value, float):
        if value != 0.0 and not 1e-4 <= abs(value) < math.inf:
            spelled.append(json.dumps(value).encode())
            return f"\0{len(spelled) - 1}\0"
        return value
    if isinstance(value, dict):
        return {key: _mark_floats(item, spelled) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark_floats(item, spelled) for item in value]
    return value


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
