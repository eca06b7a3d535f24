from __future__ import annotations

import time
from typing import ClassVar, NoReturn

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event, sign_in_duration
from usermgmt.application.errors import InvalidCredentials, RateLimited, ServiceBusy, ServiceUnavailable
from usermgmt.application.handlers._shared import login_key, parse_login
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import Clock, PasswordCheck, PasswordHasher, ProvenFactor, UnitOfWork
from usermgmt.application.results import SignedIn, SignInResult
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, Email, PasswordHash, PlainPassword


class LoginHandler:
    """Sign in with an email-or-username and password: the password is the first factor, ``SessionIssuer`` does the
    rest. Wrong logins and wrong passwords fail alike, in alike time.

    Throttling: every attempt counts against the client IP; each password check takes a slot, before the hash,
    against the account from that IP (10 per 15 minutes by default) and against the account from anywhere (a higher
    ceiling). The account-wide ceiling does not apply to an IP the owner already has a live session from, so an
    attacker cannot lock the owner out everywhere. Both account limits are keyed by the canonical login, never by
    the account it finds, so throttling answers alike whether or not an account exists (an account reached by its
    email address and by its username has a budget for each).
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidCredentials,
        ServiceBusy,
        ServiceUnavailable,
        *SessionIssuer.raises,
    )

    def __init__(
        self, uow: UnitOfWork, hasher: PasswordHasher, issuer: SessionIssuer, clock: Clock, guard: Guard
    ) -> None:
        self._uow, self._hasher, self._issuer, self._clock, self._guard = uow, hasher, issuer, clock, guard

    async def __call__(self, cmd: commands.Login) -> SignInResult:
        """Raises: RateLimited, InvalidCredentials, ServiceBusy, UserInactive."""
        # The duration_ms of the outcome's event: this use case's time, throttles included.
        started = time.perf_counter()
        client = cmd.client
        # Shed first: the answer cannot depend on the account, and a client told to come back later has spent no
        # attempt of any limit. The place is held until the password is checked.
        with self._hasher.admission():
            user, account, upgraded_hash = await self._check_password(cmd, started)
        check = PasswordCheck(
            changed_at=user.password_changed_at, verified_hash=user.password_hash, upgraded_hash=upgraded_hash
        )
        factor = ProvenFactor(
            user_id=user.id, method=AuthMethod.PASSWORD, password=check, throttle_key=account, started=started
        )
        result = await self._issuer.sign_in(factor, client)
        if isinstance(result, SignedIn):  # a second step frees the slot only once it is passed too
            await self._guard.password_check_passed(account, client)
        return result

    async def _check_password(self, cmd: commands.Login, started: float) -> tuple[User, str, PasswordHash | None]:
        """The first factor: (the user, the throttle key of the login, an upgraded hash). Raises: RateLimited,
        InvalidCredentials."""
        client = cmd.client
        await self._guard.hit_per_client(RateRule.LOGIN_PER_IP, client)
        password = PlainPassword(cmd.password)
        login = parse_login(cmd.login)
        user: User | None = None
        if login is not None:
            async with self._uow:
                if isinstance(login, Email):
                    user = await self._uow.users.get_by_email(login)
                else:
                    user = await self._uow.users.get_by_username(login)
        account = login_key(login, cmd.login)
        await self._guard.reserve_password_check(
            account,
            client,
            user_id=user.id if user else None,
            known_ip=lambda: self._guard.is_known_ip(user.id if user else None, client),
        )
        if user is None:
            await self._hasher.verify_and_update(password, self._hasher.dummy_hash)
            await self._failed(None, client, started, reason="unknown_login")
        if user.password_hash is None:  # made through a provider: no password matches, in the same time
            await self._hasher.verify_and_update(password, self._hasher.dummy_hash)
            await self._failed(user, client, started, reason="no_password")
        matches, upgraded_hash = await self._hasher.verify_and_update(password, user.password_hash)
        if not matches:
            await self._failed(user, client, started, reason="wrong_password")
        return user, account, upgraded_hash

    async def _failed(self, user: User | None, client: commands.ClientInfo, started: float, *, reason: str) -> NoReturn:
        async with self._uow:
            await self._uow.record(
                security_event(
                    EventType.LOGIN_FAILED,
                    at=self._clock.now(),
                    client=client,
                    user_id=user.id if user else None,
                    reason=reason,
                    **sign_in_duration(started),
                )
            )
            await self._uow.commit()
        raise InvalidCredentials()
