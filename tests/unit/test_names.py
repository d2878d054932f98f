"""Domain names and addresses are normalised, and hostile ones are refused."""

from __future__ import annotations

import pytest

from mailctl.domain.names import (
    normalize_domain,
    normalize_host_name,
    normalize_local_part,
    parse_address,
)
from mailctl.errors import InvalidInputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("  mail.example.org ", "mail.example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_domains_are_normalised(given: str, expected: str) -> None:
    """Case, a trailing dot and Unicode labels normalise to one ASCII form."""
    assert normalize_domain(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("../etc", "slashes"),
        ("..", "empty label"),
        ("example..com", "empty label"),
        ("a/b.com", "slashes"),
        ("a\\b.com", "slashes"),
        ("exa mple.com", "spaces"),
        ("example.com\x00", "NUL"),
        ("localhost", "two labels"),
        ("-bad.com", "letters, digits"),
        ("bad-.com", "letters, digits"),
        ("under_score.com", "letters, digits"),
        ("a" * 300 + ".com", "63"),
        (".".join(["abcdefghij"] * 30), "too long"),
        ("example.123", "all-numeric"),
        ("xn--zz.example", "punycode"),
    ],
)
def test_bad_domains_are_refused(given: str, message: str) -> None:
    """Hostile or impossible domain names raise InvalidInputError with a clear reason."""
    with pytest.raises(InvalidInputError) as info:
        normalize_domain(given)
    assert message in info.value.message


def test_addresses_are_lowercased_and_split() -> None:
    """An address becomes lowercase local part and ASCII domain."""
    address = parse_address("John.Doe+tag@Bücher.Example")
    assert address.local_part == "john.doe+tag"
    assert address.domain == "xn--bcher-kva.example"
    assert address.email == "john.doe+tag@xn--bcher-kva.example"


def test_bare_local_part_takes_the_default_domain() -> None:
    """The old ``username`` field may be a bare name inside the domain being created."""
    assert parse_address("info", default_domain="example.com").email == "info@example.com"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("a@b@c.com", "more than one"),
        ("@example.com", "nothing before"),
        ("user@", "nothing after"),
        ("no-at-sign", "no '@domain'"),
        ("../x@example.com", "dot"),
        ("a..b@example.com", "two dots"),
        (".a@example.com", "dot"),
        ("a/b@example.com", "may use"),
        ("a%b@example.com", "may use"),
        ('"quoted"@example.com', "may use"),
        ("a\x00b@example.com", "NUL"),
        ("x" * 65 + "@example.com", "too long"),
        ("user@../../etc", "slashes"),
    ],
)
def test_bad_addresses_are_refused(given: str, message: str) -> None:
    """Addresses that could escape a directory or are not addresses at all are refused."""
    with pytest.raises(InvalidInputError) as info:
        parse_address(given)
    assert message in info.value.message


def test_local_part_is_safe_as_directory_name() -> None:
    """Characters with a meaning to a filesystem never pass."""
    for bad in ("..", ".", "a/b", "a\\b", "a b"):
        with pytest.raises(InvalidInputError):
            normalize_local_part(bad)


def test_host_name_may_be_one_label_where_a_domain_may_not() -> None:
    """``localhost`` is a host name a certificate can be for, but no mail domain."""
    assert normalize_host_name("LocalHost.") == "localhost"
    assert normalize_host_name("Mail.Example.com") == "mail.example.com"
    with pytest.raises(InvalidInputError, match="at least two labels"):
        normalize_domain("localhost")
    with pytest.raises(InvalidInputError, match="The host name 'a/b' must not contain slashes"):
        normalize_host_name("a/b")
