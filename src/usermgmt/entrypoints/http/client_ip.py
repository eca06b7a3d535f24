"""Which address a request came from, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

Networks = Sequence[IPv4Network | IPv6Network]


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str | None:
    """The socket peer, unless it is a trusted proxy: then the nearest X-Forwarded-For hop that is not one.

    Hops are read right to left (each proxy appends), so a client cannot choose its address by sending a header.
    """
    if peer is None or not trusted or not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops and _is_ip(hops[0]) else peer


def _is_ip(text: str) -> bool:
    try:
        ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: Networks) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def forwarded_for(values: list[str]) -> str | None:
    """All X-Forwarded-For lines as one list, in order: a proxy may add its own line instead of appending."""
    return ", ".join(values) if values else None
