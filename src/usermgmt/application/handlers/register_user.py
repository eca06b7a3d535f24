from __future__ import annotations

from typing import ClassVar

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import Postman
from usermgmt.application.errors import EmailTaken, RateLimited, ServiceUnavailable, UsernameTaken
from usermgmt.application.handlers.email_address import send_verification
from usermgmt.application.ports import Clock, IdGenerator, PasswordHasher, UnitOfWork
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import DomainError, InvalidEmail, InvalidFullName, InvalidUsername, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, FullName, PlainPassword, Username


class RegisterUserHandler:
    """Create an active, unverified account, and (with ``postman``) queue the link that verifies its address in the same
    transaction; the email (and username) stay unique even under concurrent sign-ups."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidEmail,
        InvalidUsername,
        InvalidFullName,
        WeakPassword,
        EmailTaken,
        UsernameTaken,
        ServiceUnavailable,
    )

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        screen: PasswordScreen,
        clock: Clock,
        ids: IdGenerator,
        guard: Guard,
        devices: KnownDevices | None = None,
        postman: Postman | None = None,
    ) -> None:
        self._uow, self._hasher, self._screen, self._clock, self._ids = uow, hasher, screen, clock, ids
        self._guard, self._devices, self._postman = guard, devices, postman

    async def __call__(self, cmd: commands.RegisterUser) -> User:
        """Raises: RateLimited, InvalidEmail, InvalidUsername, InvalidFullName, WeakPassword, EmailTaken,
        UsernameTaken."""
        await self._guard.hit_per_client(RateRule.REGISTRATIONS_PER_IP, cmd.client)
        email = Email(cmd.email)
        username = Username(cmd.username) if cmd.username is not None else None
        full_name = FullName(cmd.full_name) if cmd.full_name is not None else None
        password = PlainPassword(cmd.password)
        await self._screen.check(password, email=email, username=username, full_name=full_name)

        async with self._uow:  # a cheap early answer; the unique constraints are what guarantee it
            if await self._uow.users.get_by_email(email) is not None:
                raise EmailTaken()
            if username is not None and await self._uow.users.get_by_username(username) is not None:
                raise UsernameTaken()

        password_hash = await self._hasher.hash(password)
        now = self._clock.now()
        user = User.register(
            id=self._ids.new_user_id(),
            email=email,
            username=username,
            full_name=full_name,
            password_hash=password_hash,
            now=now,
        )
        async with self._uow:
            await self._uow.users.add(user)
            await self._uow.record(security_event(EventType.REGISTERED, at=now, client=cmd.client, user_id=user.id))
            if self._postman is not None:
                await send_verification(self._uow, self._postman, user, cmd.client, now, reason="registration")
            if self._devices is not None:  # the browser that signed up is no new device at its first sign-in
                await self._devices.remember(self._uow, user.id, cmd.client, now)
            await self._uow.commit()
        return user
