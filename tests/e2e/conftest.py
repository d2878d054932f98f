"""What the command-line tests that run `setup --apply` share."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def host_root() -> Iterator[Path]:
    """A folder the daemons' users may pass through (0711), unlike pytest's private one."""
    root = Path(tempfile.mkdtemp(prefix="mailctl-setup-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's tables one row a line whatever terminal runs the tests.

    The console is made once, when the CLI is imported, and reads COLUMNS then: a COLUMNS
    given to the runner's environment does not reach it, and a narrow terminal would wrap
    the rows the tests read.
    """
    from mailctl.cli.common import console

    monkeypatch.setattr(console, "_width", 200)
