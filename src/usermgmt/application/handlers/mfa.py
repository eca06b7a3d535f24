"""Two-factor authentication: enrol and confirm TOTP, turn it off, regenerate recovery codes, and the second step
of a sign-in (``POST /auth/login/mfa``)."""

from __future__ import annotations

import time
from typing import Any, ClassVar, NoReturn

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event, sign_in_duration
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    InvalidAccessToken,
    InvalidMfaCode,
    InvalidMfaToken,
    InvalidPassword,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    NoPendingEnrolment,
    RateLimited,
    ReauthenticationRequired,
    ServiceUnavailable,
)
from usermgmt.application.handlers._shared import confirm_password, load_user
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.mfa import Codes, MfaMethod, ProvenCode, mfa_token_digest
from usermgmt.application.ports import Clock, PasswordCheck, PasswordHasher, ProvenFactor, UnitOfWork
from usermgmt.application.results import MfaStatus, RecoveryCodes, SignedIn, TotpEnrolment
from usermgmt.domain.errors import DomainError
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, UserId

MFA_TOKEN_MAX = 256


async def _notice(
    uow: UnitOfWork, postman: Postman, user: User, template: Template, client: commands.ClientInfo, **context: Any
) -> None:
    now = context.pop("now")
    await postman.send(
        uow, to=user.email, template=template, now=now, user_id=user.id, **notice_context(client, now), **context
    )


async def _record_recovery_code(
    uow: UnitOfWork, proven: ProvenCode, *, user_id: UserId, client: commands.ClientInfo, clock: Clock
) -> None:
    if proven.method is MfaMethod.RECOVERY_CODE:
        await uow.record(
            security_event(
                EventType.RECOVERY_CODE_USED,
                at=clock.now(),
                client=client,
                user_id=user_id,
                codes_left=proven.codes_left,
            )
        )


class GetMfaStatusHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidAccessToken, ServiceUnavailable)

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __call__(self, cmd: commands.GetMfaStatus) -> MfaStatus:
        async with self._uow:
            return await mfa_status(self._uow, cmd.user_id)


async def mfa_status(uow: UnitOfWork, user_id: UserId) -> MfaStatus:
    """The user's second-factor status (never a secret or a code), inside an open unit of work: the owner's view,
    an administrator's and the data export's."""
    credential = await uow.mfa.get_totp(user_id)
    enabled = credential is not None and credential.enabled
    return MfaStatus(
        totp_enabled=enabled,
        enabled_at=credential.confirmed_at if credential is not None and enabled else None,
        recovery_codes_left=len(await uow.mfa.recovery_codes(user_id)) if enabled else 0,
    )


class StartTotpEnrolmentHandler:
    """Begin enrolling an authenticator app, after the password: a new pending secret replaces any pending one.
    TOTP stays off until a code from the app confirms it."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidPassword,
        ReauthenticationRequired,
        MfaAlreadyEnabled,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard, codes: Codes) -> None:
        self._uow, self._hasher, self._clock, self._guard, self._codes = uow, hasher, clock, guard, codes

    async def __call__(self, cmd: commands.StartTotpEnrolment) -> TotpEnrolment:
        """Raises: RateLimited, InvalidPassword, MfaAlreadyEnabled."""
        await self._guard.hit_per_user(RateRule.MFA_CHANGES_PER_USER, cmd.user_id, cmd.client)
        await confirm_password(
            self._uow,
            self._hasher,
            self._clock,
            user_id=cmd.user_id,
            password=cmd.password,
            client=cmd.client,
            purpose="mfa_enrolment",
            session_id=cmd.session_id,
        )
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)
            current = await self._uow.mfa.get_totp(user.id)
            if current is not None and current.enabled:
                raise MfaAlreadyEnabled()
            credential, enrolment = self._codes.enrolment(user, self._clock.now())
            await self._uow.mfa.save_totp(credential)
            await self._uow.commit()
        return enrolment


class ConfirmTotpEnrolmentHandler:
    """Turn TOTP on with a code from the newly enrolled app: the first set of recovery codes is issued, every other
    session of the account ends, and the owner is told."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidMfaCode,
        NoPendingEnrolment,
        InvalidAccessToken,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard, codes: Codes, postman: Postman) -> None:
        self._uow, self._clock, self._guard, self._codes, self._postman = uow, clock, guard, codes, postman

    async def __call__(self, cmd: commands.ConfirmTotpEnrolment) -> RecoveryCodes:
        """Raises: RateLimited, InvalidMfaCode, NoPendingEnrolment."""
        await self._guard.hit_per_user(RateRule.MFA_CHANGES_PER_USER, cmd.user_id, cmd.client)
        now = self._clock.now()
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)
            credential = await self._uow.mfa.get_totp(user.id)
            if credential is None or credential.enabled:
                raise NoPendingEnrolment()
            step = self._codes.totp_step(credential, cmd.code, now)
            if step is None:
                raise InvalidMfaCode()
            credential.confirm(step, now=now)
            await self._uow.mfa.save_totp(credential)
            codes, digests = self._codes.recovery_codes()
            await self._uow.mfa.replace_recovery_codes(user.id, digests, now)
            ended = await self._uow.sessions.delete_for_user(user.id, keep=cmd.session_id)
            await self._uow.record(
                security_event(
                    EventType.MFA_ENABLED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    method=MfaMethod.TOTP.value,
                    sessions_ended=ended,
                )
            )
            await _notice(self._uow, self._postman, user, Template.MFA_ENABLED, cmd.client, now=now)
            await self._uow.commit()
        return codes


