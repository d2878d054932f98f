"""Batch mailbox creation, called as the API and CLI call it: checked, hashed, all or none."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import event

from mailctl.config import Settings
from mailctl.domain.passwords import hash_password, verify_password
from mailctl.errors import ConflictError, HostStateError, InvalidEntryError, TooLargeError
from mailctl.services import domains, mailboxes
from mailctl.services.context import Actor, Context
from mailctl.services.hashing import PasswordPool
from mailctl.services.mailboxes import NewMailbox

ACTOR = Actor("tester", "192.0.2.1")


@pytest.fixture
def domain_id(ctx: Context) -> int:
    view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    return view.id


def emails(ctx: Context, domain_id: int) -> list[str]:
    return [view.email for view in mailboxes.list_users(ctx, domain_id)]


def test_plain_passwords_are_hashed_and_verify(ctx: Context, domain_id: int) -> None:
    """Each mailbox of a batch gets its own salted hash of its own password."""
    entries = [NewMailbox(f"u{n}@example.com", f"password-{n}") for n in range(12)]
    views = mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert [v.email for v in views] == [e.email for e in entries]
    assert [v.id for v in views] == sorted(v.id for v in views)
    with ctx.uow() as uow:
        rows = {u.email: u.password for u in uow.users.list_for_domain(domain_id)}
    assert len(set(rows.values())) == 12
    for n in range(12):
        stored = rows[f"u{n}@example.com"]
        assert stored.startswith("{ARGON2ID}$argon2id$")
        assert verify_password(f"password-{n}", stored)
        assert not verify_password(f"password-{n + 1}", stored)
    assert (ctx.settings.mail_root_path / "example.com" / "u11" / "cur").is_dir()


def test_prehashed_and_plain_mix(ctx: Context, domain_id: int) -> None:
    """Pre-hashed entries keep their (normalised) hash; plain ones are hashed."""
    bare = hash_password("old-password", "SHA512-CRYPT").removeprefix("{SHA512-CRYPT}")
    entries = [
        NewMailbox("moved@example.com", password_hash=bare),
        NewMailbox("fresh@example.com", "new-password"),
    ]
    mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    with ctx.uow() as uow:
        moved = uow.users.by_email("moved@example.com")
        fresh = uow.users.by_email("fresh@example.com")
        assert moved is not None and fresh is not None
        assert moved.password == "{SHA512-CRYPT}" + bare
        assert verify_password("new-password", fresh.password)


def test_one_transaction_one_insert_and_audit_per_mailbox(ctx: Context, domain_id: int) -> None:
    """The rows go in with one INSERT statement, and each mailbox has its create_user
    audit entry."""
    inserts: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT INTO VIRTUAL_USERS"):
            inserts.append(statement)

    entries = [NewMailbox(f"a{n}@example.com", password_hash=_hash()) for n in range(50)]
    event.listen(ctx.database.engine, "before_cursor_execute", count)
    try:
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    finally:
        event.remove(ctx.database.engine, "before_cursor_execute", count)
    assert len(inserts) == 1
    with ctx.uow() as uow:
        audit = [
            (e.target, e.admin, e.client_address)
            for e in uow.audit.recent(200)
            if e.action == "create_user"
        ]
    assert sorted(target for target, _, _ in audit) == sorted(e.email for e in entries)
    assert {(admin, address) for _, admin, address in audit} == {("tester", "192.0.2.1")}


_PREHASHED = hash_password("shared-old-password", "SHA512-CRYPT")


def _hash() -> str:
    return _PREHASHED


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (NewMailbox("b@example.com", "short"), "Entry 3 (b@example.com): The password is too"),
        (NewMailbox("b@other.org", "pw-123456"), "Entry 3 (b@other.org): The address"),
        (NewMailbox("", "pw-123456"), "Entry 3 (no address): An email address is required."),
        (NewMailbox("b@example.com"), "Entry 3 (b@example.com): A password or a password"),
        (NewMailbox("b@example.com", password_hash="{PLAIN}x"), "Entry 3 (b@example.com): "),
        (NewMailbox("A@Example.com", "pw-123456"), "Entry 3 (a@example.com): The address is in"),
    ],
)
def test_one_bad_entry_and_nothing_is_created(
    ctx: Context, domain_id: int, bad: NewMailbox, message: str
) -> None:
    """Whatever is wrong with one entry, the error names it and no mailbox is made."""
    entries = [
        NewMailbox("a@example.com", "pw-123456"),
        NewMailbox("c@example.com", "pw-123456"),
        bad,
        NewMailbox("d@example.com", "pw-123456"),
    ]
    with pytest.raises(InvalidEntryError, match=re.escape(message)):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert emails(ctx, domain_id) == []
    assert not (ctx.settings.mail_root_path / "example.com" / "a").exists()


def test_existing_mailboxes_conflict(ctx: Context, domain_id: int) -> None:
    """One existing address is a conflict naming it, and the rest are not created."""
    mailboxes.create_user(ctx, ACTOR, domain_id, "old@example.com", "pw-123456")
    entries = [NewMailbox("new@example.com", "pw-123456"), NewMailbox("old@example.com", "x" * 9)]
    with pytest.raises(ConflictError, match=r"The mailbox old@example\.com exists already"):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert emails(ctx, domain_id) == ["old@example.com"]


def test_a_conflict_names_at_most_ten(ctx: Context, domain_id: int) -> None:
    """Many existing addresses: the first ten are named, and how many more there are."""
    entries = [NewMailbox(f"e{n:02}@example.com", password_hash=_hash()) for n in range(13)]
    mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    with pytest.raises(ConflictError, match=r"13 mailboxes .*e09@example.com and 3 more;"):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)


def test_a_row_added_meanwhile_refuses_the_batch(
    ctx: Context, domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mailbox created while the batch hashed is found in the transaction: 409, no rows."""
    real = ctx.passwords.hash_many

    def hash_then_race(plains: list[str], scheme: str) -> list[str]:
        mailboxes.create_user(ctx, ACTOR, domain_id, "b@example.com", "pw-123456")
        return real(plains, scheme)

    monkeypatch.setattr(ctx.passwords, "hash_many", hash_then_race)
    entries = [NewMailbox("a@example.com", "pw-123456"), NewMailbox("b@example.com", "pw-123456")]
    with pytest.raises(ConflictError, match=r"b@example\.com"):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert emails(ctx, domain_id) == ["b@example.com"]


