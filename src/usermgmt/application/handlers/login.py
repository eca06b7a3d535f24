from __future__ import annotations

from datetime import timedelta
from typing import NoReturn

from usermgmt.application import commands
from usermgmt.application.audit import security_event
from usermgmt.application.errors import InvalidCredentials
from usermgmt.application.handlers._shared import Guard, client_key
from usermgmt.application.ports import (
    AccessTokenService,
    Clock,
    IdGenerator,
    PasswordHasher,
    RefreshTokenFactory,
    UnitOfWork,
)
from usermgmt.application.results import TokenPair
from usermgmt.domain.errors import InvalidEmail, InvalidUsername, UserInactive
from usermgmt.domain.events import EventType
from usermgmt.domain.model import Session, User
from usermgmt.domain.value_objects import Email, PlainPassword, Username, canonical


class LoginHandler:
    """Start a session for the right email-or-username and password; wrong ones fail alike, in alike time.

    Throttling: every attempt counts against the client IP; failures count against the account from that IP
    (10 per 15 minutes by default) and against the account from anywhere (a higher ceiling). The account-wide
    ceiling does not apply to an IP the owner already has a live session from, so an attacker cannot lock the
    owner out everywhere.
    """

    def __init__(
        self,
        uow: UnitOfWork,
        hasher: PasswordHasher,
        access_tokens: AccessTokenService,
        refresh_tokens: RefreshTokenFactory,
        clock: Clock,
        ids: IdGenerator,
        guard: Guard,
        session_lifetime: timedelta,
    ) -> None:
        self._uow, self._hasher, self._access, self._refresh = uow, hasher, access_tokens, refresh_tokens
        self._clock, self._ids, self._guard, self._lifetime = clock, ids, guard, session_lifetime

    async def __call__(self, cmd: commands.Login) -> TokenPair:
        """Raises: RateLimited, InvalidCredentials, UserInactive."""
        client = cmd.client
        await self._guard.hit("login_per_ip", client_key(client), client=client)
        password = PlainPassword(cmd.password)
        login = cmd.login.strip()
        async with self._uow:
            user = await self._find(login)
        account = str(user.id) if user is not None else f"unknown:{canonical(login)}"
        await self._check_account_limits(account, user, client)

        if user is None:
            await self._hasher.verify_and_update(password, self._hasher.dummy_hash)
            await self._failed(account, None, client, reason="unknown_login")
        matches, upgraded_hash = await self._hasher.verify_and_update(password, user.password_hash)
        if not matches:
            await self._failed(account, user, client, reason="wrong_password")
        try:
            user.ensure_active()
        except UserInactive:
            await self._record(EventType.LOGIN_FAILED, user, client, reason="account_disabled")
            raise

        refresh_token = self._refresh.generate()
        now = self._clock.now()
        session = Session.start(
            id=self._ids.new_session_id(),
            user_id=user.id,
            refresh_token_hash=self._refresh.digest(refresh_token),
            now=now,
            lifetime=self._lifetime,
            user_agent=client.user_agent,
            ip=client.ip,
        )
        async with self._uow:
            if upgraded_hash is not None:
                current = await self._uow.users.get(user.id)
                if current is not None and current.password_hash == user.password_hash:
                    current.rehash_password(upgraded_hash)
                    await self._uow.users.update(current)
            await self._uow.sessions.add(session)
            await self._uow.events.add(
                security_event(EventType.LOGIN_SUCCEEDED, at=now, client=client, user_id=user.id, session_id=session.id)
            )
            await self._uow.commit()
        await self._guard.throttle.clear("login_failures_per_account_ip", f"{account}|{client_key(client)}")
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

    async def _check_account_limits(self, account: str, user: User | None, client: commands.ClientInfo) -> None:
        """Refuse before spending a hash on an account under attack."""
        throttle = self._guard.throttle
        user_id = user.id if user is not None else None
        full = await throttle.is_full("login_failures_per_account_ip", f"{account}|{client_key(client)}")
        if full is None:
            full = await throttle.is_full("login_failures_per_account", account)
            if full is not None and user is not None and await self._is_known_ip(user, client):
                full = None
        if full is not None:
            await self._guard.reject(full, account, client=client, user_id=user_id)

    async def _is_known_ip(self, user: User, client: commands.ClientInfo) -> bool:
        if client.ip is None:
            return False
        now = self._clock.now()
        async with self._uow:
            sessions = await self._uow.sessions.list_for_user(user.id)
        return any(s.ip == client.ip and not s.is_expired(now) for s in sessions)

    async def _failed(self, account: str, user: User | None, client: commands.ClientInfo, *, reason: str) -> NoReturn:
        throttle = self._guard.throttle
        await throttle.count("login_failures_per_account_ip", f"{account}|{client_key(client)}")
        await throttle.count("login_failures_per_account", account)
        await self._record(EventType.LOGIN_FAILED, user, client, reason=reason)
        raise InvalidCredentials()

    async def _record(self, kind: EventType, user: User | None, client: commands.ClientInfo, *, reason: str) -> None:
        user_id = user.id if user else None
        async with self._uow:
            await self._uow.events.add(
                security_event(kind, at=self._clock.now(), client=client, user_id=user_id, reason=reason)
            )
            await self._uow.commit()