class _ProvenChange:
    """A change to the second factor: the password, then a current code (TOTP or recovery code)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidPassword,
        ReauthenticationRequired,
        InvalidMfaCode,
        MfaNotEnabled,
        InvalidAccessToken,
        ServiceUnavailable,
    )
    purpose: ClassVar[str]

    def __init__(
        self, uow: UnitOfWork, hasher: PasswordHasher, clock: Clock, guard: Guard, codes: Codes, postman: Postman
    ) -> None:
        self._uow, self._hasher, self._clock, self._guard = uow, hasher, clock, guard
        self._codes, self._postman = codes, postman

    async def _confirm_password(self, cmd: commands.DisableTotp) -> None:
        """Before the unit of work: the rate limit, then the password (its hash runs with no transaction open)."""
        await self._guard.hit_per_user(RateRule.MFA_CHANGES_PER_USER, cmd.user_id, cmd.client)
        await confirm_password(
            self._uow,
            self._hasher,
            self._clock,
            user_id=cmd.user_id,
            password=cmd.password,
            client=cmd.client,
            purpose=self.purpose,
            session_id=cmd.session_id,
        )

    async def _prove(self, cmd: commands.DisableTotp) -> tuple[User, ProvenCode]:
        """In the open unit of work: the locked user and the code that proved the factor (used up with it)."""
        user = await load_user(self._uow, cmd.user_id, for_update=True)
        credential = await self._uow.mfa.get_totp(user.id)
        if credential is None or not credential.enabled:
            raise MfaNotEnabled()
        proven = await self._codes.prove(self._uow, user.id, cmd.code, self._clock.now())
        if proven is None:
            raise InvalidMfaCode()
        await _record_recovery_code(self._uow, proven, user_id=user.id, client=cmd.client, clock=self._clock)
        return user, proven


class DisableTotpHandler(_ProvenChange):
    """Turn TOTP off (the recovery codes go with it), with the password and a current code."""

    purpose = "mfa_disable"

    async def __call__(self, cmd: commands.DisableTotp) -> None:
        """Raises: RateLimited, InvalidPassword, InvalidMfaCode, MfaNotEnabled."""
        await self._confirm_password(cmd)
        async with self._uow:
            user, _ = await self._prove(cmd)
            now = self._clock.now()
            await self._uow.mfa.delete_totp(user.id)
            await self._uow.mfa.delete_recovery_codes(user.id)
            await self._uow.mfa.delete_challenges_for_user(user.id)
            await self._uow.record(
                security_event(
                    EventType.MFA_DISABLED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    method=MfaMethod.TOTP.value,
                )
            )
            await _notice(self._uow, self._postman, user, Template.MFA_DISABLED, cmd.client, now=now)
            await self._uow.commit()


class RegenerateRecoveryCodesHandler(_ProvenChange):
    """A new set of recovery codes, with the password and a current code: the old set stops working."""

    purpose = "recovery_codes"

    async def __call__(self, cmd: commands.RegenerateRecoveryCodes) -> RecoveryCodes:
        """Raises: RateLimited, InvalidPassword, InvalidMfaCode, MfaNotEnabled."""
        await self._confirm_password(cmd)
        async with self._uow:
            user, _ = await self._prove(cmd)
            now = self._clock.now()
            codes, digests = self._codes.recovery_codes()
            await self._uow.mfa.replace_recovery_codes(user.id, digests, now)
            await self._uow.record(
                security_event(
                    EventType.RECOVERY_CODES_REGENERATED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    codes=len(codes.codes),
                )
            )
            await _notice(self._uow, self._postman, user, Template.RECOVERY_CODES_REGENERATED, cmd.client, now=now)
            await self._uow.commit()
        return codes


class LoginMfaHandler:
    """The second step of a sign-in: the ``mfa_token`` of the first step and a code.

    A wrong code counts against the token (it dies at the policy's ``max_failures``) and, like a wrong password,
    against the account's failed-login throttles (per client and account-wide, keyed as the first factor was): many
    tokens do not buy many guesses. The code and the token are used up together, in one transaction; then
    ``SessionIssuer`` starts the session as after any sign-in, with ``amr`` ``["pwd", "otp"]``.
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidMfaCode,
        InvalidMfaToken,
        ServiceUnavailable,
        *SessionIssuer.raises,
    )

    def __init__(
        self, uow: UnitOfWork, clock: Clock, guard: Guard, codes: Codes, issuer: SessionIssuer, postman: Postman
    ) -> None:
        self._uow, self._clock, self._guard, self._codes = uow, clock, guard, codes
        self._issuer, self._postman = issuer, postman

    async def __call__(self, cmd: commands.LoginMfa) -> SignedIn:
        """Raises: RateLimited, InvalidMfaToken, InvalidMfaCode, and what ``SessionIssuer.sign_in`` raises."""
        started = time.perf_counter()  # the duration_ms of the outcome's event: this step's time
        client = cmd.client
        await self._guard.hit_per_client(RateRule.LOGIN_PER_IP, client)
        if not cmd.mfa_token or len(cmd.mfa_token) > MFA_TOKEN_MAX:
            raise InvalidMfaToken()
        digest = mfa_token_digest(cmd.mfa_token)
        async with self._uow:
            challenge = await self._uow.mfa.get_challenge(digest)
        if challenge is None or challenge.is_expired(self._clock.now()):
            raise InvalidMfaToken()
        account = challenge.throttle_key or f"user:{challenge.user_id}"
        await self._guard.reserve_password_check(
            account,
            client,
            user_id=challenge.user_id,
            known_ip=lambda: self._guard.is_known_ip(challenge.user_id, client),
        )
        async with self._uow:
            now = self._clock.now()
            proven = await self._codes.prove(self._uow, challenge.user_id, cmd.code, now)
            if proven is None:
                await self._wrong_code(digest, challenge.user_id, client, started)
            if not await self._uow.mfa.delete_challenge(digest):
                raise InvalidMfaToken()  # used by a concurrent request: roll back, nothing of this code is spent
            await _record_recovery_code(self._uow, proven, user_id=challenge.user_id, client=client, clock=self._clock)
            if proven.method is MfaMethod.RECOVERY_CODE:
                user = await self._uow.users.get(challenge.user_id)
                if user is not None:
                    await _notice(
                        self._uow,
                        self._postman,
                        user,
                        Template.RECOVERY_CODE_USED,
                        client,
                        now=now,
                        codes_left=proven.codes_left,
                    )
            await self._uow.commit()
        factor = ProvenFactor(
            user_id=challenge.user_id,
            method=AuthMethod.OTP,
            earlier=challenge.amr,
            password=PasswordCheck(changed_at=challenge.password_changed_at)
            if AuthMethod.PASSWORD in challenge.amr
            else None,
            throttle_key=account,
            started=started,
            provider=challenge.provider,
        )
        result = await self._issuer.sign_in(factor, client)
        if not isinstance(result, SignedIn):  # pragma: no cover - the TOTP policy asks nothing after a code
            raise RuntimeError("a sign-in completed with a code asked for yet another step")
        await self._guard.password_check_passed(account, client)
        return result

    async def _wrong_code(self, digest: str, user_id: UserId, client: commands.ClientInfo, started: float) -> NoReturn:
        """In the open unit of work (where a code that proves nothing wrote nothing): count the wrong code against
        the token, deleting it at the limit, record the failure, commit, and raise InvalidMfaCode."""
        failures = await self._uow.mfa.count_challenge_failure(digest)
        exhausted = failures is not None and failures >= self._codes.policy.max_failures
        if exhausted:
            await self._uow.mfa.delete_challenge(digest)
        await self._uow.record(
            security_event(
                EventType.LOGIN_FAILED,
                at=self._clock.now(),
                client=client,
                user_id=user_id,
                reason="invalid_mfa_code",
                mfa_token_exhausted=exhausted,
                **sign_in_duration(started),
            )
        )
        await self._uow.commit()
        raise InvalidMfaCode()
