"""DKIM use cases and the agent, called directly as the API and CLI call them."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

import pytest

from mailctl.domain.dkim import dns_record
from mailctl.errors import InvalidInputError, NotFoundError, UpstreamError
from mailctl.services import agent, dkim, domains, reconcile
from mailctl.services.acme_orders import Renewals
from mailctl.services.context import Actor, Context

ACTOR = Actor("tester", "192.0.2.7")


def key_rows(ctx: Context, domain: str) -> list[tuple[str, str, bool]]:
    with ctx.uow() as uow:
        row = uow.domains.by_name(domain)
        assert row is not None
        return [(k.selector, k.key_type, k.active) for k in uow.dkim_keys.for_domain(row.id)]


def audit_actions(ctx: Context) -> list[tuple[str, str, str | None]]:
    with ctx.uow() as uow:
        return [
            (e.action, e.target, e.detail)
            for e in reversed(uow.audit.recent())
            if "dkim" in e.action
        ]


def test_add_stores_one_key_and_audits_it(ctx: Context) -> None:
    """A first add creates the key and an audit row; a repeat returns it and logs nothing."""
    domains.create_domain(ctx, ACTOR, "example.com")
    first = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    again = dkim.add_key(ctx, ACTOR, "example.com", selector="other", key_type="rsa1024")
    assert first.action == dkim.CREATED
    assert again.action == dkim.EXISTING
    assert again.key == first.key
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", True)]
    assert audit_actions(ctx) == [("create_dkim_key", "example.com", "selector mail, ed25519")]


def test_rotate_without_selector_retires_the_old_key_under_a_new_selector(ctx: Context) -> None:
    """A rotation without selector signs under a dated new one; the old key stays, retired."""
    domains.create_domain(ctx, ACTOR, "example.com")
    first = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    before = dkim.dated_selector("mail", set())
    rotated = dkim.rotate_key(ctx, ACTOR, "example.com")
    assert rotated.action == dkim.ROTATED
    new = rotated.key.selector
    assert new in {before, dkim.dated_selector("mail", set())}  # mail2026-11 style
    assert (rotated.retired, rotated.key.key_type) == ("mail", "ed25519")
    assert rotated.key.dns.value != first.key.dns.value
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", False), (new, "ed25519", True)]
    assert dkim.get_key(ctx, "example.com") == rotated.key
    assert audit_actions(ctx)[-1] == (
        "rotate_dkim_key",
        "example.com",
        f"selector {new}, ed25519; retires selector mail",
    )
    # OpenDKIM signs with the new key only.
    keys = ctx.settings.opendkim_path / "keys/example.com"
    assert sorted(p.name for p in keys.iterdir()) == [f"{new}.private"]
    # The published record of the retired key is unchanged.
    [_, retired] = dkim.list_keys(ctx, "example.com")[1]
    assert (retired.selector, retired.dns, retired.active) == ("mail", first.key.dns, False)


def test_second_rotation_in_a_month_gets_a_selector_of_its_own(ctx: Context) -> None:
    """Two rotations in one month never reuse a selector: the second one is numbered."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    once = dkim.rotate_key(ctx, ACTOR, "example.com")
    twice = dkim.rotate_key(ctx, ACTOR, "example.com")
    assert twice.key.selector == once.key.selector + "-2"
    assert twice.retired == once.key.selector
    assert [(s, active) for s, _, active in key_rows(ctx, "example.com")] == [
        ("mail", False),
        (once.key.selector, False),
        (twice.key.selector, True),
    ]


def test_dated_selector_is_prefix_year_month_and_unique() -> None:
    """mail2026-11, then mail2026-11-2, ...; a long prefix is cut to stay one DNS label."""
    when = datetime(2026, 11, 29, tzinfo=UTC)
    assert dkim.dated_selector("mail", set(), when) == "mail2026-11"
    taken = {"mail2026-11", "mail2026-11-2"}
    assert dkim.dated_selector("mail", taken, when) == "mail2026-11-3"
    assert len(dkim.dated_selector("k" * 63, set(), when)) <= 63


