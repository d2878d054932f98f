"""The Sieve scripts mailctl renders, compiled by Pigeonhole's own sievec: they compile,
and hostile text is one string of the vacation action, never a command."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest

from mailctl.domain.sieve import Autoreply, MailboxScript, render_script

# Files and a compiler only: no database is involved.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

BODY = 'Away "until" Monday \\ ok.\n.\n";\nredirect "evil@elsewhere.test";\nkeep;\n'
SUBJECT = 'Out "of" office \\ ";discard;'


def _dump(script: str, folder: Path) -> str:
    for tool in ("sievec", "sieve-dump"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed; scripts/install-test-packages installs it")
    source, binary = folder / "test.sieve", folder / "test.svbin"
    source.write_text(script)
    done = subprocess.run(
        ["sievec", str(source), str(binary)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    dumped = subprocess.run(["sieve-dump", str(binary)], capture_output=True, text=True, timeout=60)
    assert dumped.returncode == 0, dumped.stderr
    return dumped.stdout


def test_hostile_vacation_compiles_to_one_action(backend: str, tmp_path: Path) -> None:
    """The body and subject are the vacation's strings, whole (line breaks as CR LF);
    nothing in them became a redirect, keep or discard."""
    reply = Autoreply(SUBJECT, BODY.strip("\n"), date(2026, 1, 1), date(2999, 12, 31))
    dump = _dump(render_script(MailboxScript(autoreply=reply)), tmp_path)
    code = dump.split("* Main program", 1)[1]
    assert code.count("VACATION") == 1
    for command in ("REDIRECT", "KEEP", "DISCARD"):
        assert command not in code, dump
    body = BODY.strip("\n").replace("\n", "\r\n").encode()
    assert re.search(rf"reason: STR\[{len(body)}\]", code), dump
    assert f'subject: STR[{len(SUBJECT.encode())}] "{SUBJECT}"' in code, dump


def test_forwarding_and_copy_compile(backend: str, tmp_path: Path) -> None:
    """Redirects with :copy compile, one per destination."""
    script = MailboxScript(("a@example.com", "b@example.org"), keep_copy=True)
    code = _dump(render_script(script), tmp_path).split("* Main program", 1)[1]
    assert code.count("REDIRECT") == 2
    assert "copy" in code
