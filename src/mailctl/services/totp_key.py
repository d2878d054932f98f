"""The key that seals the admins' TOTP secrets, kept outside the database.

A TOTP secret must be readable by the server (it computes the codes), so it cannot be
hashed like a password. It is sealed with AES-GCM under a key that is not in the
database: ``MAILCTL_TOTP_KEY``, or else the file ``{data_dir}/totp.key`` (0600) made on
the first enrolment. A dump or a stolen backup of the database then holds neither the
secrets nor anything to test a guessed recovery code against. The admin's id is bound
into each seal, so a sealed secret copied onto another admin's row does not open.

The database keeps a check value of the key (an HMAC, which tells nothing of the key), so
a process started with another key, or without the file, refuses clearly instead of
making a key of its own that opens nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mailctl.errors import HostStateError
from mailctl.host.fs import fsync_dir
from mailctl.services.context import Context
from mailctl.storage.uow import UnitOfWork

KEY_FILE = "totp.key"
KEY_BYTES = 32
CHECK_SETTING = "totp_key_check"
SEALED_PREFIX = "v1:"
_NONCE_BYTES = 12


def _derived(key: bytes, purpose: str) -> bytes:
    return hmac.new(key, f"mailctl totp {purpose}".encode(), hashlib.sha256).digest()


class TotpKey:
    """Seals and opens TOTP secrets; digests recovery codes. Built from the 32-byte key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a TOTP key is 32 bytes")
        self._aead = AESGCM(_derived(key, "seal"))
        self._codes = _derived(key, "recovery codes")
        self.check = _derived(key, "check").hex()[:32]

    def seal(self, secret: bytes, admin_id: int) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret, _bound_to(admin_id))
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, admin_id: int) -> bytes:
        """The secret; HostStateError when it was sealed with another key or altered."""
        try:
            if not sealed.startswith(SEALED_PREFIX):
                raise ValueError("unknown seal")
            raw = base64.b64decode(sealed[len(SEALED_PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _bound_to(admin_id))
        except (InvalidTag, ValueError, binascii.Error) as exc:
            raise HostStateError(
                "The two-factor secret of this admin cannot be opened with this server's "
                "key: a superadmin can reset it (POST /admin/totp/reset)."
            ) from exc

    def code_digest(self, code: str) -> str:
        """What is stored of a recovery code: HMAC-SHA256 under a key of its own."""
        return hmac.new(self._codes, code.encode("utf-8"), hashlib.sha256).hexdigest()


def _bound_to(admin_id: int) -> bytes:
    return f"admin:{admin_id}".encode("ascii")


def _decode(text: str, where: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise HostStateError(f"The two-factor key in {where} is not 32 bytes in base64.")
    return key


def key_path(ctx: Context) -> Path:
    return ctx.settings.data_dir / KEY_FILE


def _read_file(path: Path) -> bytes | None:
    try:
        text = path.read_text("ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise HostStateError(f"The two-factor key file {path} cannot be read: {exc}.") from exc
    return _decode(text, str(path))


def _create_file(path: Path) -> bytes:
    """Make the key file, or read the one another process made first (never replace it).

    The key is written to a private sibling and linked into place: a link fails if the
    name exists, so two processes enrolling at once end up with one key, not one each.
    """
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".totp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(base64.b64encode(key) + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, path)
            except FileExistsError:
                found = _read_file(path)
                if found is None:
                    raise
                return found
            fsync_dir(path.parent)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    except OSError as exc:
        raise HostStateError(f"Cannot write the two-factor key file {path}: {exc}.") from exc
    return key


def _configured(ctx: Context) -> bytes | None:
    if ctx.settings.totp_key is not None:
        return _decode(ctx.settings.totp_key.get_secret_value(), "MAILCTL_TOTP_KEY")
    return _read_file(key_path(ctx))


MISSING = (
    "This server has no two-factor key ({where}), but secrets sealed with one are in the "
    "database: copy the key file from the server that made it, or set MAILCTL_TOTP_KEY."
)
OTHER_KEY = (
    "This server's two-factor key ({where}) is not the one the admins' secrets were sealed "
    "with: give every server of this database the same key."
)


def load(ctx: Context, uow: UnitOfWork, *, create: bool) -> TotpKey | None:
    """The server's key, checked against the database's check value.

    None when there is no key and ``create`` is False (no secret was ever sealed, so
    there is nothing to open). With ``create``, a server that has no key yet makes one
    and records its check value in ``uow`` (committed with the enrolment).
    """
    where = "MAILCTL_TOTP_KEY" if ctx.settings.totp_key is not None else str(key_path(ctx))
    stored = uow.app_settings.get(CHECK_SETTING)
    raw = _configured(ctx)
    if raw is None:
        if stored is not None:
            raise HostStateError(MISSING.format(where=where))
        if not create:
            return None
        raw = _create_file(key_path(ctx))
    key = TotpKey(raw)
    if stored is None:
        if create:
            uow.app_settings.put(CHECK_SETTING, key.check)
    elif not hmac.compare_digest(stored, key.check):
        raise HostStateError(OTHER_KEY.format(where=where))
    return key