def test_rotate_to_the_current_selector_replaces_the_key_in_place(ctx: Context) -> None:
    """Naming the current selector replaces its key: one row, nothing retired."""
    domains.create_domain(ctx, ACTOR, "example.com")
    first = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    rotated = dkim.rotate_key(ctx, ACTOR, "example.com", selector="mail")
    assert (rotated.action, rotated.retired, rotated.key.selector) == (dkim.ROTATED, None, "mail")
    assert rotated.key.dns.value != first.key.dns.value
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", True)]
    assert audit_actions(ctx)[-1] == (
        "rotate_dkim_key",
        "example.com",
        "selector mail, ed25519; replaces selector mail",
    )


def test_rotate_to_new_selector_keeps_old_key_inactive(ctx: Context) -> None:
    """A new selector deactivates the old key; rotating back to it replaces that old row."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="s2")
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", False), ("s2", "ed25519", True)]
    back = dkim.rotate_key(ctx, ACTOR, "example.com", selector="mail")
    assert back.key.selector == "mail"
    assert sorted(key_rows(ctx, "example.com")) == [
        ("mail", "ed25519", True),
        ("s2", "ed25519", False),
    ]
    keys = ctx.settings.opendkim_path / "keys/example.com"
    assert sorted(p.name for p in keys.iterdir()) == ["mail.private"]


def test_configured_defaults_apply_to_new_keys(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without selector or type, a new key takes dkim_selector and dkim_key_type."""
    monkeypatch.setattr(ctx.settings, "dkim_selector", "k1")
    monkeypatch.setattr(ctx.settings, "dkim_key_type", "ed25519")
    domains.create_domain(ctx, ACTOR, "example.com")
    result = dkim.add_key(ctx, ACTOR, "example.com")
    assert (result.key.selector, result.key.key_type) == ("k1", "ed25519")


def test_new_key_after_removing_the_signing_one_keeps_the_retired_key(ctx: Context) -> None:
    """With only a retired 'mail' key left, add picks a new selector instead of replacing it."""
    domains.create_domain(ctx, ACTOR, "example.com")
    first = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    rotated = dkim.rotate_key(ctx, ACTOR, "example.com")
    dkim.remove_key(ctx, ACTOR, "example.com", rotated.key.selector)
    again = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    assert again.action == dkim.CREATED
    assert again.key.selector != "mail"
    _, keys = dkim.list_keys(ctx, "example.com")
    assert [(k.selector, k.active) for k in keys] == [(again.key.selector, True), ("mail", False)]
    assert keys[1].dns == first.key.dns


def test_rotate_of_a_domain_without_key_creates_one(ctx: Context) -> None:
    """rotate on a domain with no key simply creates its first key."""
    domains.create_domain(ctx, ACTOR, "example.com")
    result = dkim.rotate_key(ctx, ACTOR, "example.com", key_type="ed25519")
    assert result.action == dkim.CREATED
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", True)]


