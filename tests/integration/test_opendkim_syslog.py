"""Where OpenDKIM's refusals go: syslog, facility mail, as setup renders it and the README says.

OpenDKIM has no log file of its own. These tests run the real opendkim, and the real
`mailctl setup`, in a private mount namespace whose /dev is a fresh tmpfs: there /dev/log
is a socket of this test (a small syslog) or absent, and the machine's /dev is untouched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import ADMIN
from tests.mailstack.stack import vmail_ids
from tests.pki import self_signed

from mailctl.config import Settings
from mailctl.services import auth, certificates, dkim, domains, setup
from mailctl.services.context import Actor, Context

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

ACTOR = Actor("test")
LOG_FACILITY_MAIL = 2

# Run "$@" with a /dev of its own: a tmpfs holding the few devices a daemon opens, and
# /dev/log pointing at $1 unless $1 is empty. Nothing is created in the machine's /dev:
# the script stops unless the tmpfs is in place before it creates anything.
PRIVATE_DEV = r"""
set -eu
log_socket=$1; old=$2; shift 2
mount --rbind /dev "$old"
mount -t tmpfs -o mode=755 mailctl-test-dev /dev
[ "$(stat -f -c %T /dev)" = tmpfs ]
for name in null zero random urandom; do
    touch "/dev/$name"
    mount --bind "$old/$name" "/dev/$name"
done
if [ -n "$log_socket" ]; then ln -s "$log_socket" /dev/log; fi
exec "$@"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Syslog:
    """A datagram socket collecting what syslog(3) sends to it, as a syslog daemon would."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "log.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.path.chmod(0o666)  # opendkim logs after dropping to its own user
        self.sock.settimeout(0.2)
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                self.lines.append(self.sock.recv(65536).decode("utf-8", errors="replace"))
            except TimeoutError:
                continue

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged; syslog got: {self.lines}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def private_dev(argv: list[str], log_socket: Path | None, scratch: Path) -> list[str]:
    """``argv`` run in a mount namespace with its own /dev (and /dev/log if given)."""
    old = scratch / "machine-dev"
    old.mkdir(exist_ok=True)
    prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c", PRIVATE_DEV, "sh"]
    return [*prefix, str(log_socket or ""), str(old), *argv]


@pytest.fixture
def root() -> Iterator[Path]:
    """A folder opendkim (after dropping privileges) may enter: not pytest's 0700 tmp_path."""
    folder = Path(tempfile.mkdtemp(prefix="mailctl-syslog-"))
    folder.chmod(0o711)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def host(database_url: str, root: Path) -> Iterator[tuple[Context, setup.SetupPlan]]:
    """A database with a signing domain, and setup's plan for daemons below ``root``."""
    opendkim = pwd.getpwnam("opendkim")
    # setup plans the mail folders for vmail: make the account here, not rely on a test
    # that ran before on the same worker to have made it.
    vmail_ids()
    settings = Settings(
        data_dir=root / "data",
        database_url=database_url,
        opendkim_dir=root / "opendkim",
        tls_dir=root / "tls",
        mail_hostname="mail.example.com",
        file_uid=opendkim.pw_uid,
        file_gid=opendkim.pw_gid,
        admin_username=ADMIN,
    )
    ctx = Context.from_settings(settings)
    auth.initialize(ctx, ADMIN, "admin-password-1")
    chain, key = self_signed("mail.example.com")
    certificates.upload_certificate(ctx, ACTOR, chain, key)
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    options = setup.SetupOptions(
        root=root / "stack",
        listen_address="127.0.0.1",
        milter_port=_free_port(),
        opendkim_require_safe_keys=False,
    )
    plan = setup.plan_setup(settings, options)
    yield ctx, plan
    ctx.close()


# Milter protocol flags (libmilter's mfdef.h): steps the milter skips, or answers silently.
SKIPPED = {b"C": 0x1, b"M": 0x4, b"R": 0x8, b"B": 0x10, b"L": 0x20, b"N": 0x40}
NO_REPLY = {b"C": 0x1000, b"M": 0x4000, b"R": 0x8000, b"B": 0x80000, b"L": 0x80, b"N": 0x40000}
NO_REPLY_MASK = sum(NO_REPLY.values())


