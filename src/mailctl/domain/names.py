"""Validation and normalisation of domain names and mailbox addresses."""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna

from mailctl.errors import InvalidInputError

MAX_DOMAIN_LENGTH = 253
MAX_LABEL_LENGTH = 63
MAX_LOCAL_PART_LENGTH = 64
MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit, less the angle brackets

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# RFC 5321 atext without "/" (a path separator) and "%" (Postfix's legacy routing operator);
# local parts become directory names, so nothing here may mean anything to a filesystem.
_LOCAL_ATOM = re.compile(r"^[a-z0-9!#$&'*+=?^_`{|}~-]+$")


@dataclass(frozen=True)
class Address:
    """A validated mailbox address: ASCII, lowercase, domain in its A-label form."""

    local_part: str
    domain: str

    @property
    def email(self) -> str:
        return f"{self.local_part}@{self.domain}"

    def __str__(self) -> str:
        return self.email


def _check_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"The {what} must be text.")
    if "\x00" in value:
        raise InvalidInputError(f"The {what} must not contain a NUL byte.")
    text = value.strip()
    if not text:
        raise InvalidInputError(f"The {what} is empty.")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise InvalidInputError(f"The {what} must not contain spaces or control characters.")
    return text


def normalize_domain(value: object) -> str:
    """Return the domain as lowercase ASCII (IDNA A-labels), or raise InvalidInputError.

    Accepts Unicode names (``bücher.example`` becomes ``xn--bcher-kva.example``) and one
    trailing dot. Refuses anything that could not be a mail domain or could be read as a
    path: slashes, ``..``, empty labels, labels over 63 characters, names over 253.
    """
    return _normalize_name(value, "domain name", min_labels=2)


def normalize_host_name(value: object) -> str:
    """Return a host name as ``normalize_domain`` does, but a single label will do.

    A certificate may be for ``localhost`` or another machine's bare name; a mail domain
    may not.
    """
    return _normalize_name(value, "host name", min_labels=1)


def _normalize_name(value: object, what: str, *, min_labels: int) -> str:
    text = _check_text(value, what)
    if len(text) > 4 * MAX_DOMAIN_LENGTH:
        raise InvalidInputError(f"The {what} is too long (253 characters at most).")
    if text.endswith("."):
        text = text[:-1]
    if "/" in text or "\\" in text:
        raise InvalidInputError(f"The {what} {text!r} must not contain slashes.")
    labels = text.split(".")
    if len(labels) < min_labels:
        raise InvalidInputError(f"The {what} {text!r} needs at least two labels, like example.com.")
    ascii_labels: list[str] = []
    for label in labels:
        if not label:
            raise InvalidInputError(f"The {what} {text!r} has an empty label.")
        if len(label) > MAX_LABEL_LENGTH and label.isascii():
            raise InvalidInputError(
                f"The {what} has a label longer than {MAX_LABEL_LENGTH} characters."
            )
        if label.isascii():
            ascii_label = label.lower()
        else:
            try:
                ascii_label = idna.encode(label, uts46=True).decode("ascii")
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidInputError(
                    f"The {what} {text!r} is not a valid internationalised name: {exc}."
                ) from exc
        if len(ascii_label) > MAX_LABEL_LENGTH:
            raise InvalidInputError(
                f"The {what} has a label longer than {MAX_LABEL_LENGTH} characters."
            )
        if not _LABEL.match(ascii_label):
            raise InvalidInputError(
                f"The {what} {text!r} may use only letters, digits and inner hyphens in each label."
            )
        if ascii_label.startswith("xn--"):
            try:
                idna.decode(ascii_label)
            except (idna.IDNAError, UnicodeError) as exc:
                raise InvalidInputError(
                    f"The {what} {text!r} has an invalid punycode label."
                ) from exc
        ascii_labels.append(ascii_label)
    if ascii_labels[-1].isdigit():
        raise InvalidInputError(f"The {what} {text!r} has an all-numeric top-level label.")
    name = ".".join(ascii_labels)
    if len(name) > MAX_DOMAIN_LENGTH:
        raise InvalidInputError(f"The {what} is too long (253 characters at most).")
    return name


def normalize_local_part(value: object) -> str:
    """Return the local part lowercased, or raise InvalidInputError.

    Only dot-atoms are accepted (no quoted strings), without characters that mean something
    to a filesystem or to Postfix, so the result is safe as one directory name.
    """
    text = _check_text(value, "local part of the address")
    local = text.lower()
    if len(local) > MAX_LOCAL_PART_LENGTH:
        raise InvalidInputError(
            f"The local part of the address is too long ({MAX_LOCAL_PART_LENGTH} characters "
            "at most)."
        )
    atoms = local.split(".")
    if any(not atom for atom in atoms):
        raise InvalidInputError(
            f"The address {text!r} must not start or end with a dot or have two dots in a row."
        )
    for atom in atoms:
        if not _LOCAL_ATOM.match(atom):
            raise InvalidInputError(
                f"The local part {text!r} may use letters, digits, dots and "
                "!#$&'*+=?^_`{|}~- only."
            )
    return local


def parse_address(value: object, *, default_domain: str | None = None) -> Address:
    """Parse ``local@domain`` into a normalised Address.

    With ``default_domain``, a bare local part (no ``@``) is taken as an address in that
    domain, which is how the old service's ``username`` field was used.
    """
    text = _check_text(value, "email address")
    if text.count("@") > 1:
        raise InvalidInputError(f"The email address {text!r} has more than one '@'.")
    if "@" not in text:
        if default_domain is None:
            raise InvalidInputError(f"The email address {text!r} has no '@domain' part.")
        local, domain = text, default_domain
    else:
        local, domain = text.split("@")
        if not local:
            raise InvalidInputError(f"The email address {text!r} has nothing before the '@'.")
        if not domain:
            raise InvalidInputError(f"The email address {text!r} has nothing after the '@'.")
    address = Address(normalize_local_part(local), normalize_domain(domain))
    if len(address.email) > MAX_ADDRESS_LENGTH:
        raise InvalidInputError(
            f"The email address is too long ({MAX_ADDRESS_LENGTH} characters at most)."
        )
    return address


MAX_ALIAS_DESTINATION_LENGTH = 254  # the column that holds it


def parse_alias_source(value: object, domain: str | None = None) -> str:
    """An alias's address: ``local@domain``, or ``@domain`` for every address of the domain.

    With ``domain``, the alias must lie in that domain.
    """
    text = _check_text(value, "alias address")
    if text.startswith("@"):
        source = "@" + normalize_domain(text[1:])
        found = source[1:]
    else:
        address = parse_address(text)
        source, found = address.email, address.domain
    if domain is not None and found != domain:
        raise InvalidInputError(f"The alias {source} is not in the domain {domain}.")
    return source


def parse_alias_destination(value: object) -> str:
    """Where an alias delivers: one address, or several separated by commas (as Postfix reads)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError("The alias destination is empty.")
    destination = ",".join(parse_address(part.strip()).email for part in value.split(","))
    if len(destination) > MAX_ALIAS_DESTINATION_LENGTH:
        raise InvalidInputError(
            f"The alias destination is too long ({MAX_ALIAS_DESTINATION_LENGTH} characters "
            "at most)."
        )
    return destination