def test_concurrent_first_adds_agree_on_one_key(ctx: Context) -> None:
    """Several simultaneous adds for one domain end with one key, which all of them return."""
    domains.create_domain(ctx, ACTOR, "example.com")
    results: list[dkim.DkimResult] = []
    errors: list[Exception] = []
    start = threading.Barrier(4)

    def add() -> None:
        start.wait(timeout=10)
        try:
            results.append(dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519"))
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({r.key.dns.value for r in results}) == 1
    assert [r.action for r in results].count(dkim.CREATED) == 1
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", True)]


def test_open_transaction_sees_a_key_committed_after_its_first_read(ctx: Context) -> None:
    """A key change that waited for the domain's lock reads the key its rival committed.

    Without this (InnoDB's REPEATABLE READ keeps the first read's snapshot) a second
    simultaneous first add would miss the new key and fail on the selector's uniqueness.
    """
    domains.create_domain(ctx, ACTOR, "example.com")
    with ctx.uow() as uow:
        row = uow.domains.by_name("example.com")
        assert row is not None
        assert uow.dkim_keys.active_for_domain(row.id) is None
        committed = dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
        seen = uow.dkim_keys.active_for_domain(row.id)
        assert seen is not None
        assert dns_record("example.com", seen.selector, seen.private_key) == committed.key.dns


def test_get_key_of_unknown_domain(ctx: Context) -> None:
    """get_key names the missing domain."""
    with pytest.raises(NotFoundError, match=r"The domain nowhere\.example does not exist\."):
        dkim.get_key(ctx, "nowhere.example")


def test_a_change_reconciles_without_registration_but_a_mailbox_change_renders_nothing(
    ctx: Context,
) -> None:
    """Any context reconciles after a change of rendered state; a mailbox change skips it."""
    assert ctx.changed("users").report.written == []
    assert not ctx.settings.opendkim_path.exists()
    outcome = ctx.changed("domains")
    assert outcome.ok
    assert str(ctx.settings.opendkim_path / "KeyTable") in outcome.report.written
    assert (ctx.settings.opendkim_path / "KeyTable").read_text() == ""
    assert ctx.last_reconcile == outcome


def test_reconcile_error_after_a_change_is_logged_not_raised(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """When the files cannot be written, the committed change stands and the error is logged."""
    ctx.settings.opendkim_path.parent.mkdir(parents=True, exist_ok=True)
    ctx.settings.opendkim_path.write_text("a file where a folder should be")
    with caplog.at_level(logging.ERROR, logger="mailctl.reconcile"):
        view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    assert domains.get_domain(ctx, "example.com") == view
    assert "reconcile failed: Cannot create directory" in caplog.text
    assert ctx.last_reconcile is not None
    assert ctx.last_reconcile.error is not None
    assert ctx.last_reconcile.error.startswith("Cannot create directory")


def test_run_once_renews_then_reconciles(ctx: Context) -> None:
    """A pass calls the renewer with the context and then renders the files."""
    seen: list[Context] = []

    def renew(context: Context) -> Renewals:
        seen.append(context)
        return Renewals(renewed=["mx.example.com"])

    run = agent.run_once(ctx, renew=renew)
    assert seen == [ctx]
    assert run.renewed == ["mx.example.com"]
    assert run.ok
    assert (ctx.settings.opendkim_path / "TrustedHosts").exists()


def test_run_once_reconciles_even_when_renewal_fails(ctx: Context) -> None:
    """A failed renewal is reported, and the host is reconciled all the same."""
    domains.create_domain(ctx, ACTOR, "example.com")
    with ctx.uow() as uow:
        row = uow.domains.by_name("example.com")
        assert row is not None
        uow.dkim_keys.add(row.id, "mail", "ed25519", dkim.dkim.generate_key("ed25519"))
        uow.commit()

    def renew(_context: Context) -> Renewals:
        raise UpstreamError("The ACME server refused the order.")

    run = agent.run_once(ctx, renew=renew)
    assert not run.ok
    assert run.renew_error == "The ACME server refused the order."
    assert (ctx.settings.opendkim_path / "keys/example.com/mail.private").exists()
    assert not agent.run_once(ctx, renew=lambda _c: Renewals()).reconcile.report.changed


def test_run_forever_stops_when_told(ctx: Context) -> None:
    """The loop runs passes until the stop event is set, then returns their number."""
    stop = threading.Event()
    runs: list[agent.AgentRun] = []

    def on_run(run: agent.AgentRun) -> None:
        runs.append(run)
        if len(runs) == 3:
            stop.set()

    passes = agent.run_forever(ctx, 0.01, stop, on_run=on_run, renew=lambda _c: Renewals())
    assert passes == 3
    assert runs[0].reconcile.report.changed
    assert not runs[1].reconcile.report.changed


def test_unexpected_reconcile_error_is_an_outcome(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in reconcile comes back as an error outcome with a traceback in the log."""

    def broken(_ctx: Context) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(reconcile, "reconcile", broken)
    with caplog.at_level(logging.ERROR, logger="mailctl.reconcile"):
        outcome = reconcile.reconcile_safely(ctx)
    assert not outcome.ok
    assert outcome.error == "Reconcile failed unexpectedly; the log has the details."
    assert "RuntimeError: boom" in caplog.text


def test_list_shows_the_signing_key_first_then_retired_ones(ctx: Context) -> None:
    """After rotations to new selectors, list names every key and which one signs."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", selector="s1", key_type="ed25519")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="s2")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="s3", key_type="rsa1024")
    name, views = dkim.list_keys(ctx, "EXAMPLE.com")
    assert name == "example.com"
    assert [(v.selector, v.key_type, v.active) for v in views] == [
        ("s3", "rsa1024", True),
        ("s2", "ed25519", False),
        ("s1", "ed25519", False),
    ]
    assert views[0] == dkim.get_key(ctx, "example.com")


