"""A PostgreSQL cluster of the tests' own that checks passwords (scram-sha-256).

The shared test server trusts every client, so a daemon configured with a wrong or
mangled password would still get in. This cluster refuses any connection without the
right password. It is made by ``initdb`` as the ``postgres`` account, in a folder below
the repository (``.test-databases/``, ignored by git; not below /tmp, which a cleaner may
empty under a running server), listens on a free port of 127.0.0.1 only, and is removed
when stopped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

OS_USER = "postgres"
SUPERUSER = "postgres"
# Every character a password may trip over, the server's own included.
SUPERUSER_PASSWORD = ' su\'per "user" \\ #$;=%@:/ '
REPO = Path(__file__).resolve().parent.parent
BASE_DIR = REPO / ".test-databases"
START_TIMEOUT = 60


def url_password(password: str) -> str:
    """A password as a database URL carries it: every byte but letters and digits encoded."""
    return quote(password, safe="")


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.fail(
            "initdb is not installed (Debian package postgresql); "
            "scripts/install-test-packages installs it"
        )
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ScramCluster:
    """A running cluster: its port, its folder, and the URL of its superuser."""

    bin_dir: Path
    folder: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def superuser_url(self) -> str:
        """SQLAlchemy URL of the superuser (password percent-encoded), without a database."""
        password = url_password(SUPERUSER_PASSWORD)
        return f"postgresql+psycopg://{SUPERUSER}:{password}@127.0.0.1:{self.port}"

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            argv,
            user=OS_USER,
            group=OS_USER,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(argv[:2])} failed:\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """initdb with scram-sha-256 for every TCP client of 127.0.0.1, then start it."""
        pwfile = self.folder / "superuser-password"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        try:
            account = pwd.getpwnam(OS_USER)
        except KeyError:
            pytest.fail(
                f"there is no {OS_USER} account to run initdb as (Debian package postgresql); "
                "scripts/install-test-packages installs it"
            )
        for path in (self.folder, pwfile):
            os.chown(path, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self.bin_dir / "initdb"),
            *("-D", str(self.data_dir), "-U", SUPERUSER, "--pwfile", str(pwfile)),
            *("--auth-local=scram-sha-256", "--auth-host=scram-sha-256"),
            *("--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"),
        )
        pwfile.unlink()
        # Only TCP on 127.0.0.1 and a socket in the cluster's own folder.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.folder} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
            "-c password_encryption=scram-sha-256"
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            *("-D", str(self.data_dir), "-l", str(self.folder / "server.log")),
            *("-o", options, "-w", "-t", str(START_TIMEOUT), "start"),
        )

    def stop(self) -> None:
        """Stop the server (fast: connections are cut) and remove its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    *("-D", str(self.data_dir), "-m", "fast", "-w", "stop"),
                )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster() -> ScramCluster:
    """Make and start a new cluster in a folder of its own; the caller stops it."""
    if os.geteuid() != 0:
        pytest.fail(f"the password-checking PostgreSQL runs as {OS_USER}: run the tests as root")
    BASE_DIR.mkdir(exist_ok=True)
    BASE_DIR.chmod(0o755)
    folder = Path(tempfile.mkdtemp(prefix=f"pg-{os.getpid()}-", dir=BASE_DIR))
    folder.chmod(0o700)
    cluster = ScramCluster(_bin_dir(), folder, _free_port())
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    return cluster
