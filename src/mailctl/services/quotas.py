"""Quotas and limits: a mailbox's storage quota and message count, a domain's limits.

Dovecot enforces a mailbox's quota from its columns (the userdb query) and writes what
the mailbox holds into ``mailbox_usage``; mailctl only reads that. A domain's limits
(mailboxes, aliases, the mailboxes' quotas added up) are checked here, when something is
created or a quota set. In every column, NULL and 0 both mean unlimited.
"""

from __future__ import annotations

from mailctl.domain.names import normalize_domain, parse_address
from mailctl.domain.sizes import parse_count, parse_size, shown_size
from mailctl.errors import ConflictError, InvalidInputError, NotFoundError
from mailctl.services import mailboxes, scope
from mailctl.services.context import Actor, Context
from mailctl.services.views import DomainLimits, UserView
from mailctl.storage.tables import Domain
from mailctl.storage.uow import UnitOfWork


def _stored(value: int) -> int | None:
    return value or None


def check_new_mailboxes(uow: UnitOfWork, domain: Domain, quotas: list[int | None]) -> None:
    """ConflictError when ``len(quotas)`` more mailboxes with these quotas would pass the
    domain's mailbox or total-quota limit; call with the domain's row locked."""
    if domain.max_mailboxes:
        have = uow.domains.count_users(domain.id)
        if have + len(quotas) > domain.max_mailboxes:
            raise ConflictError(
                f"The domain {domain.name} may have {domain.max_mailboxes} mailboxes and "
                f"has {have}: no room for {len(quotas)} more."
            )
    if domain.max_quota_bytes:
        if any(not quota for quota in quotas):
            raise ConflictError(
                f"The domain {domain.name} limits its mailboxes' quotas to "
                f"{shown_size(domain.max_quota_bytes)} in all: give each new mailbox a quota."
            )
        _check_total(uow, domain, sum(q or 0 for q in quotas))


def _check_total(
    uow: UnitOfWork, domain: Domain, adding: int, without_user: int | None = None
) -> None:
    if not domain.max_quota_bytes:
        return
    given = uow.domains.quota_total(domain.id, without_user=without_user)
    if given + adding > domain.max_quota_bytes:
        left = max(domain.max_quota_bytes - given, 0)
        raise ConflictError(
            f"The domain {domain.name} limits its mailboxes' quotas to "
            f"{shown_size(domain.max_quota_bytes)} in all and {shown_size(given)} is given "
            f"already: {shown_size(adding)} more does not fit ({left} bytes are left)."
        )


def check_new_alias(uow: UnitOfWork, domain: Domain) -> None:
    """ConflictError when one more alias would pass the domain's limit (row locked)."""
    if domain.max_aliases:
        have = uow.domains.count_aliases(domain.id)
        if have + 1 > domain.max_aliases:
            raise ConflictError(
                f"The domain {domain.name} may have {domain.max_aliases} aliases and has "
                f"{have}: remove one first or raise the limit."
            )


def set_user_quota(
    ctx: Context,
    actor: Actor,
    *,
    user_id: object = None,
    email: object = None,
    quota: object,
    messages: object = None,
) -> UserView:
    """Set a mailbox's storage quota (bytes or 10M, 2G...; 0: unlimited) and, when given,
    its message count; the mailbox is named by id or by address."""
    if (user_id in (None, "")) == (email in (None, "")):
        raise InvalidInputError("Name the mailbox by its id or by its email, one of the two.")
    size = parse_size(quota)
    count = None if messages in (None, "") else parse_count(messages, "message count")
    with ctx.uow() as uow:
        if email not in (None, ""):
            address = parse_address(email)
            missing = f"The mailbox {address.email} does not exist."
            scope.within(actor, address.domain, missing)
            user = uow.users.by_email(address.email, lock=True)
        else:
            ident = mailboxes.parse_id(user_id, "user id")
            missing = f"There is no user with id {ident}."
            user = uow.users.get(ident)
            visible = actor.scope is None or actor.scope.sees_id(user.domain_id) if user else True
            if not visible:
                raise NotFoundError(missing)
        if user is None:
            raise NotFoundError(missing)
        domain = uow.domains.locked(user.domain_id)
        if domain is None:
            raise NotFoundError(missing)
        if domain.max_quota_bytes and not size:
            raise ConflictError(
                f"The domain {domain.name} limits its mailboxes' quotas to "
                f"{shown_size(domain.max_quota_bytes)} in all: a mailbox of it cannot be "
                "unlimited."
            )
        _check_total(uow, domain, size, without_user=user.id)
        user.quota_bytes = _stored(size)
        if count is not None:
            user.quota_messages = _stored(count)
        detail = f"{shown_size(size)}" + (
            "" if count is None else f", {count or 'unlimited'} messages"
        )
        uow.audit.record(actor, "set_quota", user.email, detail)
        used, stored = uow.users.usage(user.email)
        view = UserView(
            user.id,
            user.domain_id,
            user.email,
            user.quota_bytes,
            user.quota_messages,
            used,
            stored,
        )
        uow.commit()
    ctx.changed("users")
    return view


