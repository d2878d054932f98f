"""``kill -9`` in the middle of each long operation, then a restart that converges.

Each test runs the real ``mailctl serve`` (or CLI) as its own process, stops it with SIGKILL
at the worst moment without any hook in mailctl: a slow upload, the maildirs' change lock
held by the test while an import waits for it, a SIGSTOP as soon as the export's temporary
file appears, or a database table lock that holds a create or delete between its change on
disk and its commit. Then it restarts, and checks that the log names each leftover, that
none is left, that the database and the maildirs agree, and that the operation can be done
again.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from tests.backends import selected_backends
from tests.serverproc import ServeProcess, mailctl_env, serve

from mailctl.host.maildir import CHANGES_LOCK

ADMIN_PASSWORD = "a fine admin password"
MAIL_MIB = 8  # incompressible mail, so export and import take a moment
Figure = Callable[[str, object], None]


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def _maildirs(mail_root: Path) -> set[str]:
    """The mailbox of each maildir under the mail root, as an address."""
    if not mail_root.is_dir():
        return set()
    return {
        f"{mailbox.name}@{domain.name}"
        for domain in mail_root.iterdir()
        if domain.is_dir()
        for mailbox in domain.iterdir()
        if mailbox.is_dir()
    }


def _token(server: ServeProcess) -> dict[str, str]:
    answer = httpx.post(
        f"{server.url}/auth", data={"username": "admin", "password": ADMIN_PASSWORD}, timeout=60
    )
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def _wait_for(what: str, found: Callable[[], object], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _with_mail(server: ServeProcess, auth: dict[str, str], mib: int = MAIL_MIB) -> int:
    """example.com with the mailbox ann holding ``mib`` MiB of mail; its domain id."""
    answer = httpx.post(
        f"{server.url}/domains",
        data={"domain": "example.com", "username": "ann", "password": "a long password"},
        headers=auth,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    cur = server.data_dir / "mail" / "example.com" / "ann" / "cur"
    for n in range(mib):
        (cur / f"{n}.mail:2,S").write_bytes(os.urandom(1024 * 1024))
    return int(answer.json()["domain"]["id"])


@contextmanager
def _restart(tmp_path: Path, name: str, **settings: str) -> Iterator[tuple[ServeProcess, float]]:
    started = time.monotonic()
    with serve(tmp_path, ADMIN_PASSWORD, initialise=False, log_name=name, **settings) as server:
        yield server, time.monotonic() - started


def _log(server: ServeProcess) -> str:
    return server.output().decode("utf-8", "replace")


def _cleanup_seconds(log: str) -> float:
    """The time the clean-up itself took, from its summary line in the log."""
    found = re.search(r"clean-up of interrupted operations: .* in ([0-9.]+) s", log)
    assert found, log
    return float(found.group(1))


def _agree(database_url: str, data_dir: Path) -> None:
    """Every mailbox row has its maildir, every maildir its row; no pending trash folder."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            emails = {row[0] for row in conn.execute(text("SELECT email FROM virtual_users"))}
    finally:
        engine.dispose()
    assert emails == _maildirs(data_dir / "mail")
    trash = data_dir / "trash"
    assert (
        not [p for p in trash.iterdir() if p.name.startswith(".pending-")]
        if trash.exists()
        else True
    )


def _sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'mailctl.db'}"


