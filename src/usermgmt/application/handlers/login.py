from __future__ import annotations

from datetime import timedelta

from usermgmt.application import commands
from usermgmt.application.errors import InvalidCredentials
from usermgmt.application.ports import (
    AccessTokenService,
    Clock,
    IdGenerator,
    PasswordHasher,
    RefreshTokenFactory,
    UnitOfWork,
)
from usermgmt.application.results import TokenPair
from usermgmt.domain.errors import InvalidEmail, InvalidUsername
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import Email, PlainPassword, Username


class LoginHandler:
    """Start a session for the right email-or-username and password; wrong ones fail alike, in alike time."""

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        access_tokens: AccessTokenService,
        refresh_tokens: RefreshTokenFactory,
        clock: Clock,
        ids: IdGenerator,
        session_lifetime: timedelta,
    ) -> None:
        self._uow, self._hasher, self._access, self._refresh = uow, hasher, access_tokens, refresh_tokens
        self._clock, self._ids, self._lifetime = clock, ids, session_lifetime

    async def __call__(self, cmd: commands.Login) -> TokenPair:
        password = PlainPassword(cmd.password)
        async with self._uow:
            user = await self._find(cmd.login.strip())
        if user is None:
            await self._hasher.verify_and_update(password, self._hasher.dummy_hash)
            raise InvalidCredentials()
        matches, upgraded_hash = await self._hasher.verify_and_update(password, user.password_hash)
        if not matches:
            raise InvalidCredentials()
        user.ensure_active()

        refresh_token = self._refresh.generate()
        session = Session.start(
            id=self._ids.new_session_id(),
            user_id=user.id,
            refresh_token_hash=self._refresh.digest(refresh_token),
            now=self._clock.now(),
            lifetime=self._lifetime,
            user_agent=cmd.client.user_agent,
            ip=cmd.client.ip,
        )
        async with self._uow:
            if upgraded_hash is not None:
                current = await self._uow.users.get(user.id)
                if current is not None and current.password_hash == user.password_hash:
                    current.rehash_password(upgraded_hash)
                    await self._uow.users.update(current)
            await self._uow.sessions.add(session)
            await self._uow.commit()
        access = self._access.issue(user.id, session.id)
        return TokenPair(
            access_token=access.token,
            expires_in=access.expires_in,
            refresh_token=refresh_token,
            refresh_expires_in=int(self._lifetime.total_seconds()),
            session_id=session.id,
        )

    async def _find(self, login: str) -> User | None:
        try:
            if "@" in login:
                return await self._uow.users.get_by_email(Email(login))
            return await self._uow.users.get_by_username(Username(login))
        except (InvalidEmail, InvalidUsername):
            return None