def _limits(uow: UnitOfWork, domain: Domain) -> DomainLimits:
    return DomainLimits(
        domain.id,
        domain.name,
        domain.max_mailboxes or None,
        domain.max_aliases or None,
        domain.max_quota_bytes or None,
        uow.domains.count_users(domain.id),
        uow.domains.count_aliases(domain.id),
        uow.domains.quota_total(domain.id),
    )


def domain_limits(ctx: Context, actor: Actor, domain: object) -> DomainLimits:
    """A domain's limits and what it has; NotFoundError for one the caller may not see."""
    if not isinstance(domain, str) or not domain.strip():
        raise InvalidInputError("A domain name is required.")
    scope.domain_name(actor, domain)
    name = normalize_domain(domain)
    with ctx.uow() as uow:
        found = uow.domains.by_name(name)
        if found is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        return _limits(uow, found)


def set_domain_limits(
    ctx: Context,
    actor: Actor,
    domain: object,
    *,
    max_mailboxes: object = None,
    max_aliases: object = None,
    max_quota: object = None,
) -> DomainLimits:
    """Change the limits given (0 or ``unlimited``: none; a limit not given stays).

    Superadmins only. A limit the domain already passes is refused (ConflictError), so a
    limit always holds for what is there.
    """
    scope.require_superadmin(actor, "change a domain's limits")
    if not isinstance(domain, str) or not domain.strip():
        raise InvalidInputError("A domain name is required.")
    given = {
        "max_mailboxes": None
        if max_mailboxes in (None, "")
        else parse_count(max_mailboxes, "mailbox limit"),
        "max_aliases": None
        if max_aliases in (None, "")
        else parse_count(max_aliases, "alias limit"),
        "max_quota_bytes": None
        if max_quota in (None, "")
        else parse_size(max_quota, "total quota"),
    }
    if all(value is None for value in given.values()):
        raise InvalidInputError("Give at least one of max_mailboxes, max_aliases, max_quota.")
    name = normalize_domain(domain)
    with ctx.uow() as uow:
        found = uow.domains.by_name(name, lock=True)
        if found is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        now = _limits(uow, found)
        mailboxes, aliases, total = (
            given["max_mailboxes"],
            given["max_aliases"],
            given["max_quota_bytes"],
        )
        if mailboxes and now.mailboxes > mailboxes:
            raise ConflictError(
                f"The domain {name} has {now.mailboxes} mailboxes already, more than "
                f"{mailboxes}: delete some first."
            )
        if aliases and now.aliases > aliases:
            raise ConflictError(
                f"The domain {name} has {now.aliases} aliases already, more than {aliases}: "
                "remove some first."
            )
        if total:
            unlimited = uow.domains.unlimited_mailboxes(found.id)
            if unlimited:
                raise ConflictError(
                    f"The domain {name} has {unlimited} mailboxes without a quota: give each "
                    "a quota before limiting the total."
                )
            if now.quota_bytes > total:
                raise ConflictError(
                    f"The quotas of the domain {name} add up to {shown_size(now.quota_bytes)} "
                    f"already, more than {shown_size(total)}: lower some first."
                )
        for column, value in given.items():
            if value is not None:
                setattr(found, column, _stored(value))
        uow.audit.record(
            actor,
            "set_domain_limits",
            name,
            ", ".join(f"{k}={v or 'unlimited'}" for k, v in given.items() if v is not None),
        )
        limits = _limits(uow, found)
        uow.commit()
    ctx.changed("domains")
    return limits