def test_remove_retired_key_leaves_signing_alone(ctx: Context) -> None:
    """Removing a retired key deletes its row only; OpenDKIM keeps signing with the active one."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", selector="old", key_type="ed25519")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="new")
    key_table = ctx.settings.opendkim_path / "KeyTable"
    before = key_table.read_text()
    removed = dkim.remove_key(ctx, ACTOR, "example.com", "OLD")
    assert (removed.domain, removed.selector, removed.was_active) == ("example.com", "old", False)
    assert removed.reload.ok
    assert key_rows(ctx, "example.com") == [("new", "ed25519", True)]
    assert key_table.read_text() == before
    assert audit_actions(ctx)[-1] == ("delete_dkim_key", "example.com", "selector old; retired")


def test_remove_active_key_stops_signing(ctx: Context) -> None:
    """Removing the signing key takes the domain out of OpenDKIM's tables; no old key returns."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", selector="old", key_type="ed25519")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="new")
    key_file = ctx.settings.opendkim_path / "keys/example.com/new.private"
    assert key_file.exists()
    removed = dkim.remove_key(ctx, ACTOR, "example.com", "new")
    assert removed.was_active
    assert key_rows(ctx, "example.com") == [("old", "ed25519", False)]
    assert "example.com" not in (ctx.settings.opendkim_path / "KeyTable").read_text()
    assert "example.com" not in (ctx.settings.opendkim_path / "SigningTable").read_text()
    assert not key_file.exists()
    with pytest.raises(NotFoundError, match=r"The domain example\.com has no DKIM key\."):
        dkim.get_key(ctx, "example.com")
    # A later add makes a fresh key rather than bringing the retired one back.
    again = dkim.add_key(ctx, ACTOR, "example.com", selector="next", key_type="ed25519")
    assert again.action == dkim.CREATED
    assert key_rows(ctx, "example.com") == [("old", "ed25519", False), ("next", "ed25519", True)]


def test_remove_refuses_unknown_and_invalid_names(ctx: Context) -> None:
    """An unknown domain or selector is a NotFoundError naming it; a bad selector is refused."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    with pytest.raises(NotFoundError, match=r"no DKIM key with the selector other\."):
        dkim.remove_key(ctx, ACTOR, "example.com", "other")
    with pytest.raises(NotFoundError, match=r"The domain nowhere\.example does not exist\."):
        dkim.remove_key(ctx, ACTOR, "nowhere.example", "mail")
    with pytest.raises(InvalidInputError, match="one DNS label"):
        dkim.remove_key(ctx, ACTOR, "example.com", "../mail")
    assert key_rows(ctx, "example.com") == [("mail", "ed25519", True)]
