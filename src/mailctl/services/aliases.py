"""Use cases for aliases: list a domain's, add one, remove one or all of an address's.

An alias sends mail for an address of a served domain to other addresses, here or
elsewhere; ``@domain`` catches every address of the domain that is neither a mailbox nor
another alias. Postfix reads the rows directly, so nothing is rendered or reloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailctl.domain.names import parse_alias_destination, parse_alias_source
from mailctl.errors import ConflictError, InvalidInputError, NotFoundError
from mailctl.services import quotas, scope
from mailctl.services.context import Actor, Context
from mailctl.services.mailboxes import parse_id


@dataclass(frozen=True)
class AliasView:
    id: int
    domain_id: int
    source: str
    destination: str


def list_aliases(ctx: Context, domain_id: int | str) -> list[AliasView]:
    """The aliases of the domain with this id; NotFoundError for an unknown id."""
    ident = parse_id(domain_id, "domain id")
    with ctx.uow() as uow:
        if uow.domains.get(ident) is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        return [
            AliasView(a.id, a.domain_id, a.source, a.destination)
            for a in uow.aliases.list_for_domain(ident)
        ]


def add_alias(
    ctx: Context, actor: Actor, domain_id: int | str, source: str, destination: str
) -> AliasView:
    """Make mail for ``source`` (in the domain with this id) go to ``destination`` as well.

    ``source`` may be a bare local part, taken in that domain. An alias on a mailbox's own
    address forwards a copy: the mailbox still receives its mail.
    """
    ident = parse_id(domain_id, "domain id")
    if not source.strip():
        raise InvalidInputError("An alias source address is required.")
    if not destination.strip():
        raise InvalidInputError("A destination address is required.")
    with ctx.uow() as uow:
        domain = uow.domains.locked(ident)
        if domain is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        if "@" not in source:
            source = f"{source.strip()}@{domain.name}"
        wanted_source = parse_alias_source(source, domain.name)
        wanted_destination = parse_alias_destination(destination)
        if wanted_source in wanted_destination.split(","):
            raise InvalidInputError(f"The alias {wanted_source} cannot point to itself.")
        for existing in uow.aliases.by_source(wanted_source):
            if existing.destination == wanted_destination:
                raise ConflictError(
                    f"The alias {wanted_source} to {wanted_destination} exists already."
                )
        quotas.check_new_alias(uow, domain)
        alias = uow.aliases.add(ident, wanted_source, wanted_destination)
        uow.audit.record(
            actor, "create_alias", wanted_source, f"to {wanted_destination}", domain=domain.name
        )
        uow.commit()
        view = AliasView(alias.id, ident, alias.source, alias.destination)
    ctx.changed("aliases")
    return view


def delete_aliases(
    ctx: Context, actor: Actor, source: str, destination: str | None = None
) -> list[AliasView]:
    """Remove the aliases of ``source``: all of them, or the one to ``destination``.

    NotFoundError if nothing matches; the removed aliases are returned.
    """
    if not source.strip():
        raise InvalidInputError("An alias source address is required.")
    wanted_source = parse_alias_source(source)
    wanted_destination = None if destination in (None, "") else parse_alias_destination(destination)
    what = f" to {wanted_destination}" if wanted_destination else ""
    missing = f"There is no alias {wanted_source}{what}."
    scope.within(actor, wanted_source.rpartition("@")[2], missing)
    with ctx.uow() as uow:
        doomed = [
            a
            for a in uow.aliases.by_source(wanted_source)
            if wanted_destination is None or a.destination == wanted_destination
        ]
        views = [AliasView(a.id, a.domain_id, a.source, a.destination) for a in doomed]
        # Only the rows this transaction deleted count: a racing delete may have read the
        # same rows, and exactly one of the two removes each.
        removed = [
            view for view, alias in zip(views, doomed, strict=True) if uow.aliases.delete(alias)
        ]
        if not removed:
            raise NotFoundError(missing)
        uow.audit.record(
            actor,
            "delete_alias",
            wanted_source,
            "to " + "; ".join(a.destination for a in removed),
            domain=wanted_source.rpartition("@")[2],
        )
        uow.commit()
    ctx.changed("aliases")
    return removed
