"""The DNS record builders: MX, SPF, DKIM, DMARC values and their zone-file lines."""

from __future__ import annotations

import pytest

from mailctl.domain import dnsrecords
from mailctl.domain.dnsrecords import DnsRecord
from mailctl.errors import InvalidInputError


def test_mx_points_at_the_mail_host_with_a_priority() -> None:
    """The MX value is '<priority> <host>' with the host's normalised name."""
    record = dnsrecords.mx_record("Example.ORG", "Mail.Example.org", 20)
    assert record == DnsRecord("example.org", "MX", "20 mail.example.org", record.purpose)


def test_spf_allows_only_the_mx_hosts() -> None:
    """SPF defaults to 'v=spf1 mx -all'; a softer ending can be chosen."""
    assert dnsrecords.spf_record("example.org").value == "v=spf1 mx -all"
    assert dnsrecords.spf_record("example.org", "~all").value == "v=spf1 mx ~all"


def test_dmarc_defaults_to_quarantine_and_postmaster_reports() -> None:
    """DMARC sits at _dmarc.<domain>, quarantines, and reports to postmaster@<domain>."""
    record = dnsrecords.dmarc_record("example.org")
    assert record.name == "_dmarc.example.org"
    assert record.type == "TXT"
    assert record.value == "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.org"


def test_dmarc_policy_and_report_address_can_change() -> None:
    """A reject policy and another report address end up in the value."""
    record = dnsrecords.dmarc_record("example.org", "reject", "Reports@Example.net")
    assert record.value == "v=DMARC1; p=reject; rua=mailto:reports@example.net"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: dnsrecords.dmarc_record("example.org", "block"), "The DMARC policy must be"),
        (lambda: dnsrecords.spf_record("example.org", "+all"), "The SPF policy must be"),
        (lambda: dnsrecords.mx_record("example.org", "mail.example.org", 70000), "MX priority"),
        (lambda: dnsrecords.mx_record("example.org", "not a host"), "must not contain spaces"),
        (lambda: dnsrecords.dmarc_record("example.org", "none", "a b"), "must not contain spaces"),
    ],
)
def test_bad_choices_are_refused(call, message: str) -> None:  # type: ignore[no-untyped-def]
    """Unknown policies, priorities, host names or addresses raise InvalidInputError."""
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_domain_records_in_publishing_order() -> None:
    """MX, SPF, DKIM (when there is a key), DMARC."""
    key = dnsrecords.dkim_record("mail._domainkey.example.org.", "v=DKIM1; k=ed25519; p=AAAA")
    records = dnsrecords.domain_records("example.org", "mail.example.org", dkim=[key])
    assert [(r.name, r.type) for r in records] == [
        ("example.org", "MX"),
        ("example.org", "TXT"),
        ("mail._domainkey.example.org", "TXT"),
        ("_dmarc.example.org", "TXT"),
    ]
    without = dnsrecords.domain_records("example.org", "mail.example.org")
    assert [r.name for r in without] == ["example.org", "example.org", "_dmarc.example.org"]


def test_retired_dkim_keys_are_published_beside_the_signing_one() -> None:
    """Every key's record is listed, the signing one first, each comment saying which."""
    signing = dnsrecords.dkim_record("new._domainkey.example.org", "v=DKIM1; k=ed25519; p=BB")
    retired = dnsrecords.dkim_record(
        "old._domainkey.example.org", "v=DKIM1; k=ed25519; p=AA", active=False
    )
    records = dnsrecords.domain_records("example.org", "mail.example.org", dkim=[signing, retired])
    assert [(r.name, r.note) for r in records] == [
        ("example.org", ""),
        ("example.org", ""),
        ("new._domainkey.example.org", "signing"),
        ("old._domainkey.example.org", "retired"),
        ("_dmarc.example.org", ""),
    ]
    lines = dnsrecords.zone_text(records).splitlines()
    assert lines[4:8] == [
        "; DKIM: the public half of the signing key",
        'new._domainkey.example.org.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=BB"',
        "; DKIM: a retired key, no longer signing; keep it published until the mail it "
        "signed has been delivered",
        'old._domainkey.example.org.\t3600\tIN\tTXT\t"v=DKIM1; k=ed25519; p=AA"',
    ]


def test_zone_lines_use_absolute_names_and_quoted_text() -> None:
    """Names and MX targets end with a dot; TXT values are quoted with quotes escaped."""
    mx = dnsrecords.mx_record("example.org", "mail.example.org")
    assert dnsrecords.zone_line(mx, 300) == "example.org.\t300\tIN\tMX\t10 mail.example.org."
    odd = DnsRecord("example.org", "TXT", 'say "hi" \\ bye')
    assert dnsrecords.zone_line(odd) == 'example.org.\t3600\tIN\tTXT\t"say \\"hi\\" \\\\ bye"'


def test_long_txt_values_are_split_into_255_byte_strings() -> None:
    """A 2048-bit DKIM key's value is cut into strings a resolver joins back."""
    value = "v=DKIM1; k=rsa; p=" + "A" * 392
    line = dnsrecords.zone_line(DnsRecord("mail._domainkey.example.org", "TXT", value))
    data = line.split("\t")[-1]
    assert data.startswith('( "') and data.endswith('" )')
    strings = [part for part in data[2:-2].split('"') if part.strip()]
    assert [len(part) for part in strings] == [255, len(value) - 255]
    assert "".join(strings) == value


def test_zone_text_comments_each_record() -> None:
    """Every zone-file line is preceded by a comment saying what the record is for."""
    records = dnsrecords.domain_records("example.org", "mail.example.org")
    text = dnsrecords.zone_text(records)
    lines = text.splitlines()
    assert lines[0] == "; MX: where mail for the domain is delivered"
    assert lines[1].startswith("example.org.\t3600\tIN\tMX\t")
    assert len(lines) == 6
    assert text.endswith("\n")