def _packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(command) + len(data)) + command + data


def _reply(sock: socket.socket) -> bytes:
    size = struct.unpack("!I", sock.recv(4, socket.MSG_WAITALL))[0]
    return sock.recv(size, socket.MSG_WAITALL)


def offer_for_signing(port: int, sender: str) -> bytes:
    """Hand one message from ``sender`` to the milter as Postfix would; return its verdict.

    ``t`` is a temporary failure: Postfix would keep the message and try again later.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_packet(b"O", struct.pack("!III", 6, 0x1FF, NO_REPLY_MASK)))
        _version, _actions, protocol = struct.unpack("!III", _reply(sock)[1:13])
        steps = [
            (b"C", b"localhost\x004" + struct.pack("!H", 4321) + b"127.0.0.1\x00"),
            (b"M", f"<{sender}>\x00".encode()),
            (b"R", b"<bob@elsewhere.test>\x00"),
            (b"L", f"From\x00{sender}\x00".encode()),
            (b"L", b"Subject\x00hello\x00"),
            (b"N", b""),
            (b"B", b"hello\r\n"),
        ]
        for command, data in steps:
            if protocol & SKIPPED[command]:
                continue  # the milter asked not to be told this
            sock.sendall(_packet(command, data))
            if not protocol & NO_REPLY[command]:
                answer = _reply(sock)
                if answer[:1] != b"c":
                    return answer  # decided before the end of the message
        sock.sendall(_packet(b"E"))
        verdict = _reply(sock)
        while verdict[:1] not in (b"a", b"c", b"r", b"t", b"y", b"d"):
            verdict = _reply(sock)  # header changes come before the verdict
        return verdict


def test_a_key_opendkim_cannot_read_is_logged_to_mail_syslog(
    host: tuple[Context, setup.SetupPlan], root: Path
) -> None:
    """With setup's opendkim.conf, a refused key shows up in syslog, facility mail."""
    ctx, plan = host
    setup.apply_setup(plan, ctx)
    key_file = ctx.settings.opendkim_path / "keys/example.com/mail.private"
    key_file.chmod(0o000)
    os.chown(key_file, 0, 0)
    syslog = Syslog(root)
    command = private_dev(["opendkim", "-f", "-x", str(plan.cfg.opendkim_conf)], syslog.path, root)
    output = (root / "opendkim.out").open("wb")
    daemon = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        started = syslog.wait_for("starting")
        assert started.startswith(f"<{LOG_FACILITY_MAIL * 8 + 6}>"), started  # mail.info
        deadline = time.monotonic() + 20
        while True:
            try:
                verdict = offer_for_signing(plan.cfg.milter_port, "alice@example.com")
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "opendkim did not listen"
                time.sleep(0.1)
        assert verdict[:1] == b"t"  # kept back, not passed on unsigned
        refused = syslog.wait_for(str(key_file))
        assert refused.startswith(f"<{LOG_FACILITY_MAIL * 8 + 3}>"), refused  # mail.err
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
        output.close()
        syslog.close()


@pytest.mark.parametrize("with_syslog", [False, True])
def test_setup_says_when_opendkim_would_log_nowhere(
    host: tuple[Context, setup.SetupPlan], root: Path, with_syslog: bool
) -> None:
    """`mailctl setup` warns on a host without /dev/log, and not on one with it."""
    ctx, _plan = host
    syslog = Syslog(root) if with_syslog else None
    env = {
        **os.environ,
        "MAILCTL_DATA_DIR": str(ctx.settings.data_dir),
        "MAILCTL_DATABASE_URL": ctx.settings.database_url,
        "MAILCTL_MAIL_HOSTNAME": "mail.example.com",
    }
    argv = [sys.executable, "-m", "mailctl", "setup", "--root", str(root / "stack")]
    try:
        done = subprocess.run(
            private_dev(argv, syslog.path if syslog else None, root),
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        if syslog is not None:
            syslog.close()
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    warned = "OpenDKIM logs only through syslog, and this host has no /dev/log"
    assert (warned in said) is not with_syslog, said
