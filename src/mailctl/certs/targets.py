"""Where an outbound probe may connect: a rule on resolved addresses, not on names."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address a packet may end up at: judged by that address.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# One getaddrinfo entry: family, socket type, protocol, canonical name, sockaddr.
Resolved = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _judged(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def never_probed(address: IPAddress) -> str | None:
    """The kind of ``address`` no probe ever connects to (link-local...), or None."""
    judged = _judged(address)
    if judged.is_link_local:
        return "a link-local address"
    if judged.is_multicast:
        return "a multicast address"
    if judged.is_unspecified:
        return "an unspecified address"
    # IPv4's 240.0.0.0/4 and broadcast; IPv6's unassigned blocks, not its private ones.
    v4 = isinstance(judged, ipaddress.IPv4Address)
    if judged.is_reserved and not judged.is_loopback and (v4 or not judged.is_private):
        return "a reserved address"
    return None


def is_private(address: IPAddress) -> bool:
    """Whether ``address`` is loopback, private or otherwise not reachable on the Internet."""
    judged = _judged(address)
    return judged.is_loopback or judged.is_private or not judged.is_global


@dataclass(frozen=True)
class Targets:
    """Which addresses a live certificate probe may connect to.

    Link-local (169.254.0.0/16, fe80::/10, where cloud metadata services answer),
    multicast, unspecified and reserved addresses: never. Private and loopback addresses:
    only those of the mail host itself (``mail_host`` and what it resolves to), all of
    them with ``private``, or those inside ``networks``. Public addresses: always.
    ``trusted`` is for mailctl's own checks of its own listeners, whose address comes
    from configuration, not from a client: any address, and failures say what happened.
    """

    private: bool = False
    networks: tuple[Network, ...] = ()
    mail_host: str = ""
    trusted: bool = False

    def refusal(self, name: str | None, address: IPAddress) -> str | None:
        """Why a probe of ``address`` (resolved from ``name``) is refused, or None."""
        if self.trusted:
            return None
        kind = never_probed(address)
        if kind is not None:
            return f"it is {kind}, which mailctl never probes"
        if not is_private(address) or self.private:
            return None
        judged = _judged(address)
        if any(judged in network or address in network for network in self.networks):
            return None
        if self._is_mail_host(name, address):
            return None
        return (
            "it is a private or loopback address and not the mail host's; allow it with "
            "MAILCTL_PROBE_PRIVATE_TARGETS"
        )

    def _is_mail_host(self, name: str | None, address: IPAddress) -> bool:
        host = self.mail_host.strip().rstrip(".").lower()
        if not host:
            return False
        if name is not None and name.rstrip(".").lower() == host:
            return True
        try:
            own = {ipaddress.ip_address(host)}
        except ValueError:
            try:
                found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError):
                return False
            own = {_address(str(entry[4][0])) for entry in found}
        return address in own


def _address(text: str) -> IPAddress:
    # getaddrinfo writes a scoped IPv6 address as fe80::1%eth0; the scope is not the address.
    return ipaddress.ip_address(text.split("%", 1)[0])
