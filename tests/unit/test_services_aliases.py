"""Alias use cases, called directly as the API and CLI call them."""

from __future__ import annotations

import pytest

from mailctl.domain.names import parse_alias_destination, parse_alias_source
from mailctl.errors import InvalidInputError, NotFoundError
from mailctl.services import aliases, domains
from mailctl.services.context import Actor, Context

ACTOR = Actor("tester", "192.0.2.5")


def test_alias_names_are_normalised_and_checked() -> None:
    """Sources are lowercased with IDNA domains; destinations are checked one by one."""
    assert parse_alias_source("Info@Bücher.Example") == "info@xn--bcher-kva.example"
    assert parse_alias_source("@Example.COM", "example.com") == "@example.com"
    assert parse_alias_destination(" a@x.example , B@y.example ") == "a@x.example,b@y.example"
    with pytest.raises(InvalidInputError, match=r"not in the domain example\.com"):
        parse_alias_source("a@other.example", "example.com")
    with pytest.raises(InvalidInputError):
        parse_alias_destination("a@x.example,,b@y.example")
    with pytest.raises(InvalidInputError, match="empty"):
        parse_alias_destination("  ")


def test_add_is_audited_and_deleting_the_domain_removes_aliases(ctx: Context) -> None:
    """An alias add leaves an audit row; a deleted domain takes its aliases along."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    alias = aliases.add_alias(ctx, ACTOR, view.id, "abuse", "ops@elsewhere.example")
    assert (alias.source, alias.destination) == ("abuse@example.com", "ops@elsewhere.example")
    with ctx.uow() as uow:
        entries = [(e.action, e.target, e.detail) for e in uow.audit.recent()]
    assert ("create_alias", "abuse@example.com", "to ops@elsewhere.example") in entries
    domains.delete_domain(ctx, ACTOR, "example.com")
    with pytest.raises(NotFoundError, match=r"There is no alias abuse@example\.com"):
        aliases.delete_aliases(ctx, ACTOR, "abuse@example.com")
    again, _ = domains.create_domain(ctx, ACTOR, "example.com")
    assert aliases.list_aliases(ctx, again.id) == []


def test_aliases_change_no_host_file(ctx: Context) -> None:
    """Postfix reads aliases from the database: adding one renders nothing on this host."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    key_table = ctx.settings.opendkim_path / "KeyTable"
    before = key_table.stat().st_mtime_ns
    aliases.add_alias(ctx, ACTOR, view.id, "info", "a@elsewhere.example")
    aliases.delete_aliases(ctx, ACTOR, "info@example.com")
    assert key_table.stat().st_mtime_ns == before
