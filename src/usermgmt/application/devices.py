"""The devices an account is used from, and the ``new_device`` notice.

A device is the pair (user agent, IP network). The network, not the address, because addresses move within a
provider's block: an IPv4 client counts by its ``/24`` (a home router that is given another address by its
provider, or a phone moving between a carrier's gateways, usually stays within one), an IPv6 client by the network
per-IP rate limits group it by (``RateLimitPolicy.ipv6_prefix``, a ``/64`` by default: one customer's whole
network, whose temporary addresses rotate daily). The user agent is taken as sent (a browser update changes it,
and the next sign-in from it is a new device once).

Only a SHA-256 digest of the pair is stored (``known_devices.device_key``): the table holds no IP address and no
user agent in the clear. A device counts as known for ``REMEMBERED_FOR`` after it was last seen. With notices off
nothing is recorded at all (no purpose, no data; and a sign-in spends no statement on it); switched on later, each
device of an account is new once.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta
from typing import Final

from usermgmt.application.commands import ClientInfo
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.value_objects import Email, UserId

REMEMBERED_FOR: Final = timedelta(days=90)
IPV4_PREFIX: Final = 24


class KnownDevices:
    """Remembers the devices each account signs in from, and queues ``new_device`` when one was not seen for
    ``REMEMBERED_FOR``; with ``notify`` off, does nothing. Both run inside the caller's unit of work: the device is
    remembered, and the notice queued, only if the sign-in commits."""

    def __init__(self, postman: Postman, *, notify: bool = True, ipv6_prefix: int = 64) -> None:
        if not 1 <= ipv6_prefix <= 128:
            raise ValueError("the IPv6 prefix length must be 1 to 128")
        self._postman, self.notify, self._ipv6_prefix = postman, notify, ipv6_prefix

    def network(self, ip: str | None) -> str:
        """The network ``ip`` counts by: its IPv4 ``/24`` or its IPv6 ``/ipv6_prefix``; an IPv4-mapped IPv6 address
        as the IPv4 address it maps."""
        if ip is None:
            return "unknown"
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return ip
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        prefix = IPV4_PREFIX if isinstance(address, ipaddress.IPv4Address) else self._ipv6_prefix
        return str(ipaddress.ip_network((address, prefix), strict=False))

    def key(self, client: ClientInfo) -> str:
        """The stored key of ``client``'s device: the SHA-256 (hex) of its user agent and IP network."""
        pair = f"{client.user_agent or ''}\n{self.network(client.ip)}"
        return hashlib.sha256(pair.encode("utf-8", "surrogatepass")).hexdigest()

    async def remember(self, uow: UnitOfWork, user_id: UserId, client: ClientInfo, now: datetime) -> bool:
        """Record that ``user_id`` was used from ``client``'s device at ``now`` (registration does, so that the
        first sign-in from the browser that signed up is not new); True if it was new (never seen, or not for
        ``REMEMBERED_FOR``). Nothing is recorded, and False returned, while notices are off."""
        if not self.notify:
            return False
        before = await uow.known_devices.touch(user_id, self.key(client), now)
        return before is None or now - before >= REMEMBERED_FOR

    async def signed_in(
        self, uow: UnitOfWork, *, user_id: UserId, email: Email, client: ClientInfo, now: datetime
    ) -> bool:
        """Remember the device of a sign-in and, if it is new and notices are on, queue ``new_device`` to
        ``email``. Return whether the notice was queued."""
        if not await self.remember(uow, user_id, client, now):
            return False
        await self._postman.send(
            uow, to=email, template=Template.NEW_DEVICE, now=now, user_id=user_id, **notice_context(client, now)
        )
        return True
