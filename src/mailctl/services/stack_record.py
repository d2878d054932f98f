"""What `mailctl setup --apply` configured, kept in the data folder for check and reloads.

``<data dir>/stack.json`` holds setup's layout options and the reload command of each
daemon of that layout. `mailctl check` with no options checks that layout, and reconcile
reloads those daemons, not the system's defaults, unless MAILCTL_RELOAD_* says otherwise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailctl.config import Settings
from mailctl.errors import HostStateError
from mailctl.host.fs import ensure_dir, write_atomic

RECORD_NAME = "stack.json"
VERSION = 1
DAEMONS = ("postfix", "dovecot", "opendkim")


@dataclass(frozen=True)
class StackRecord:
    """Setup's options (JSON values) and the argv that reloads each daemon of its layout."""

    options: dict[str, Any] = field(default_factory=dict)
    reload: dict[str, list[str]] = field(default_factory=dict)


def record_path(settings: Settings) -> Path:
    """Where setup keeps its record."""
    return settings.data_dir / RECORD_NAME


def write_record(settings: Settings, record: StackRecord) -> Path:
    """Replace the record atomically, readable by root only (mode 0600)."""
    path = record_path(settings)
    ensure_dir(path.parent, 0o750)
    body = {"version": VERSION, "options": record.options, "reload": record.reload}
    write_atomic(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(), 0o600)
    return path


def read_record(settings: Settings) -> StackRecord | None:
    """The record setup left, or None if setup has not applied a configuration here."""
    path = record_path(settings)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostStateError(f"Cannot read {path}: {exc.strerror}.") from exc
    try:
        body = json.loads(raw)
        options = body["options"]
        reload = body.get("reload", {})
        valid = isinstance(options, dict) and isinstance(reload, dict)
        valid = valid and all(
            isinstance(argv, list) and all(isinstance(word, str) for word in argv)
            for argv in reload.values()
        )
    except (ValueError, KeyError, TypeError):
        valid = False
    if not valid:
        raise HostStateError(
            f"{path} is damaged: run `mailctl setup --apply` again to write it anew."
        )
    return StackRecord(dict(options), {str(k): list(v) for k, v in reload.items()})


def reload_commands(settings: Settings) -> dict[str, list[str]]:
    """Each daemon's reload argv: empty (no-ops) unless reloads are enabled.

    A MAILCTL_RELOAD_* the admin set wins; otherwise the command of the layout setup
    recorded, so a stack laid out below --root is the one reloaded; otherwise the
    default (Debian's services).
    """
    configured = settings.reload_commands()
    if not settings.reload_enabled:
        return configured
    record = read_record(settings)
    if record is None:
        return configured
    chosen: dict[str, list[str]] = {}
    for daemon, argv in configured.items():
        explicit = f"reload_{daemon}" in settings.model_fields_set
        recorded = record.reload.get(daemon)
        chosen[daemon] = argv if explicit or not recorded else list(recorded)
    return chosen
