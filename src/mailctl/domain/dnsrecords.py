"""The DNS records a mail domain needs (MX, SPF, DKIM, DMARC), and their zone-file form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mailctl.domain.names import normalize_domain, parse_address
from mailctl.errors import InvalidInputError

DMARC_POLICIES = ("none", "quarantine", "reject")
SPF_ALL = ("-all", "~all", "?all")
DEFAULT_MX_PRIORITY = 10
DEFAULT_TTL = 3600
# One TXT character-string holds at most 255 bytes (RFC 1035 3.3); longer values, like a
# 2048-bit DKIM key, are split into several strings that resolvers join back together.
TXT_CHUNK = 255


@dataclass(frozen=True)
class DnsRecord:
    """One record to publish: a fully qualified name (no trailing dot), a type and a value.

    ``value`` is what a DNS provider's web form asks for: the bare TXT text without quotes,
    or ``<priority> <host>`` for MX.
    """

    name: str
    type: str
    value: str
    purpose: str = ""
    note: str = ""  # a DKIM record's state: "signing" or "retired"


def mx_record(domain: str, mail_host: str, priority: int = DEFAULT_MX_PRIORITY) -> DnsRecord:
    """The MX record that sends the domain's mail to ``mail_host``."""
    if not 0 <= priority <= 65535:
        raise InvalidInputError("The MX priority must be between 0 and 65535.")
    host = normalize_domain(mail_host)
    return DnsRecord(
        normalize_domain(domain),
        "MX",
        f"{priority} {host}",
        "MX: where mail for the domain is delivered",
    )


def spf_record(domain: str, all_policy: str = "-all") -> DnsRecord:
    """The SPF record: only the domain's MX hosts may send its mail (``v=spf1 mx -all``)."""
    if all_policy not in SPF_ALL:
        raise InvalidInputError(f"The SPF policy must be one of {', '.join(SPF_ALL)}.")
    return DnsRecord(
        normalize_domain(domain),
        "TXT",
        f"v=spf1 mx {all_policy}",
        "SPF: which hosts may send its mail",
    )


def dmarc_record(
    domain: str, policy: str = "quarantine", report_to: str | None = None
) -> DnsRecord:
    """The DMARC record at ``_dmarc.<domain>``; aggregate reports go to ``report_to``.

    ``report_to`` defaults to postmaster@<domain>, an address every mail domain must have
    (RFC 5321 4.5.1). An address in another domain only receives the reports if that
    domain publishes an authorisation record (RFC 7489 7.1).
    """
    name = normalize_domain(domain)
    if policy not in DMARC_POLICIES:
        raise InvalidInputError(f"The DMARC policy must be one of {', '.join(DMARC_POLICIES)}.")
    address = parse_address(report_to or f"postmaster@{name}")
    value = f"v=DMARC1; p={policy}; rua=mailto:{address.local_part}@{address.domain}"
    return DnsRecord(f"_dmarc.{name}", "TXT", value, "DMARC: what receivers do with forged mail")


SIGNING, RETIRED = "signing", "retired"


def dkim_record(name: str, value: str, *, active: bool = True) -> DnsRecord:
    """The DKIM record of a stored key (its name and value as the key service gives them).

    A retired key no longer signs, but mail it signed may still be on its way, and the
    receiver looks its record up when the mail arrives: it stays published for a while
    after a rotation (a few days covers every retry), beside the signing key's.
    """
    if active:
        return DnsRecord(
            name.rstrip("."), "TXT", value, "DKIM: the public half of the signing key", SIGNING
        )
    return DnsRecord(
        name.rstrip("."),
        "TXT",
        value,
        "DKIM: a retired key, no longer signing; keep it published until the mail it "
        "signed has been delivered",
        RETIRED,
    )


def domain_records(
    domain: str,
    mail_host: str,
    *,
    dkim: Sequence[DnsRecord] = (),
    mx_priority: int = DEFAULT_MX_PRIORITY,
    spf_all: str = "-all",
    dmarc_policy: str = "quarantine",
    dmarc_report_to: str | None = None,
) -> list[DnsRecord]:
    """Every record a domain served by ``mail_host`` needs, in the order to publish them.

    ``dkim`` holds the record of every key the domain has: the signing one and those a
    rotation retired.
    """
    records = [mx_record(domain, mail_host, mx_priority), spf_record(domain, spf_all)]
    records.extend(dkim)
    records.append(dmarc_record(domain, dmarc_policy, dmarc_report_to))
    return records


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _txt_data(value: str) -> str:
    raw = value.encode("ascii")
    if len(raw) <= TXT_CHUNK:
        return _quoted(value)
    chunks = [raw[i : i + TXT_CHUNK].decode("ascii") for i in range(0, len(raw), TXT_CHUNK)]
    return "( " + " ".join(_quoted(chunk) for chunk in chunks) + " )"


def zone_line(record: DnsRecord, ttl: int = DEFAULT_TTL) -> str:
    """One record in BIND zone-file syntax, with absolute names (trailing dots)."""
    if record.type == "TXT":
        data = _txt_data(record.value)
    elif record.type in ("MX", "CNAME", "NS"):
        # The target host is a name: make it absolute, or the zone's origin is appended.
        data = record.value if record.value.endswith(".") else record.value + "."
    else:
        data = record.value
    return f"{record.name}.\t{ttl}\tIN\t{record.type}\t{data}"


def zone_text(records: Sequence[DnsRecord], ttl: int = DEFAULT_TTL) -> str:
    """The records as zone-file lines, each preceded by a comment saying what it is for."""
    lines: list[str] = []
    for record in records:
        if record.purpose:
            lines.append(f"; {record.purpose}")
        lines.append(zone_line(record, ttl))
    return "\n".join(lines) + "\n"
