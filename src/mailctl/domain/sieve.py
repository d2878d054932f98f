"""A mailbox's Sieve script (RFC 5228) from its forwarding and auto-reply settings.

Pure text: the script is rendered by reconcile into the folder Dovecot's Pigeonhole reads
at delivery. Every text the owner chose goes into a quoted string, where only ``"`` and
``\\`` are special (RFC 5228, 2.4.2): both are escaped, so no subject or body can end
its string early or add a command. Line breaks inside a quoted string are plain text
(a line holding only "." ends nothing there: that is a ``text:`` block's terminator).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date

from mailctl.errors import InvalidInputError

MAX_SUBJECT_CHARS = 200
MAX_BODY_CHARS = 10_000
# Pigeonhole's own default allows 4 redirects per delivery; mailctl's Dovecot allows this
# many (sieve_max_redirects), and a mailbox may forward to as many.
MAX_DESTINATIONS = 10
# One reply per sender and day at most: vacation's smallest period.
REPLY_DAYS = 1
HEADER = "# Rendered by mailctl from the mailbox's settings; edits here are overwritten.\n"


@dataclass(frozen=True)
class Autoreply:
    """An auto-reply as rendered: its subject, body and inclusive UTC dates."""

    subject: str
    body: str
    starts_on: date | None = None
    ends_on: date | None = None


@dataclass(frozen=True)
class MailboxScript:
    """What one mailbox's script does: forward (``keep_copy`` or not), reply, or both."""

    destinations: tuple[str, ...] = ()
    keep_copy: bool = False
    autoreply: Autoreply | None = None

    @property
    def empty(self) -> bool:
        return not self.destinations and self.autoreply is None


def quoted(text: str) -> str:
    """``text`` as a Sieve quoted string: ``"`` and ``\\`` escaped, nothing else changed."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _date_test(comparison: str, day: date) -> str:
    # :zone "+0000": the dates mean the same day whatever the server's time zone.
    return f'currentdate :zone "+0000" :value "{comparison}" "date" "{day.isoformat()}"'


def render_script(script: MailboxScript) -> str:
    """The Sieve script for ``script``; an auto-reply comes first, so a forwarded message
    is still answered."""
    lines = [HEADER]
    extensions = set()
    body: list[str] = []
    reply = script.autoreply
    if reply is not None:
        extensions.add("vacation")
        action = (
            f"vacation :days {REPLY_DAYS} :subject {quoted(reply.subject)} {quoted(reply.body)};"
        )
        tests = []
        if reply.starts_on is not None:
            tests.append(_date_test("ge", reply.starts_on))
        if reply.ends_on is not None:
            tests.append(_date_test("le", reply.ends_on))
        if tests:
            extensions.update({"date", "relational"})
            condition = tests[0] if len(tests) == 1 else f"allof ({', '.join(tests)})"
            body.append(f"if {condition} {{\n  {action}\n}}\n")
        else:
            body.append(action + "\n")
    for destination in script.destinations:
        if script.keep_copy:
            extensions.add("copy")
            body.append(f"redirect :copy {quoted(destination)};\n")
        else:
            body.append(f"redirect {quoted(destination)};\n")
    if extensions:
        lines.append("require [" + ", ".join(quoted(e) for e in sorted(extensions)) + "];\n")
    lines.extend(body)
    return "".join(lines)


def _checked_text(value: object, what: str, limit: int, *, lines: bool) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be text.")
    text = value.replace("\r\n", "\n").replace("\r", "\n") if lines else value
    text = text.strip("\n") if lines else text.strip()
    if not text:
        raise InvalidInputError(f"The {what} is empty.")
    if len(text) > limit:
        raise InvalidInputError(f"The {what} is too long ({limit} characters at most).")
    allowed = {"\n", "\t"} if lines else set()
    for ch in text:
        if ch in allowed:
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Co", "Cn") or ch in "\u2028\u2029":
            shown = "line breaks" if ch in "\n\u2028\u2029" else "control characters"
            raise InvalidInputError(f"The {what} must not hold {shown} (found U+{ord(ch):04X}).")
    return text


def check_subject(value: object) -> str:
    """An auto-reply subject: one line of printable text, at most MAX_SUBJECT_CHARS."""
    return _checked_text(value, "auto-reply subject", MAX_SUBJECT_CHARS, lines=False)


def check_body(value: object) -> str:
    """An auto-reply body: text with line breaks and tabs, at most MAX_BODY_CHARS."""
    return _checked_text(value, "auto-reply body", MAX_BODY_CHARS, lines=True)
