"""The Sieve scripts rendered from mailbox settings: their commands, and owner's text that
never leaves its quoted string."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from mailctl.domain import sieve
from mailctl.domain.sieve import Autoreply, MailboxScript, quoted, render_script
from mailctl.errors import InvalidInputError
from mailctl.host.sieve import render_sieve, script_path

# Pure rendering: no database is involved.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

HOSTILE = [
    'a "quoted" word',
    "back\\slash at the end \\",
    '\\" an escaped quote, as an attacker would write it',
    'text";\nredirect "evil@elsewhere.test";\nkeep;\n#',
    "a line with only a dot\n.\nafter it",
    "text:\nmulti-line\n.\n",
    "} stop; if true { discard; }",
    "ünïcödé and emoji 📬",
    "${variables} are not expanded",
]
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)


def _unquote(body: str) -> str:
    return re.sub(r"\\(.)", r"\1", body, flags=re.DOTALL)


def _strings(script: str) -> list[str]:
    """The quoted strings of ``script`` as a Sieve parser reads them (RFC 5228, 2.4.2)."""
    # The one comment is the header line; a "#" inside a string is text.
    text = script.removeprefix(sieve.HEADER)
    return [_unquote(found) for found in _QUOTED.findall(text)]


@pytest.mark.parametrize("text", HOSTILE)
def test_quoted_text_comes_back_whole(backend: str, text: str) -> None:
    """Every hostile text reads back as exactly itself, in one string."""
    assert _strings(quoted(text)) == [text]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_subject_and_body_stay_in_their_strings(backend: str, text: str) -> None:
    """A vacation script with hostile text has one command, whose strings are the texts."""
    script = render_script(MailboxScript(autoreply=Autoreply(text.replace("\n", " "), text)))
    assert _strings(script) == ["vacation", text.replace("\n", " "), text]
    outside = _QUOTED.sub('""', script.removeprefix(sieve.HEADER))
    assert "redirect" not in outside and "keep" not in outside and "discard" not in outside


def test_forwarding_with_and_without_a_copy(backend: str) -> None:
    """Redirects take :copy only when a copy stays, which needs the copy extension."""
    kept = render_script(MailboxScript(("a@example.com", "b@example.org"), keep_copy=True))
    assert kept.endswith(
        'require ["copy"];\nredirect :copy "a@example.com";\nredirect :copy "b@example.org";\n'
    )
    moved = render_script(MailboxScript(("a@example.com",)))
    assert moved.endswith('\nredirect "a@example.com";\n')
    assert "require" not in moved


def test_dates_bound_the_vacation_in_utc(backend: str) -> None:
    """Start and end dates become currentdate tests in UTC around the vacation action."""
    reply = Autoreply("Away", "Back soon.", date(2026, 12, 20), date(2027, 1, 3))
    script = render_script(MailboxScript(("a@example.com",), autoreply=reply))
    assert 'require ["date", "relational", "vacation"];' in script
    assert (
        'if allof (currentdate :zone "+0000" :value "ge" "date" "2026-12-20", '
        'currentdate :zone "+0000" :value "le" "date" "2027-01-03") {\n'
        '  vacation :days 1 :subject "Away" "Back soon.";\n}\n'
    ) in script
    assert script.index("vacation :days") < script.index("redirect")
    only_end = render_script(MailboxScript(autoreply=Autoreply("A", "B", None, date(2027, 1, 3))))
    assert 'if currentdate :zone "+0000" :value "le" "date" "2027-01-03" {' in only_end


@pytest.mark.parametrize(
    ("check", "value", "words"),
    [
        (sieve.check_subject, "two\nlines", "line breaks"),
        (sieve.check_subject, "tab\there", "control characters"),
        (sieve.check_subject, "x" * 201, "too long"),
        (sieve.check_subject, "   ", "empty"),
        (sieve.check_subject, 12, "must be text"),
        (sieve.check_body, "bell \x07", "control characters"),
        (sieve.check_body, "separator \u2028 here", "line breaks"),
        (sieve.check_body, "lone surrogate \ud800", "control characters"),
        (sieve.check_body, "x" * 10_001, "too long"),
    ],
)
def test_texts_refused(backend: str, check: object, value: object, words: str) -> None:
    """Subjects are one printable line; bodies printable text; both bounded."""
    assert callable(check)
    with pytest.raises(InvalidInputError, match=words):
        check(value)


def test_body_line_breaks_are_normalised(backend: str) -> None:
    """CR LF and lone CR become LF; blank lines at either end go, tabs stay."""
    assert sieve.check_body("\r\nHello\r\n\r\n\tthere\r") == "Hello\n\n\tthere"


def test_files_per_mailbox_and_paths(backend: str, tmp_path: Path) -> None:
    """One 0640 script per mailbox with settings, at <dir>/<domain>/<local>.sieve, read by
    the delivery group; a row with nothing to do renders nothing."""
    rows = [
        ("alice@example.com", "bob@example.com", "1", "0", "", "", "", ""),
        ("bob@example.com", "", "0", "1", "Away", "Later.", "2026-12-01", ""),
        ("carol@example.com", "", "0", "0", "", "", "", ""),
    ]
    files = render_sieve(rows, tmp_path, gid=1234)
    assert [f.path for f in files] == [
        tmp_path / "example.com" / "alice.sieve",
        tmp_path / "example.com" / "bob.sieve",
    ]
    assert {(f.mode, f.gid, f.daemons) for f in files} == {(0o640, 1234, frozenset())}
    assert b'"date" "2026-12-01"' in files[1].content
    with pytest.raises(InvalidInputError):
        script_path(tmp_path, "../etc@example.com")
