"""Small steps several use cases share."""

from __future__ import annotations

from typing import NoReturn

from usermgmt.application.abuse import Throttle
from usermgmt.application.audit import security_event
from usermgmt.application.commands import ClientInfo
from usermgmt.application.errors import InvalidAccessToken, InvalidPassword, RateLimited
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import PlainPassword, UserId


async def load_user(uow: UnitOfWork, user_id: UserId) -> User:
    """The caller's user inside an open unit of work; a vanished user makes the caller's token worthless."""
    user = await uow.users.get(user_id)
    if user is None:
        raise InvalidAccessToken()
    return user


async def confirm_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    *,
    user_id: UserId,
    password: str,
    client: ClientInfo,
    purpose: str,
) -> User:
    """Re-authenticate the caller with their current password. The hash check runs with no transaction open.

    A wrong password is recorded in the owner's security history: it may be a thief holding their token.

    Raises: InvalidPassword, InvalidAccessToken.
    """
    async with uow:
        user = await load_user(uow, user_id)
    matches, _ = await hasher.verify_and_update(PlainPassword(password), user.password_hash)
    if not matches:
        async with uow:
            await uow.events.add(
                security_event(
                    EventType.PASSWORD_CONFIRMATION_FAILED,
                    at=clock.now(),
                    client=client,
                    user_id=user_id,
                    purpose=purpose,
                )
            )
            await uow.commit()
        raise InvalidPassword()
    return user


class Guard:
    """Rate limits plus their audit record: the first rejection per window (per key) becomes a security event."""

    def __init__(self, throttle: Throttle, uow: UnitOfWork, clock: Clock) -> None:
        self.throttle, self._uow, self._clock = throttle, uow, clock

    async def hit(self, rule: str, key: str, *, client: ClientInfo, user_id: UserId | None = None) -> None:
        """Count an attempt against ``rule``. Raises: RateLimited."""
        try:
            await self.throttle.hit(rule, key)
        except RateLimited as exc:
            await self.reject(exc, key, client=client, user_id=user_id)

    async def reject(
        self, error: RateLimited, key: str, *, client: ClientInfo, user_id: UserId | None = None
    ) -> NoReturn:
        """Record (once per window) and raise ``error``."""
        if await self.throttle.first_in_window(error.rule, key):
            async with self._uow:
                await self._uow.events.add(
                    security_event(
                        EventType.RATE_LIMITED, at=self._clock.now(), client=client, user_id=user_id, rule=error.rule
                    )
                )
                await self._uow.commit()
        raise error


def client_key(client: ClientInfo) -> str:
    return client.ip or "unknown"
