"""Source addresses come from contracts that departments register: they are untrusted.

A connector may not reach loopback, link-local (cloud metadata lives at 169.254.169.254)
or other reserved addresses unless the hub's own settings allow that host
(HUB_SOURCE_ALLOWED_HOSTS). Names are resolved and every address is checked, so a DNS
name pointing at 127.0.0.1 is refused like the address itself.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

METADATA_HOSTS = frozenset({"metadata.google.internal", "metadata", "instance-data"})


class UnsafeSource(ValueError):
    """A source address the hub refuses to connect to."""


def check_url(url: str, allowed_hosts: Collection[str] = ()) -> None:
    """Refuse `url` if its host is not allowed; return quietly when it is."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeSource(f"{_redacted(url)}: no host in the source URL")
    if host in allowed_hosts:
        return
    if host in METADATA_HOSTS:
        raise UnsafeSource(f"{host}: cloud metadata endpoints are never a department's source")
    for address in _addresses(host, parts.port):
        if _internal(address):
            raise UnsafeSource(
                f"{host} resolves to {address}, a loopback, link-local or reserved address; "
                "only the hub's operators can allow it (HUB_SOURCE_ALLOWED_HOSTS)")


def _addresses(host: str, port: int | None) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return {ipaddress.ip_address(host)}
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeSource(f"{host}: cannot be resolved ({exc.strerror})") from None
    return {ipaddress.ip_address(info[4][0].split("%")[0]) for info in found}


def _internal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return (address.is_loopback or address.is_link_local or address.is_unspecified
            or address.is_multicast or address.is_reserved)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname or "").geturl() if parts.password else url
