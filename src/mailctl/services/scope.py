"""What a caller may touch: its role, the domains it may see, and whether it may change.

A superadmin sees every domain and alone manages the admins, the host's certificates and
the creation of domains. A domain admin sees only the domains granted to it: for any
other, every operation answers exactly as it does for a domain that does not exist, so
the names of other customers' domains do not leak. An API key narrows its admin's rights
further (to some of its domains, to reading).

The checks here are pure: the scope is read with the token or key that authenticated
the request (``services.auth``). The CLI on the host acts without a scope, with every
right, as root on the mail server has them anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mailctl.domain.names import normalize_domain
from mailctl.errors import ForbiddenError, MailctlError, NotFoundError

SUPERADMIN = "superadmin"
DOMAIN_ADMIN = "domain_admin"
ROLES = (SUPERADMIN, DOMAIN_ADMIN)


@dataclass(frozen=True)
class Scope:
    """The rights of one authenticated caller.

    ``domains`` maps the ids of the domains it may see to their names; None means every
    domain. ``grants_of`` and ``key_domains_of`` say which rows narrow a listing in SQL
    (the admin's grants, the key's own domains), so a list is read as the database has it.
    """

    role: str = SUPERADMIN
    domains: Mapping[int, str] | None = None
    read_only: bool = False
    grants_of: int | None = None
    key_domains_of: int | None = None

    @property
    def every_domain(self) -> bool:
        return self.domains is None

    @property
    def superadmin(self) -> bool:
        """A superadmin's own token, or a key of one that is bound to no domain."""
        return self.role == SUPERADMIN and self.domains is None

    def sees_id(self, domain_id: int) -> bool:
        return self.domains is None or domain_id in self.domains

    def sees_name(self, name: str) -> bool:
        return self.domains is None or name in self.domains.values()


class Scoped(Protocol):
    """Anything that carries a caller's scope (an Actor); None there means the host."""

    @property
    def scope(self) -> Scope | None: ...


def _of(who: Scoped | Scope | None) -> Scope | None:
    if who is None or isinstance(who, Scope):
        return who
    return who.scope


def require_superadmin(who: Scoped | Scope | None, what: str) -> None:
    """ForbiddenError unless the caller is a superadmin (or the host)."""
    scope = _of(who)
    if scope is not None and not scope.superadmin:
        raise ForbiddenError(f"Only a superadmin may {what}.")


def require_write(who: Scoped | Scope | None) -> None:
    """ForbiddenError for a read-only API key."""
    scope = _of(who)
    if scope is not None and scope.read_only:
        raise ForbiddenError("This API key is read-only: it may not change anything.")


def domain_id(who: Scoped | Scope | None, value: object) -> None:
    """NotFoundError, worded as for a missing domain, for a domain id the caller may not see.

    A value that is no id is left to the use case, which refuses it with a 400.
    """
    scope = _of(who)
    if scope is None or scope.every_domain:
        return
    try:
        ident = int(str(value).strip())
    except ValueError:
        return
    if not scope.sees_id(ident):
        raise NotFoundError(f"There is no domain with id {ident}.")


def domain_name(who: Scoped | Scope | None, value: object) -> None:
    """NotFoundError, worded as for a missing domain, for a domain the caller may not see."""
    scope = _of(who)
    if scope is None or scope.every_domain or not isinstance(value, str):
        return
    try:
        name = normalize_domain(value)
    except MailctlError:
        return  # the use case says why the name is not valid
    if not scope.sees_name(name):
        raise NotFoundError(f"The domain {name} does not exist.")


def within(who: Scoped | Scope | None, domain: str, missing: str) -> None:
    """NotFoundError(``missing``) when the normalised ``domain`` of an address is one the
    caller may not see; ``missing`` is what the use case says when there is no such thing.
    """
    scope = _of(who)
    if scope is not None and not scope.sees_name(domain):
        raise NotFoundError(missing)