def test_failed_maildir_leaves_no_rows_and_no_maildirs(ctx: Context, domain_id: int) -> None:
    """If one maildir cannot be made, no row stays and the maildirs made are removed."""
    root = ctx.settings.mail_root_path / "example.com"
    root.mkdir(parents=True, exist_ok=True)
    (root / "c").write_text("a file where a maildir should be")
    entries = [NewMailbox(f"{x}@example.com", password_hash=_hash()) for x in "abcd"]
    with pytest.raises(HostStateError):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert emails(ctx, domain_id) == []
    assert sorted(p.name for p in root.iterdir()) == ["c"]


def test_batch_size_is_bounded(settings: Settings, ctx: Context, domain_id: int) -> None:
    """Over ``max_batch_users`` is refused before anything is checked or hashed."""
    ctx.settings = settings.model_copy(update={"max_batch_users": 2})
    entries = [NewMailbox(f"{x}@example.com", "pw-123456") for x in "abc"]
    with pytest.raises(TooLargeError, match="at most 2"):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert mailboxes.create_users(ctx, ACTOR, domain_id, entries[:2])


def test_hashing_runs_in_parallel_within_the_pool_slots(ctx: Context, domain_id: int) -> None:
    """The batch's hashes run as many at once as the pool has slots, never more."""
    running = peak = 0
    lock = threading.Lock()
    ctx.passwords = PasswordPool(3)
    real = ctx.passwords.run

    def run(work):  # type: ignore[no-untyped-def]
        def counted():  # type: ignore[no-untyped-def]
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                threading.Event().wait(0.02)
                return work()
            finally:
                with lock:
                    running -= 1

        return real(counted)

    ctx.passwords.run = run  # type: ignore[method-assign]
    entries = [NewMailbox(f"p{n}@example.com", "pw-123456") for n in range(12)]
    mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    assert peak == 3


def test_a_failed_insert_leaves_no_maildirs(
    ctx: Context, domain_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the rows cannot go in, no maildir is left behind."""
    from mailctl.errors import UnavailableError
    from mailctl.storage.queries import Users

    def refused(*_args: object) -> None:
        raise UnavailableError("The database is unavailable.")

    monkeypatch.setattr(Users, "add_many", refused)
    entries = [NewMailbox(f"{x}@example.com", password_hash=_hash()) for x in "abc"]
    with pytest.raises(UnavailableError):
        mailboxes.create_users(ctx, ACTOR, domain_id, entries)
    domain_dir = ctx.settings.mail_root_path / "example.com"
    assert not domain_dir.exists() or list(domain_dir.iterdir()) == []
    monkeypatch.undo()
    assert emails(ctx, domain_id) == []
