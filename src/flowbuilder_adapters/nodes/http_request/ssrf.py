"""The SSRF policy of the `http.request` node: which addresses a request may reach.

A URL's host is resolved here, once (a literal IP, in any form the OS accepts: `127.0.0.1`,
`2130706433`, `0x7f000001`, `127.1`, `[::1]`, is parsed with `socket.inet_aton` /
`ipaddress`; a name goes through the resolver, by default the event loop's `getaddrinfo`).
Unless private networks are allowed, the request fails with `ssrf_blocked` when ANY of the
addresses is not a public unicast address (see `is_blocked_address`). The addresses returned
are the only ones the transport may then connect to (see `transport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from typing import Final

from flowbuilder_core.executions.errors import NodeFailedError

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""`(host, port) -> addresses` (IP address text): the name resolution the SSRF guard checks."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_BLOCKED_NETWORKS: Final = tuple(
    ipaddress.ip_network(net)
    for net in (
        # IPv4: "this network", private, carrier-grade NAT, loopback, link-local (and the
        # metadata address), IETF protocol assignments, documentation, benchmarking,
        # multicast, reserved and broadcast.
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        # IPv6: unspecified, loopback, IPv4-compatible/mapped/translated, discard, IETF
        # protocol assignments (Teredo, ORCHID, ...), documentation, unique-local (and the
        # AWS metadata address fd00:ec2::254), link-local, site-local, multicast.
        "::/96",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_METADATA_ADDRESSES: Final = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def is_blocked_address(address: IpAddress) -> bool:
    """Whether the SSRF guard refuses `address`: anything but a public unicast address,
    including an IPv6 address that embeds a refused IPv4 one (mapped, 6to4, Teredo, NAT64,
    IPv4-compatible)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            address = ipaddress.IPv6Address(int(address))
        for embedded in _embedded_ipv4(address):
            if is_blocked_address(embedded):
                return True
    if address in _METADATA_ADDRESSES:
        return True
    if (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or not address.is_global
    ):
        return True
    return any(address.version == net.version and address in net for net in _BLOCKED_NETWORKS)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    if address in _NAT64 or int(address) >> 32 == 0:  # NAT64, or IPv4-compatible ::a.b.c.d
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return found


def parse_ip_literal(host: str) -> IpAddress | None:
    """The address a URL host stands for when it is an IP literal, read as the OS reads it
    (`inet_aton`: decimal `2130706433`, hex `0x7f000001`, octal, short `127.1`); None for a
    name."""
    text = host.strip("[]")
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(text)
    if not text or not all(c.isalnum() or c == "." for c in text):
        return None
    try:
        packed = socket.inet_aton(text)
    except OSError:
        return None
    return ipaddress.IPv4Address(packed)


async def getaddrinfo_resolver(host: str, port: int) -> list[str]:
    """The default resolver: the event loop's `getaddrinfo`, TCP answers only."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def checked_addresses(
    host: str, port: int, *, resolver: Resolver, allow_private_network: bool
) -> tuple[str, ...]:
    """The addresses `host` may be reached at, deduplicated, in the resolver's order. Fails
    with `connection_failed` when a name has no address, and with `ssrf_blocked` when any
    address is refused (unless `allow_private_network`)."""
    literal = parse_ip_literal(host)
    if literal is not None:
        addresses: list[IpAddress] = [literal]
    else:
        try:
            answers = await resolver(host, port)
        except (OSError, UnicodeError):
            answers = []
        addresses = []
        for answer in answers:
            with contextlib.suppress(ValueError):
                addresses.append(ipaddress.ip_address(answer))
        if not addresses:
            raise NodeFailedError(
                "connection_failed", f"The host name {host} could not be resolved."
            )
    if not allow_private_network:
        for address in addresses:
            if is_blocked_address(address):
                raise NodeFailedError(
                    "ssrf_blocked",
                    f"The host {host} resolves to {address}, which is not a public address;"
                    " requests to private networks are not allowed.",
                )
    return tuple(dict.fromkeys(address.compressed for address in addresses))
