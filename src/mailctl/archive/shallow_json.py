"""Read a JSON object of a known, shallow shape one value at a time, never as a whole tree.

The standard library's ``json.loads`` builds the whole document before anyone can look
at it: a manifest of 64 MiB shaped as ``[[],[],...]`` or ``["ab","ab",...]`` becomes
ten to twenty times its size in objects, and deep nesting exhausts the stack. A domain
manifest is one object whose values are scalars or lists of scalars and flat objects
(no list or object inside them), so this reader walks exactly that shape: each list item
is matched by a regular expression, decoded on its own by the standard decoder and
handed to the caller, who keeps only what it needs. Anything nested deeper, or an item
over ``max_item_chars``, is refused where it starts, so memory stays at the text plus
what the caller keeps, and time is linear in the text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from mailctl.errors import InvalidInputError

_WS = re.compile(r"[ \t\n\r]*")
# Written as "unrolled loops": each repetition must consume a quote, so a failed match
# costs linear time, never exponential backtracking.
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_STRING_RE = re.compile(_STRING, re.DOTALL)
_FLAT = r'\{[^"{}\[\]]*(?:' + _STRING + r'[^"{}\[\]]*)*\}'
_FLAT_OBJECT = re.compile(_FLAT, re.DOTALL)
# A run of list items that are flat objects or strings, decoded by one call of the
# standard decoder instead of one each: most of a manifest is such runs. At most 1024
# items and 256 KiB: the regex engine keeps some state per repetition, and the decoder
# builds every item of the run before the caller sees the first.
_ITEM = f"(?:{_FLAT}|{_STRING})"
_RUN = re.compile(f"{_ITEM}(?:[ \\t\\n\\r]*,[ \\t\\n\\r]*{_ITEM}){{0,1023}}", re.DOTALL)
_RUN_CHARS = 256 * 1024
_DECODER = json.JSONDecoder()


class ShallowJson:
    """One JSON object read front to back: ``for key in members(): scalar() or items()``.

    After each key that ``members`` yields, the caller reads its value with exactly one
    call of ``scalar`` (a string, number, true, false or null) or ``items`` (a list of
    scalars and flat objects, yielded one by one).
    """

    def __init__(self, text: str, what: str, max_item_chars: int = 64 * 1024) -> None:
        self.text = text
        self.what = what
        self.max_item_chars = max_item_chars
        self.pos = 0
        self._key = ""

    def members(self) -> Iterator[str]:
        """The keys of the top-level object, in order; refuses duplicates."""
        if self._peek() != "{":
            raise InvalidInputError(f"{self.what} is not a JSON object.")
        self.pos += 1
        seen: set[str] = set()
        if self._peek() == "}":
            self.pos += 1
        else:
            while True:
                if self._peek() != '"':
                    raise self._bad("a key was expected")
                key = self._decode(_STRING_RE)
                assert isinstance(key, str)
                if key in seen:
                    raise InvalidInputError(f"{self.what} has the key {key!r} twice.")
                seen.add(key)
                self._expect(":")
                self._key = key
                yield key
                if self._separator("}"):
                    break
        if self._peek() != "":
            raise self._bad("there is text after the object")

    def scalar(self) -> object:
        """The current value, which must be a string, number, true, false or null."""
        if self._peek() in ("[", "{"):
            raise self._nested()
        return self._decode(None)

    def items(self) -> Iterator[object]:
        """The items of the current value, which must be a list of scalars or flat objects."""
        if self._peek() != "[":
            raise InvalidInputError(f"The manifest's {self._key} is not a JSON list.")
        self.pos += 1
        if self._peek() == "]":
            self.pos += 1
            return
        while True:
            char = self._peek()
            if char == "[":
                raise self._nested()
            run = _RUN.match(self.text, self.pos, self.pos + _RUN_CHARS)
            if run is not None:
                try:
                    values = json.loads(f"[{run.group()}]")
                except ValueError as exc:
                    raise self._bad("a value is malformed") from exc
                self.pos = run.end()
                yield from values
            else:
                yield self._decode(_FLAT_OBJECT) if char == "{" else self.scalar()
            if self._separator("]"):
                return

    def _peek(self) -> str:
        match = _WS.match(self.text, self.pos)
        assert match is not None  # zero or more blanks always match
        self.pos = match.end()
        return self.text[self.pos : self.pos + 1]

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise self._bad(f"{char!r} was expected")
        self.pos += 1

    def _separator(self, closing: str) -> bool:
        """Step over ',' (False) or the closing bracket (True)."""
        char = self._peek()
        if char not in (",", closing):
            raise self._bad(f"',' or {closing!r} was expected")
        self.pos += 1
        return char == closing

    def _decode(self, shape: re.Pattern[str] | None) -> object:
        end = None
        if shape is not None:
            match = shape.match(self.text, self.pos, self.pos + self.max_item_chars)
            if match is None:
                if shape is not _FLAT_OBJECT:
                    raise self._bad("bad string")
                if shape.match(self.text, self.pos, self.pos + 2 * self.max_item_chars):
                    raise InvalidInputError(
                        f"{self.what} has an entry in {self._key!r} of more than "
                        f"{self.max_item_chars} characters."
                    )
                raise self._nested()
            end = match.end()
        try:
            value, stop = _DECODER.raw_decode(self.text, self.pos)
        except (ValueError, RecursionError) as exc:
            raise self._bad("a value is malformed") from exc
        if end is not None and stop != end:
            raise self._bad("a value is malformed")
        self.pos = stop
        return value

    def _nested(self) -> InvalidInputError:
        return InvalidInputError(
            f"{self.what} is nested more than its format allows (in {self._key!r}, at "
            f"character {self.pos})."
        )

    def _bad(self, detail: str) -> InvalidInputError:
        return InvalidInputError(
            f"{self.what} is not valid JSON: {detail} at character {self.pos}."
        )
