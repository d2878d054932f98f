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
