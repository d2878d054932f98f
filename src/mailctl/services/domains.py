"""Use cases for mail domains: list, create (with a first mailbox), delete to the trash."""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import TypeVar

from mailctl.domain.names import normalize_domain, parse_address
from mailctl.errors import ConflictError, InvalidInputError, MailctlError, NotFoundError
from mailctl.services.context import Actor, Context
from mailctl.services.mailboxes import commit_to_trash, hash_new_password, mailbox_record
from mailctl.services.paging import Page, Paged, fetch
from mailctl.services.scope import Scope
from mailctl.services.views import DomainView, TrashView, UserView
from mailctl.storage.reads import DomainRow, Reads, Window
from mailctl.storage.tables import LIMIT_COLUMNS

R = TypeVar("R", bound=Sized)


def list_domains(ctx: Context) -> list[DomainView]:
    """Every domain with its number of mailboxes (one query)."""
    return page_domains(ctx, Page()).items


def page_domains(ctx: Context, page: Page, scope: Scope | None = None) -> Paged[DomainView]:
    """One page of the domains, by id, with their numbers of mailboxes (one query); of
    those the ``scope`` may see, when it is narrowed."""
    narrowed = _narrowing(scope)
    if narrowed is None:
        return Paged([])
    with ctx.reads() as reads:
        return _domains_page(reads, page, *narrowed)


def domain_listing(
    ctx: Context, page: Page, scope: Scope | None, render: Callable[[Paged[DomainView]], R]
) -> R:
    """``render`` of ``page_domains``, kept by this process while the listed tables stand
    unchanged (services.listings), for each way a scope narrows the list.

    ``render`` is part of the key: pass the same function each time (a module's own).
    """
    narrowed = _narrowing(scope)
    if narrowed is None:
        return render(Paged([]))
    with ctx.reads() as reads:
        revision = reads.list_revision()  # before the listing: see services.listings
        return ctx.listings.through(
            revision,
            (render, "domains", narrowed, page),
            lambda: render(_domains_page(reads, page, *narrowed)),
        )


def _narrowing(scope: Scope | None) -> tuple[int | None, int | None] | None:
    """The admin whose grants and the key whose bindings narrow the list (None: not
    narrowed by them); None for a narrowed scope that names no rows to narrow by: it sees
    nothing."""
    if scope is None:
        return (None, None)
    if not scope.every_domain and scope.grants_of is None and scope.key_domains_of is None:
        return None
    return (scope.grants_of, scope.key_domains_of)


def _domains_page(
    reads: Reads, page: Page, granted: int | None, keyed: int | None
) -> Paged[DomainView]:
    def read(window: Window) -> list[DomainRow]:
        return reads.domain_rows(window, granted_to=granted, bound_to_key=keyed)

    return fetch(page, read, DomainView._make, lambda d: d.id)


def get_domain(ctx: Context, name: str) -> DomainView:
    """One domain by name; NotFoundError if there is none."""
    domain_name = normalize_domain(name)
    with ctx.uow() as uow:
        domain = uow.domains.by_name(domain_name)
        if domain is None:
            raise NotFoundError(f"The domain {domain_name} does not exist.")
        return DomainView(domain.id, domain.name, uow.domains.count_users(domain.id))


def create_domain(
    ctx: Context,
    actor: Actor,
    name: str,
    email: str | None = None,
    password: str | None = None,
) -> tuple[DomainView, UserView | None]:
    """Create a domain and, when given, its first mailbox, in one transaction."""
    domain_name = normalize_domain(name)
    address = None
    hashed = None
    if (email is None) != (password is None):
        raise InvalidInputError(
            "Give both username and password for the first mailbox, or neither."
        )
    if email is not None and password is not None:
        address = parse_address(email, default_domain=domain_name)
        if address.domain != domain_name:
            raise InvalidInputError(
                f"The mailbox {address.email} does not belong to the domain {domain_name}."
            )
        hashed = hash_new_password(ctx, password)
    with ctx.maildirs.changing(), ctx.uow() as uow:
        if uow.domains.by_name(domain_name) is not None:
            raise ConflictError(f"The domain {domain_name} exists already.")
        domain = uow.domains.add(domain_name)
        uow.audit.record(actor, "create_domain", domain_name, domain=domain_name)
        user_view = None
        if address is not None and hashed is not None:
            user = uow.users.add(domain.id, address.email, hashed)
            uow.audit.record(actor, "create_user", address.email, domain=domain_name)
            user_view = UserView(user.id, domain.id, user.email)
        ctx.maildirs.domain_path(domain_name)  # refuse before commit if the path is unsafe
        created = None
        if address is not None:
            created = ctx.maildirs.create_mailbox(domain_name, address.local_part)
        try:
            uow.commit()
        except MailctlError:
            if address is not None and created is not None:
                ctx.maildirs.remove_empty_mailbox(domain_name, address.local_part)
            raise
        view = DomainView(domain.id, domain_name, 1 if user_view else 0)
    ctx.changed("domains")
    return view, user_view


def delete_domain(ctx: Context, actor: Actor, name: str) -> TrashView:
    """Delete a domain, its mailboxes and aliases; its maildirs move to the trash."""
    domain_name = normalize_domain(name)
    with ctx.maildirs.changing(), ctx.uow() as uow:
        domain = uow.domains.by_name(domain_name, lock=True)
        if domain is None:
            raise NotFoundError(f"The domain {domain_name} does not exist.")
        users = [mailbox_record(user) for user in uow.users.list_for_domain(domain.id)]
        limits = {
            column: getattr(domain, column)
            for column in LIMIT_COLUMNS
            if getattr(domain, column) is not None
        }
        aliases = [
            {"source": alias.source, "destination": alias.destination}
            for alias in uow.aliases.list_for_domain(domain.id)
        ]
        # The keys go with the manifest so that restoring the domain keeps its DNS records valid.
        dkim_keys = [
            {
                "selector": key.selector,
                "key_type": key.key_type,
                "private_key": key.private_key,
                "active": key.active,
            }
            for key in uow.dkim_keys.for_domain(domain.id)
        ]
        if not uow.domains.delete(domain):
            # A concurrent delete won; it made the one trash entry.
            raise NotFoundError(f"The domain {domain_name} does not exist.")
        uow.audit.record(
            actor,
            "delete_domain",
            domain_name,
            f"{len(users)} mailboxes, {len(aliases)} aliases",
            domain=domain_name,
        )
        source = ctx.maildirs.domain_path(domain_name)
        entry = ctx.maildirs.move_to_trash(
            "domain",
            domain_name,
            source,
            {
                "domain": domain_name,
                "mailboxes": users,
                "aliases": aliases,
                "dkim_keys": dkim_keys,
                **({"limits": limits} if limits else {}),
            },
            pending=True,
        )
        entry = commit_to_trash(ctx, uow.commit, entry, source)
    ctx.changed("domains")
    return TrashView(str(entry.path), "domain", domain_name)
