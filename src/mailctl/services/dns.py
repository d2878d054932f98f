"""The DNS records a domain mailctl serves needs: MX, SPF, every DKIM key's, and DMARC."""

from __future__ import annotations

from dataclasses import dataclass

from mailctl.domain import dnsrecords
from mailctl.errors import InvalidInputError
from mailctl.services import dkim, domains
from mailctl.services.context import Context

DEFAULT_MX_PRIORITY = dnsrecords.DEFAULT_MX_PRIORITY
DEFAULT_TTL = dnsrecords.DEFAULT_TTL


@dataclass(frozen=True)
class DomainDns:
    """The records a domain needs; ``dkim_missing`` when no key signs its mail yet."""

    domain: str
    records: list[dnsrecords.DnsRecord]
    dkim_missing: bool

    @property
    def retired_selectors(self) -> list[str]:
        """The selectors of DKIM keys a rotation retired, whose records stay a while."""
        return [
            record.name.partition("._domainkey.")[0]
            for record in self.records
            if record.note == dnsrecords.RETIRED
        ]

    def zone(self, ttl: int = DEFAULT_TTL) -> str:
        """The records as BIND zone-file lines, each after a comment saying what it is for."""
        return dnsrecords.zone_text(self.records, ttl)


def domain_dns(
    ctx: Context,
    domain: str,
    *,
    mail_host: str | None = None,
    mx_priority: int = dnsrecords.DEFAULT_MX_PRIORITY,
    spf_all: str = "-all",
    dmarc_policy: str = "quarantine",
    dmarc_report_to: str | None = None,
) -> DomainDns:
    """The MX, SPF, DKIM and DMARC records of a domain mailctl serves.

    Every DKIM key of the domain has its record: the signing key's, and those of keys a
    rotation retired, which must stay published until the mail they signed has arrived.
    """
    host = mail_host or ctx.settings.mail_hostname
    if not host.strip():
        raise InvalidInputError(
            "The mail host name is not set: set MAILCTL_MAIL_HOSTNAME or pass --mx."
        )
    name = domains.get_domain(ctx, domain).name
    _, keys = dkim.list_keys(ctx, name)
    dkim_records = [
        dnsrecords.dkim_record(key.dns.name, key.dns.value, active=key.active) for key in keys
    ]
    records = dnsrecords.domain_records(
        name,
        host,
        dkim=dkim_records,
        mx_priority=mx_priority,
        spf_all=spf_all,
        dmarc_policy=dmarc_policy,
        dmarc_report_to=dmarc_report_to,
    )
    return DomainDns(name, records, not any(key.active for key in keys))
