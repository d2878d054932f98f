"""mailctl's data folder and database are private whatever the umask, and repaired if not."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tests.securitylog import Figure
from tests.serverproc import mailctl_env, serve

# Each test runs `mailctl` as processes (init, serve), at production costs.
pytestmark = pytest.mark.slow

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
# Rendered for the daemons, with the modes they need; not mailctl's own files.
DAEMON_FOLDERS = ("opendkim", "tls")


def mailctl(
    data_dir: Path, *args: str, stdin: str = "", **settings: str
) -> subprocess.CompletedProcess[str]:
    """Run the mailctl command under the usual umask 022."""
    return subprocess.run(
        [sys.executable, "-m", "mailctl", *args],
        env=mailctl_env(data_dir, admin_password="a fine admin password", **settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        umask=0o022,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NOBODY, *argv], capture_output=True, text=True, timeout=30)


@pytest.mark.security(
    1, "Under umask 022 the data folder is 0700 and every file mailctl makes is 0600"
)
def test_files_are_private_under_umask_022(tmp_path: Path, figure: Figure) -> None:
    """init, add, export and delete under umask 022: the folder 0700, every file 0600."""
    data = tmp_path / "data"
    assert mailctl(data, "init").returncode == 0
    added = mailctl(
        data,
        "domain",
        "add",
        "example.com",
        "--user",
        "a@example.com",
        "--password-stdin",
        stdin="pw-alice-123\n",
    )
    assert added.returncode == 0, added.stderr
    assert mailctl(data, "export", "example.com", "-o", str(data)).returncode == 0
    assert mailctl(data, "domain", "rm", "example.com", "--yes").returncode == 0
    assert _mode(data) == 0o700
    assert _mode(data / "mailctl.db") == 0o600
    files = [
        path
        for path in data.rglob("*")
        if path.is_file() and path.relative_to(data).parts[0] not in DAEMON_FOLDERS
    ]
    kinds = {path.relative_to(data).parts[0] for path in files}
    assert {"mailctl.db", "trash"} <= kinds
    assert any(path.name.endswith(".tar.gz") for path in files)
    assert {str(p.relative_to(data)): oct(_mode(p)) for p in files if _mode(p) & 0o077} == {}
    figure("files checked", len(files))
    figure("files readable by others", 0)


@pytest.mark.security(1, "Another local account cannot read the database (secret, keys, hashes)")
def test_nobody_cannot_read_the_database(tmp_path: Path) -> None:
    """Another local account cannot read the database, even while the server runs."""
    with serve(tmp_path, "a fine admin password") as server:
        database = server.data_dir / "mailctl.db"
        companions = [p for p in server.data_dir.iterdir() if p.name.startswith("mailctl.db")]
        assert companions
        for path in companions:
            assert _mode(path) == 0o600, path
        refused = _as_nobody("cat", str(database))
        assert refused.returncode != 0
        assert "Permission denied" in refused.stderr
        assert _as_nobody("ls", str(server.data_dir)).returncode != 0


@pytest.mark.security(1, "A too-open data folder or database is repaired at start, with a notice")
def test_too_open_files_are_repaired_with_a_notice(tmp_path: Path) -> None:
    """A data folder 0755 and database 0644 are made private again by the next command."""
    data = tmp_path / "data"
    assert mailctl(data, "init").returncode == 0
    data.chmod(0o755)
    (data / "mailctl.db").chmod(0o644)
    listed = mailctl(data, "domain", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr.splitlines() == [
        f"notice: The data folder {data} was 0755; it is now 0700.",
        f"notice: The database file {data / 'mailctl.db'} was 0644; it is now 0600.",
    ]
    assert _mode(data) == 0o700
    assert _mode(data / "mailctl.db") == 0o600
    assert mailctl(data, "domain", "list").stderr == ""


def test_serve_repairs_before_it_listens(tmp_path: Path) -> None:
    """mailctl serve makes a too-open database private before it answers anyone."""
    data = tmp_path / "data"
    assert mailctl(data, "init").returncode == 0
    (data / "mailctl.db").chmod(0o666)
    with serve(tmp_path, "a fine admin password", initialise=False) as server:
        assert _mode(data / "mailctl.db") == 0o600
        assert b"it is now 0600" in server.stderr.read_bytes()


def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    """A database file that is a symbolic link cannot be made private: refused, exit 8."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (tmp_path / "elsewhere.db").touch()
    (data / "mailctl.db").symlink_to(tmp_path / "elsewhere.db")
    refused = mailctl(data, "domain", "list")
    assert refused.returncode == 8
    assert "is a symbolic link; refusing to use it" in refused.stderr


def test_a_database_group_may_read(tmp_path: Path) -> None:
    """With a database group (daemons reading SQLite), the file is 0640 with that group."""
    data = tmp_path / "data"
    shared = tmp_path / "db"
    database = shared / "mailctl.db"
    settings = {"database_url": f"sqlite:///{database}", "database_group": "nogroup"}
    made = mailctl(data, "init", **settings)
    assert made.returncode == 0, made.stderr
    shared.chmod(0o755)
    assert _mode(database) == 0o640
    assert database.stat().st_gid == 65534
    assert _mode(data) == 0o700
    wrong = mailctl(data, "domain", "list", **{**settings, "database_group": "no-such-group"})
    assert wrong.returncode == 2
    assert "There is no group 'no-such-group' on this host." in wrong.stderr


@pytest.fixture(autouse=True)
def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests read files as another user, which needs root")
