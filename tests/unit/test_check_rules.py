"""OpenDKIM's key safety rules as the check applies them, and setup's record of its layout."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from mailctl.config import Settings
from mailctl.errors import HostStateError
from mailctl.host import health
from mailctl.services import stack_record

OPENDKIM = pwd.getpwnam("opendkim")
POSTFIX = pwd.getpwnam("postfix")
LAYOUT_RELOAD = ["start-stop-daemon", "--stop", "--pidfile", "/srv/opendkim.pid"]


def node(kind: int, mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    """A stat result of a folder or file with this mode and owner."""
    return os.stat_result((kind | mode, 1, 1, 1, uid, gid, 0, 0, 0, 0))


def folder(mode: int, uid: int = 0, gid: int = 0) -> os.stat_result:
    return node(stat.S_IFDIR, mode, uid, gid)


def key(mode: int, uid: int = OPENDKIM.pw_uid, gid: int = OPENDKIM.pw_gid) -> os.stat_result:
    return node(stat.S_IFREG, mode, uid, gid)


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (folder(0o1777), "/x can be written by any user"),
        (folder(0o775, gid=POSTFIX.pw_gid), "/x can be written by its group, which holds postfix"),
        (folder(0o755, uid=12345), "/x belongs to uid 12345, neither root nor opendkim"),
        (folder(0o755), None),
        (folder(0o770, gid=OPENDKIM.pw_gid), None),
        (folder(0o700, uid=OPENDKIM.pw_uid), None),
    ],
)
def test_folder_rules(info: os.stat_result, reason: str | None) -> None:
    """A folder above a key is refused when others, a shared group or a stranger may write."""
    assert health.folder_problem(Path("/x"), info, OPENDKIM) == reason


@pytest.mark.parametrize(
    ("info", "reason"),
    [
        (key(0o600), None),
        (key(0o600, uid=0, gid=0), None),
        (key(0o640), None),  # the opendkim group holds opendkim alone
        (key(0o644), "/k can be read or written by any user"),
        (key(0o640, gid=POSTFIX.pw_gid), "/k can be read by its group, which holds postfix"),
        (key(0o600, uid=POSTFIX.pw_uid), f"/k belongs to uid {POSTFIX.pw_uid}, neither root"),
    ],
)
def test_key_file_rules(info: os.stat_result, reason: str | None) -> None:
    """A key must belong to root or opendkim and be readable by no one else."""
    found = health.file_problem(Path("/k"), info, OPENDKIM)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.startswith(reason)


def test_key_below_tmp_is_unsafe(tmp_path: Path) -> None:
    """The walk from / stops at the first folder anyone may write to, sticky bit or not."""
    path = tmp_path / "keys" / "mail.private"
    path.parent.mkdir()
    path.write_text("key")
    path.chmod(0o600)
    assert Path("/tmp").stat().st_mode & 0o1777 == 0o1777
    assert health.unsafe_key_reason(path, "opendkim") == "/tmp can be written by any user"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Reloads on, no MAILCTL_RELOAD_* in the environment."""
    for daemon in ("POSTFIX", "DOVECOT", "OPENDKIM"):
        monkeypatch.delenv(f"MAILCTL_RELOAD_{daemon}", raising=False)
    return Settings(data_dir=tmp_path / "data", reload_enabled=True)


def test_reloads_follow_the_recorded_layout(settings: Settings) -> None:
    """Without a record the defaults apply; with one, its commands, unless set explicitly."""
    assert stack_record.reload_commands(settings)["opendkim"] == [
        "service",
        "opendkim",
        "restart",
    ]
    path = stack_record.write_record(
        settings, stack_record.StackRecord({"root": "/srv"}, {"opendkim": LAYOUT_RELOAD})
    )
    assert path.stat().st_mode & 0o777 == 0o600
    assert stack_record.reload_commands(settings)["opendkim"] == LAYOUT_RELOAD
    assert stack_record.reload_commands(settings)["postfix"] == ["postfix", "reload"]
    explicit = settings.model_copy(update={"reload_opendkim": "/bin/true"})
    assert stack_record.reload_commands(explicit)["opendkim"] == ["/bin/true"]
    off = settings.model_copy(update={"reload_enabled": False})
    assert stack_record.reload_commands(off)["opendkim"] == []


def test_damaged_record_says_how_to_rewrite_it(settings: Settings) -> None:
    """A record that is not what setup writes is refused with the command that fixes it."""
    settings.data_dir.mkdir()
    stack_record.record_path(settings).write_text('{"options": [1]}')
    with pytest.raises(HostStateError, match=r"stack.json is damaged: run `mailctl setup"):
        stack_record.read_record(settings)
