"""Reading numbers and JSON from untrusted text: ASCII digits only, bounded nesting."""

from __future__ import annotations

import json
import re
from typing import Any

from mailctl.errors import InvalidInputError

# str.isdigit() accepts "¹" or "٣", which int() then refuses (or reads as another digit);
# only these ten characters are digits on the wire.
_ASCII_DIGITS = re.compile(r"[0-9]+")
MAX_JSON_DEPTH = 64


def ascii_digits(text: str) -> bool:
    """Whether ``text`` is one or more of the ASCII digits 0-9 and nothing else."""
    return _ASCII_DIGITS.fullmatch(text) is not None


def ascii_int(text: str, *, max_digits: int = 18) -> int | None:
    """The number ``text`` spells in ASCII digits, or None if it is anything else.

    More than ``max_digits`` digits is None too: int() refuses strings over 4,300 digits
    with a ValueError, and no count mailctl reads needs more than 18.
    """
    if len(text) > max_digits or not ascii_digits(text):
        return None
    return int(text)


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_limited(text: str, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that refuses nesting deeper than ``max_depth`` before parsing.

    The standard parser recurses once per level, so a few hundred bytes of brackets would
    otherwise exhaust the interpreter's stack. Raises InvalidInputError naming ``what``.
    """
    if json_depth(text) > max_depth:
        raise InvalidInputError(f"{what} is nested more than {max_depth} levels deep.")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInputError(f"{what} is not valid JSON.") from exc