@pytest.mark.slow
@pytest.mark.security(
    finding=6,
    claim="An import killed mid-upload or mid-unpack leaves nothing after a restart, "
    "and a live import in another process is never cleaned.",
)
def test_import_killed_mid_upload_and_mid_unpack(tmp_path: Path, figure: Figure) -> None:
    """Upload killed: the restart removes it. Unpack killed: kept while alive, removed after."""
    imports = tmp_path / "data" / "imports"
    archive = tmp_path / "example.com.tar.gz"
    with serve(tmp_path, ADMIN_PASSWORD, log_name="first") as first:
        auth = _token(first)
        _with_mail(first, auth)
        with (
            httpx.stream(
                "GET",
                f"{first.url}/export/domain",
                params={"domain": "example.com"},
                headers=auth,
                timeout=120,
            ) as answer,
            archive.open("wb") as out,
        ):
            assert answer.status_code == 200
            for chunk in answer.iter_bytes():
                out.write(chunk)
        assert (
            httpx.request(
                "DELETE", f"{first.url}/domain", data={"domain": "example.com"}, headers=auth
            ).status_code
            == 200
        )
        data = archive.read_bytes()
        half = threading.Event()
        go_on = threading.Event()

        def body() -> Iterator[bytes]:
            yield data[: len(data) // 2]
            half.set()
            go_on.wait(60)
            yield data[len(data) // 2 :]

        def upload() -> None:
            with suppress(httpx.TransportError):
                httpx.post(
                    f"{first.url}/import/domain",
                    content=body(),
                    headers={**auth, "Content-Type": "application/gzip"},
                    timeout=60,
                )

        uploader = threading.Thread(target=upload)
        uploader.start()
        half.wait(60)
        _wait_for(
            "half the upload on disk",
            lambda: [p for p in imports.glob("upload-*") if p.stat().st_size >= len(data) // 2],
        )
        _kill(first.process)
        go_on.set()
        uploader.join(60)
    left_upload = tree_size(imports)
    figure("bytes left by the killed upload", left_upload)
    assert left_upload >= len(data) // 2

    with _restart(tmp_path, "second") as (second, seconds):
        log = _log(second)
        assert "removed the upload of an import" in log, log
        assert list(imports.iterdir()) == []
        figure("seconds to restart and converge after the upload", round(seconds, 2))
        figure("seconds the clean-up took after the upload", _cleanup_seconds(log))

    # Now an import from the command line, killed once its mail is unpacked into staging:
    # the test holds the maildirs' change lock, so the import waits there with its staging
    # folder full (an import checks the whole archive before it unpacks any mail).
    archive_file = tmp_path / "again.tar.gz"
    archive_file.write_bytes(data)
    env = mailctl_env(tmp_path / "data")
    changes = os.open(tmp_path / "data" / CHANGES_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(changes, fcntl.LOCK_EX)
    cli = subprocess.Popen(
        [sys.executable, "-m", "mailctl", "import", str(archive_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(
            "mail unpacked into staging",
            lambda: [p for p in imports.glob("staging-*") if tree_size(p) > len(data) // 3],
        )
        # Another process starting now must leave the live import alone.
        agent = subprocess.run(
            [sys.executable, "-m", "mailctl", "agent", "--once"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        agent_log = (agent.stdout + agent.stderr).decode()
        assert "kept the staging folder of an import" in agent_log, agent_log
        assert "a running process holds it" in agent_log
        assert cli.poll() is None
        left_staging = tree_size(imports)
        _kill(cli)
    finally:
        if cli.poll() is None:
            _kill(cli)
        fcntl.flock(changes, fcntl.LOCK_UN)
        os.close(changes)
    figure("bytes left by the import killed mid-unpack", left_staging)
    assert left_staging > len(data) // 3

    with _restart(tmp_path, "third") as (third, seconds):
        log = _log(third)
        assert "removed the staging folder of an import" in log, log
        assert list(imports.iterdir()) == []
        figure("bytes left after the restart", tree_size(imports))
        figure("seconds to restart and converge after the unpack", round(seconds, 2))
        figure("seconds the clean-up took after the unpack", _cleanup_seconds(log))
        auth = _token(third)
        answer = httpx.post(
            f"{third.url}/import/domain",
            content=data,
            headers={**auth, "Content-Type": "application/gzip"},
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["files"] == MAIL_MIB
        assert list(imports.iterdir()) == []
    _agree(_sqlite_url(tmp_path / "data"), tmp_path / "data")


@pytest.mark.slow
@pytest.mark.security(
    finding=6,
    claim="An export killed mid-write leaves no temporary file after a restart, and can be redone.",
)
def test_export_killed_mid_write(tmp_path: Path, figure: Figure) -> None:
    """The .tmp of an export written on the server goes at the next start."""
    exports = tmp_path / "data" / "exports"
    with serve(tmp_path, ADMIN_PASSWORD, log_name="first") as first:
        auth = _token(first)
        _with_mail(first, auth)

        def export() -> None:
            with suppress(httpx.TransportError):
                httpx.get(
                    f"{first.url}/export/domain",
                    params={"domain": "example.com", "format": "json"},
                    headers=auth,
                    timeout=120,
                )

        exporter = threading.Thread(target=export)
        exporter.start()
        _wait_for(
            "a MiB in the export's temporary file",
            lambda: [p for p in exports.glob(".*.tmp") if p.stat().st_size >= 1024 * 1024],
        )
        first.process.send_signal(signal.SIGSTOP)
        assert list(exports.glob(".*.tmp")), "the export finished before it could be stopped"
        _kill(first.process)
        exporter.join(60)
    left = tree_size(exports)
    figure("bytes left by the killed export", left)
    assert list(exports.glob(".*.tmp"))

    with _restart(tmp_path, "second") as (second, seconds):
        log = _log(second)
        assert "removed the temporary file of an export" in log, log
        assert list(exports.iterdir()) == []
        figure("bytes left after the restart", tree_size(exports))
        figure("seconds to restart and converge", round(seconds, 2))
        figure("seconds the clean-up took", _cleanup_seconds(log))
        answer = httpx.get(
            f"{second.url}/export/domain",
            params={"domain": "example.com", "format": "json"},
            headers=_token(second),
            timeout=120,
        )
        assert answer.status_code == 200, answer.text
        assert [p.name for p in exports.iterdir()] == [Path(answer.json()["file"]).name]


class _AuditLock:
    """Holds the audit_log table of PostgreSQL or MariaDB, so a commit waits on it.

    Creates and deletes write their audit row at commit, after their change on disk: a
    process held here sits exactly between the two, ready to be killed.
    """

    def __init__(self, backend: str, database_url: str) -> None:
        self.engine = create_engine(database_url)
        self.conn = self.engine.connect()
        if backend == "postgresql":
            self.conn.execute(text("LOCK TABLE audit_log IN SHARE MODE"))
        else:
            self.conn.execute(text("LOCK TABLES audit_log READ"))

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()
        self.engine.dispose()


# SQLite takes its one write lock at a transaction's first write, before the change on
# disk, so nothing outside can hold a create or delete at its commit: these two run on the
# servers whose tables can be locked (the unit tests settle the same leftovers on SQLite).
TABLE_LOCK_BACKENDS = [name for name in selected_backends() if name != "sqlite"]


@pytest.mark.backends
@pytest.mark.parametrize("backend", TABLE_LOCK_BACKENDS)
@pytest.mark.security(
    finding=6,
    claim="A mailbox create killed between its maildir and its row leaves no maildir after "
    "a restart, and can be redone.",
)
def test_mailbox_create_killed_before_its_row(
    tmp_path: Path, backend: str, database_url: str, figure: Figure
) -> None:
    """The empty maildir of a create that never committed is removed at the next start."""
    maildir = tmp_path / "data" / "mail" / "example.com" / "bob"
    with serve(tmp_path, ADMIN_PASSWORD, log_name="first", database_url=database_url) as first:
        auth = _token(first)
        answer = httpx.post(
            f"{first.url}/domains", data={"domain": "example.com"}, headers=auth, timeout=60
        )
        assert answer.status_code == 200, answer.text
        domain_id = answer.json()["domain"]["id"]
        lock = _AuditLock(backend, database_url)
        try:

            def create() -> None:
                with suppress(httpx.TransportError):
                    httpx.post(
                        f"{first.url}/user/{domain_id}",
                        data={"email": "bob@example.com", "password": "a long password"},
                        headers=auth,
                        timeout=60,
                    )

            creator = threading.Thread(target=create)
            creator.start()
            _wait_for("the new maildir", lambda: (maildir / "tmp").is_dir())
            _kill(first.process)
        finally:
            lock.release()
        creator.join(60)
    figure("maildirs left without a row", 1)
    with pytest.raises(AssertionError):
        _agree(database_url, tmp_path / "data")

    with _restart(tmp_path, "second", database_url=database_url) as (second, seconds):
        log = _log(second)
        assert "removed the maildir of bob@example.com, which has no mailbox," in log, log
        assert "empty skeleton" in log
        assert not maildir.exists()
        _agree(database_url, tmp_path / "data")
        figure("seconds to restart and converge", round(seconds, 2))
        figure("seconds the clean-up took", _cleanup_seconds(log))
        answer = httpx.post(
            f"{second.url}/user/{domain_id}",
            data={"email": "bob@example.com", "password": "a long password"},
            headers=_token(second),
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        _agree(database_url, tmp_path / "data")


@pytest.mark.backends
@pytest.mark.parametrize("backend", TABLE_LOCK_BACKENDS)
@pytest.mark.security(
    finding=6,
    claim="A domain delete killed before its commit is undone at the next start: the domain "
    "keeps its mail, and the delete can be redone once.",
)
def test_domain_delete_killed_before_commit(
    tmp_path: Path, backend: str, database_url: str, figure: Figure
) -> None:
    """The mail a killed delete had moved to the trash goes back to its still-existing domain."""
    data_dir = tmp_path / "data"
    trash = data_dir / "trash"
    with serve(tmp_path, ADMIN_PASSWORD, log_name="first", database_url=database_url) as first:
        auth = _token(first)
        _with_mail(first, auth, mib=2)
        lock = _AuditLock(backend, database_url)
        try:

            def delete() -> None:
                with suppress(httpx.TransportError):
                    httpx.request(
                        "DELETE",
                        f"{first.url}/domain",
                        data={"domain": "example.com"},
                        headers=auth,
                        timeout=60,
                    )

            deleter = threading.Thread(target=delete)
            deleter.start()
            _wait_for(
                "the mail in a trash folder",
                lambda: trash.is_dir() and [p for p in trash.iterdir() if (p / "data").is_dir()],
            )
            _kill(first.process)
        finally:
            lock.release()
        deleter.join(60)
    left = tree_size(trash)
    figure("bytes in the trash folder of the killed delete", left)
    assert not (data_dir / "mail" / "example.com").exists()

    with _restart(tmp_path, "second", database_url=database_url) as (second, seconds):
        log = _log(second)
        assert "undone the trash folder of an interrupted delete of domain example.com" in log, log
        assert len(list((data_dir / "mail" / "example.com" / "ann" / "cur").iterdir())) == 2
        assert [p for p in trash.iterdir() if not p.name.startswith(".")] == []
        _agree(database_url, data_dir)
        figure("seconds to restart and converge", round(seconds, 2))
        figure("seconds the clean-up took", _cleanup_seconds(log))
        auth = _token(second)
        answer = httpx.request(
            "DELETE", f"{second.url}/domain", data={"domain": "example.com"}, headers=auth
        )
        assert answer.status_code == 200, answer.text
        listed = httpx.get(f"{second.url}/trash", headers=auth).json()["trash"]
        assert [(item["kind"], item["has_data"]) for item in listed] == [("domain", True)]
        _agree(database_url, data_dir)


@pytest.mark.security(
    finding=6,
    claim="The temporary file of an atomic write whose process was killed goes at the next "
    "start; one a live process writes stays.",
)
def test_atomic_write_killed_mid_write(tmp_path: Path, figure: Figure) -> None:
    """A writer killed inside its temporary file leaves it to the clean-up; a live one's stays."""
    data_dir = tmp_path / "data"
    opendkim = data_dir / "opendkim"
    opendkim.mkdir(parents=True)
    # What write_atomic does: a locked temporary sibling, written, then a stop mid-way.
    holder = (
        "import fcntl, os, signal, sys, tempfile\n"
        "fd, path = tempfile.mkstemp(prefix='.KeyTable.', suffix='.tmp', dir=sys.argv[1])\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, b'half a KeyTable')\n"
        "print(path, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGSTOP)\n"
    )
    env = mailctl_env(data_dir)
    subprocess.run(
        [sys.executable, "-m", "mailctl", "init"],
        env={**env, "MAILCTL_ADMIN_PASSWORD": ADMIN_PASSWORD},
        check=True,
        capture_output=True,
        timeout=120,
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", holder, str(opendkim)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        paths = [Path(w.stdout.readline().decode().strip()) for w in writers]  # type: ignore[union-attr]
        _kill(writers[0])
        left = tree_size(paths[0])
        agent = subprocess.run(
            [sys.executable, "-m", "mailctl", "agent", "--once"],
            env=env,
            capture_output=True,
            timeout=120,
        )
        log = (agent.stdout + agent.stderr).decode()
        assert f"removed the temporary file of a write {paths[0]}" in log, log
        assert f"kept the temporary file of a write {paths[1]}" in log, log
        assert not paths[0].exists() and paths[1].exists()
        figure("bytes left by the killed write", left)
    finally:
        for writer in writers:
            if writer.poll() is None:
                _kill(writer)
            writer.stdout.close()  # type: ignore[union-attr]
