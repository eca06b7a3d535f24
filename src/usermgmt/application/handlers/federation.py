"""Signing in through identity providers (Google, Facebook, any OpenID Connect provider), and the identities an
account has linked.

The flow, for a frontend on another origin (README, "Sign in with Google, Facebook or OpenID Connect"):

1. ``StartProviderSignIn``: the browser leaves for the provider. State, nonce and the service's own PKCE verifier
   are kept server-side for ``STATE_TTL`` under the state's digest, bound to this browser by a cookie whose value
   only the browser holds (its digest is stored).
2. ``FinishProviderSignIn``: the provider sends the browser back. The state is taken once and checked (provider,
   expiry, cookie); the provider adapter exchanges the code and proves who signed in; the account is found or made
   by the linking rules (``domain/identities.py``); the browser goes back to the frontend with a ``login_code``
   that lives ``LOGIN_CODE_TTL``, bound to the frontend's PKCE challenge. Every failure goes back there too, as
   ``?error=<code>``: no tokens in any URL, no page of ours.
3. ``RedeemLoginCode``: the frontend's server trades the code and its verifier for a token pair, through the same
   ``SessionIssuer`` as a password (so TOTP is still asked for, and a disabled account is refused).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from uuid import UUID

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import security_event
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    EmailTaken,
    IdentityInUse,
    IdentityNotFound,
    InvalidAccessToken,
    InvalidCodeChallenge,
    InvalidLoginCode,
    InvalidRedirectUri,
    LastLoginMethod,
    RateLimited,
    ServiceUnavailable,
    UnknownProvider,
)
from usermgmt.application.handlers._shared import load_user
from usermgmt.application.handlers.email_address import send_verification
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import (
    Clock,
    ExternalIdentity,
    FlowPurpose,
    IdentityProvider,
    IdGenerator,
    LoginCode,
    PendingAuthorization,
    ProvenFactor,
    ProviderError,
    UnitOfWork,
)
from usermgmt.application.results import SignInResult
from usermgmt.domain.errors import DomainError, InvalidFullName
from usermgmt.domain.events import EventType
from usermgmt.domain.identities import Identity, IdentityId, Resolution, resolve_new_identity
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import AuthMethod, FullName, UserId

logger = logging.getLogger(__name__)

STATE_TTL = timedelta(minutes=10)
LOGIN_CODE_TTL = timedelta(seconds=60)
SECRET_BYTES = 32  # state, browser cookie, login code: 256 bits each
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)), unpadded (RFC 7636 4.2)
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")  # RFC 7636 4.1
LABELS: Mapping[str, str] = {"google": "Google", "facebook": "Facebook"}


def digest(secret: str) -> str:
    """What is stored of a state, a browser cookie or a login code: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def pkce_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier`` (RFC 7636 4.2)."""
    hashed = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(hashed).rstrip(b"=").decode("ascii")


def with_query(uri: str, **params: str) -> str:
    """``uri`` with ``params`` added to its query (the ones it already has are kept)."""
    parts = urlsplit(uri)
    query = [*parse_qsl(parts.query, keep_blank_values=True), *params.items()]
    return urlunsplit(parts._replace(query=urlencode(query)))


def label(provider: str) -> str:
    return LABELS.get(provider, provider)


@dataclass(frozen=True, slots=True, kw_only=True)
class FederationPolicy:
    """``redirect_uris``: the frontend addresses a browser may be sent back to (exact match), the first one also
    where a callback with no usable state goes. ``public_url``: the service's own base, for the callbacks."""

    public_url: str
    redirect_uris: tuple[str, ...]
    state_ttl: timedelta = STATE_TTL
    login_code_ttl: timedelta = LOGIN_CODE_TTL

    def callback_url(self, provider: str) -> str:
        return f"{self.public_url}/api/v1/auth/oauth/{provider}/callback"


@dataclass(frozen=True, slots=True)
class AuthorizationStarted:
    """Where to send the browser, and the value of the cookie that binds the trip to it (None: bound to a user)."""

    url: str
    browser: str | None


class Providers:
    """The configured providers by name, the policy, and the start of a trip to one of them."""

    def __init__(
        self,
        uow: UnitOfWork,
        providers: Mapping[str, IdentityProvider],
        policy: FederationPolicy,
        clock: Clock,
        guard: Guard,
    ) -> None:
        self._uow, self._providers, self.policy, self._clock, self._guard = uow, providers, policy, clock, guard

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._providers)

    def get(self, name: str) -> IdentityProvider:
        """Raises: UnknownProvider."""
        provider = self._providers.get(name)
        if provider is None:
            raise UnknownProvider()
        return provider

    def check_return(self, redirect_uri: str, code_challenge: str, method: str) -> None:
        """Raises: InvalidRedirectUri, InvalidCodeChallenge."""
        if redirect_uri not in self.policy.redirect_uris:
            raise InvalidRedirectUri()
        if method != "S256" or not _CHALLENGE.fullmatch(code_challenge):
            raise InvalidCodeChallenge()

    async def start(
        self,
        provider: IdentityProvider,
        *,
        purpose: FlowPurpose,
        user_id: UserId | None,
        redirect_uri: str,
        code_challenge: str,
        bind_browser: bool,
    ) -> AuthorizationStarted:
        """Keep the trip's secrets and build the provider's URL. Raises: ProviderError (the provider's discovery
        failed), ServiceUnavailable."""
        state, nonce = secrets.token_urlsafe(SECRET_BYTES), secrets.token_urlsafe(SECRET_BYTES)
        verifier = secrets.token_urlsafe(48)  # 64 characters
        browser = secrets.token_urlsafe(SECRET_BYTES) if bind_browser else None
        url = await provider.authorization_url(
            redirect_uri=self.policy.callback_url(provider.name), state=state, nonce=nonce, code_verifier=verifier
        )
        now = self._clock.now()
        async with self._uow:
            await self._uow.federation.add_authorization(
                PendingAuthorization(
                    state_digest=digest(state),
                    provider=provider.name,
                    purpose=purpose,
                    user_id=user_id,
                    browser_digest=digest(browser) if browser is not None else None,
                    redirect_uri=redirect_uri,
                    code_challenge=code_challenge,
                    nonce=nonce,
                    code_verifier=verifier,
                    created_at=now,
                    expires_at=now + self.policy.state_ttl,
                )
            )
            await self._uow.commit()
        return AuthorizationStarted(url=url, browser=browser)


class StartProviderSignInHandler:
    """Step 1 of a sign-in through a provider. A provider that cannot be reached sends the browser back to the
    frontend with ``error=provider_error``, as the callback would."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        UnknownProvider,
        InvalidRedirectUri,
        InvalidCodeChallenge,
        RateLimited,
        ServiceUnavailable,
    )

    def __init__(self, providers: Providers, guard: Guard) -> None:
        self._providers, self._guard = providers, guard

    async def __call__(self, cmd: commands.StartProviderSignIn) -> AuthorizationStarted:
        """Raises: UnknownProvider, InvalidRedirectUri, InvalidCodeChallenge, RateLimited."""
        provider = self._providers.get(cmd.provider)
        self._providers.check_return(cmd.redirect_uri, cmd.code_challenge, cmd.code_challenge_method)
        await self._guard.hit_per_client(RateRule.LOGIN_PER_IP, cmd.client)
        try:
            return await self._providers.start(
                provider,
                purpose=FlowPurpose.SIGN_IN,
                user_id=None,
                redirect_uri=cmd.redirect_uri,
                code_challenge=cmd.code_challenge,
                bind_browser=True,
            )
        except ProviderError as error:
            logger.warning("sign-in through %s not started: %s", cmd.provider, error)
            return AuthorizationStarted(url=with_query(cmd.redirect_uri, error=error.code), browser=None)


class ListProvidersHandler:
    """The names of the configured providers, in configuration order: what a sign-in page offers as "Continue with
    ..." buttons. Names only: a provider's issuer, client id and endpoints stay the service's business."""

    raises: ClassVar[tuple[type[DomainError], ...]] = ()

    def __init__(self, providers: Providers) -> None:
        self._providers = providers

    def __call__(self) -> tuple[str, ...]:
        return self._providers.names


class StartIdentityLinkHandler:
    """Linking from settings: the signed-in user gets the provider's URL to send their browser to; the trip is bound
    to them (the request comes from their frontend's server, which cannot set the browser's cookie)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        UnknownProvider,
        InvalidRedirectUri,
        InvalidCodeChallenge,
        InvalidAccessToken,
        RateLimited,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, providers: Providers, guard: Guard) -> None:
        self._uow, self._providers, self._guard = uow, providers, guard

    async def __call__(self, cmd: commands.StartIdentityLink) -> str:
        """Raises: UnknownProvider, InvalidRedirectUri, InvalidCodeChallenge, RateLimited, ServiceUnavailable (the
        provider's discovery failed)."""
        provider = self._providers.get(cmd.provider)
        self._providers.check_return(cmd.redirect_uri, cmd.code_challenge, cmd.code_challenge_method)
        await self._guard.hit_per_user(RateRule.PROFILE_UPDATES_PER_USER, cmd.user_id, cmd.client)
        async with self._uow:
            await load_user(self._uow, cmd.user_id)
        try:
            started = await self._providers.start(
                provider,
                purpose=FlowPurpose.LINK,
                user_id=cmd.user_id,
                redirect_uri=cmd.redirect_uri,
                code_challenge=cmd.code_challenge,
                bind_browser=False,
            )
        except ProviderError as error:
            logger.warning("link to %s not started: %s", cmd.provider, error)
            raise ServiceUnavailable("The identity provider cannot be reached; try again later.") from None
        return started.url


class _Refused(Exception):
    """A callback that ends at the frontend with ``?error=code``."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FinishProviderSignInHandler:
    """Step 2: the provider's callback. Returns the frontend URL to send the browser to: ``?login_code=`` after a
    sign-in, ``?linked={provider}`` after a link, ``?error=<code>`` after any failure.

    Error codes: ``invalid_state`` (no state, an unknown, used, expired or foreign one, or no cookie of the browser
    that left), ``access_denied`` (the user said no at the provider), ``provider_error`` (the provider refused the
    code or could not be reached), ``invalid_id_token``, ``email_required``, ``account_exists``,
    ``account_disabled``, ``identity_in_use``, ``temporarily_unavailable`` (our database).
    """

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidRedirectUri,)

    def __init__(
        self,
        uow: UnitOfWork,
        providers: Providers,
        clock: Clock,
        ids: IdGenerator,
        postman: Postman | None = None,
        devices: KnownDevices | None = None,
    ) -> None:
        self._uow, self._providers, self._clock, self._ids = uow, providers, clock, ids
        self._postman, self._devices = postman, devices

    async def __call__(self, cmd: commands.FinishProviderSignIn) -> str:
        """Raises: InvalidRedirectUri (no usable state, and no frontend address configured to go back to)."""
        pending: PendingAuthorization | None = None
        try:
            pending = await self._take(cmd)
            return await self._finish(cmd, pending)
        except _Refused as refused:
            return with_query(self._back(pending), error=refused.code)
        except ServiceUnavailable:
            return with_query(self._back(pending), error="temporarily_unavailable")

    def _back(self, pending: PendingAuthorization | None) -> str:
        uris = self._providers.policy.redirect_uris
        if pending is not None and pending.redirect_uri in uris:
            return pending.redirect_uri
        if not uris:
            raise InvalidRedirectUri("No frontend address is configured to return to.")
        return uris[0]

    async def _take(self, cmd: commands.FinishProviderSignIn) -> PendingAuthorization:
        if not cmd.state:
            raise _Refused("invalid_state")
        async with self._uow:
            pending = await self._uow.federation.take_authorization(digest(cmd.state))
            await self._uow.commit()
        if pending is None:
            raise _Refused("invalid_state")
        return pending

    async def _finish(self, cmd: commands.FinishProviderSignIn, pending: PendingAuthorization) -> str:
        now = self._clock.now()
        if pending.provider != cmd.provider or now >= pending.expires_at or not _same_browser(pending, cmd.browser):
            raise _Refused("invalid_state")
        if cmd.error is not None:
            raise _Refused("access_denied" if cmd.error == "access_denied" else "provider_error")
        if not cmd.code:
            raise _Refused("provider_error")
        provider = self._providers.get(cmd.provider)
        try:
            external = await provider.identify(
                redirect_uri=self._providers.policy.callback_url(provider.name),
                code=cmd.code,
                code_verifier=pending.code_verifier,
                nonce=pending.nonce,
            )
        except ProviderError as error:
            logger.warning("sign-in through %s refused: %s", provider.name, error)
            raise _Refused(error.code) from None
        if pending.purpose is FlowPurpose.LINK and pending.user_id is not None:
            await self._link(pending.user_id, external, cmd.client)
            return with_query(pending.redirect_uri, linked=provider.name)
        code = await self._sign_in(pending, external, cmd.client)
        return with_query(pending.redirect_uri, login_code=code)

    async def _sign_in(
        self, pending: PendingAuthorization, external: ExternalIdentity, client: commands.ClientInfo
    ) -> str:
        """Find or make the account, and issue its login code, in one transaction."""
        now = self._clock.now()
        async with self._uow:
            identity = await self._uow.identities.get(external.provider, external.subject)
            if identity is not None:
                user = await self._known(identity, external, client, now)
            else:
                user = await self._unknown(external, client, now)
            code = secrets.token_urlsafe(SECRET_BYTES)
            await self._uow.federation.add_login_code(
                LoginCode(
                    digest=digest(code),
                    user_id=user.id,
                    provider=external.provider,
                    redirect_uri=pending.redirect_uri,
                    code_challenge=pending.code_challenge,
                    created_at=now,
                    expires_at=now + self._providers.policy.login_code_ttl,
                )
            )
            await self._uow.commit()
        return code

    async def _known(
        self, identity: Identity, external: ExternalIdentity, client: commands.ClientInfo, now: datetime
    ) -> User:
        user = await self._uow.users.get(identity.user_id, for_update=True)
        if user is None:
            raise _Refused("invalid_state")
        if not user.is_active or user.erasure_at is not None:
            await self._refuse(user, external, client, now, reason="account_disabled")
        identity.used(now=now, email=external.email)
        await self._uow.identities.update(identity)
        return user

    async def _unknown(self, external: ExternalIdentity, client: commands.ClientInfo, now: datetime) -> User:
        account = await self._uow.users.get_by_email(external.email) if external.email is not None else None
        resolution = resolve_new_identity(
            email=external.email,
            provider_verified=external.email_verified,
            account_email_verified=account.email_verified if account is not None else None,
        )
        if resolution is Resolution.NO_EMAIL:
            raise _Refused(resolution.value)
        if resolution is Resolution.CREATE:
            return await self._create(external, client, now)
        assert account is not None  # noqa: S101 - LINK and REFUSE are about an account that has the address
        account = await load_user(self._uow, account.id, for_update=True)
        if resolution is Resolution.REFUSE:
            await self._refuse(account, external, client, now, reason="account_exists")
        if not account.is_active or account.erasure_at is not None:
            await self._refuse(account, external, client, now, reason="account_disabled")
        await self._add_identity(account, external, client, now, automatic=True)
        return account

    async def _create(self, external: ExternalIdentity, client: commands.ClientInfo, now: datetime) -> User:
        assert external.email is not None  # noqa: S101 - resolve_new_identity creates only with an address
        user = User.register_federated(
            id=self._ids.new_user_id(),
            email=external.email,
            email_verified=external.email_verified,
            full_name=_full_name(external.name),
            now=now,
        )
        try:
            await self._uow.users.add(user)
        except EmailTaken:  # another sign-up took the address meanwhile
            raise _Refused("account_exists") from None
        await self._uow.record(
            security_event(EventType.REGISTERED, at=now, client=client, user_id=user.id, provider=external.provider)
        )
        await self._add_identity(user, external, client, now, automatic=False, notify=False)
        if self._postman is not None and not user.email_verified:
            await send_verification(self._uow, self._postman, user, client, now, reason="registration")
        if self._devices is not None:  # the browser that signed up is no new device at its first sign-in
            await self._devices.remember(self._uow, user.id, client, now)
        return user

    async def _link(self, user_id: UserId, external: ExternalIdentity, client: commands.ClientInfo) -> None:
        now = self._clock.now()
        async with self._uow:
            user = await self._uow.users.get(user_id, for_update=True)
            if user is None or not user.is_active or user.erasure_at is not None:
                raise _Refused("account_disabled")
            identity = await self._uow.identities.get(external.provider, external.subject)
            if identity is not None and identity.user_id != user.id:
                raise _Refused("identity_in_use")
            if identity is not None:
                identity.used(now=now, email=external.email)
                await self._uow.identities.update(identity)
            else:
                await self._add_identity(user, external, client, now, automatic=False)
            await self._uow.commit()

    async def _add_identity(
        self,
        user: User,
        external: ExternalIdentity,
        client: commands.ClientInfo,
        now: datetime,
        *,
        automatic: bool,
        notify: bool = True,
    ) -> None:
        identity = Identity.link(
            id=self._ids.new_identity_id(),
            user_id=user.id,
            provider=external.provider,
            subject=external.subject,
            email=external.email,
            now=now,
        )
        try:
            await self._uow.identities.add(identity)
        except IdentityInUse:  # the same identity linked meanwhile, by another callback
            raise _Refused("identity_in_use") from None
        await self._uow.record(
            security_event(
                EventType.IDENTITY_LINKED,
                at=now,
                client=client,
                user_id=user.id,
                provider=external.provider,
                identity_id=str(identity.id),
                automatic=automatic,
            )
        )
        if notify and self._postman is not None:
            await self._postman.send(
                self._uow,
                to=user.email,
                template=Template.IDENTITY_LINKED,
                now=now,
                user_id=user.id,
                provider_label=label(external.provider),
                provider_email=external.email.value if external.email else None,
                automatic=automatic,
                **notice_context(client, now),
            )

    async def _refuse(
        self, user: User, external: ExternalIdentity, client: commands.ClientInfo, now: datetime, *, reason: str
    ) -> None:
        """Record the refused sign-in in the account's history (committed alone), and end at the frontend."""
        await self._uow.record(
            security_event(
                EventType.LOGIN_FAILED,
                at=now,
                client=client,
                user_id=user.id,
                reason=reason,
                provider=external.provider,
            )
        )
        await self._uow.commit()
        raise _Refused(reason)


def _same_browser(pending: PendingAuthorization, browser: str | None) -> bool:
    if pending.browser_digest is None:  # a link, bound to its user
        return pending.purpose is FlowPurpose.LINK
    return browser is not None and hmac.compare_digest(digest(browser), pending.browser_digest)


def _full_name(name: str | None) -> FullName | None:
    if name is None:
        return None
    try:
        return FullName(name)
    except InvalidFullName:
        return None


class RedeemLoginCodeHandler:
    """Step 3: the frontend's server trades a login code and the verifier of its PKCE challenge for a sign-in."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        RateLimited,
        InvalidLoginCode,
        ServiceUnavailable,
        *SessionIssuer.raises,
    )

    def __init__(self, uow: UnitOfWork, issuer: SessionIssuer, clock: Clock, guard: Guard) -> None:
        self._uow, self._issuer, self._clock, self._guard = uow, issuer, clock, guard

    async def __call__(self, cmd: commands.RedeemLoginCode) -> SignInResult:
        """Raises: RateLimited, InvalidLoginCode, UserInactive, EmailNotVerified."""
        started = time.perf_counter()
        await self._guard.hit_per_client(RateRule.LOGIN_PER_IP, cmd.client)
        async with self._uow:
            code = await self._uow.federation.take_login_code(digest(cmd.login_code))  # once, right or wrong
            await self._uow.commit()
        if (
            code is None
            or self._clock.now() >= code.expires_at
            or not _VERIFIER.fullmatch(cmd.code_verifier)
            or not hmac.compare_digest(pkce_challenge(cmd.code_verifier), code.code_challenge)
        ):
            raise InvalidLoginCode()
        factor = ProvenFactor(
            user_id=code.user_id, method=AuthMethod.FEDERATED, provider=code.provider, started=started
        )
        return await self._issuer.sign_in(factor, cmd.client)


class ListIdentitiesHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (ServiceUnavailable,)

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    async def __call__(self, user_id: UserId) -> Sequence[Identity]:
        async with self._uow:
            return await self._uow.identities.list_for_user(user_id)


class UnlinkIdentityHandler:
    """Remove a linked identity, unless it is the account's only way in (no password, no other identity)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        IdentityNotFound,
        LastLoginMethod,
        InvalidAccessToken,
        RateLimited,
        ServiceUnavailable,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, guard: Guard, postman: Postman | None = None) -> None:
        self._uow, self._clock, self._guard, self._postman = uow, clock, guard, postman

    async def __call__(self, cmd: commands.UnlinkIdentity) -> None:
        """Raises: IdentityNotFound, LastLoginMethod, RateLimited."""
        try:
            identity_id = IdentityId(UUID(cmd.identity_id))
        except ValueError:
            raise IdentityNotFound() from None
        await self._guard.hit_per_user(RateRule.PROFILE_UPDATES_PER_USER, cmd.user_id, cmd.client)
        now = self._clock.now()
        async with self._uow:
            user = await load_user(self._uow, cmd.user_id, for_update=True)  # serialises with another unlink
            identity = await self._uow.identities.get_for_user(identity_id, user.id)
            if identity is None:
                raise IdentityNotFound()
            if not user.has_password and len(await self._uow.identities.list_for_user(user.id)) <= 1:
                raise LastLoginMethod()
            await self._uow.identities.delete(identity.id, user.id)
            await self._uow.record(
                security_event(
                    EventType.IDENTITY_UNLINKED,
                    at=now,
                    client=cmd.client,
                    user_id=user.id,
                    session_id=cmd.session_id,
                    provider=identity.provider,
                    identity_id=str(identity.id),
                )
            )
            if self._postman is not None:
                await self._postman.send(
                    self._uow,
                    to=user.email,
                    template=Template.IDENTITY_UNLINKED,
                    now=now,
                    user_id=user.id,
                    provider_label=label(identity.provider),
                    provider_email=identity.email.value if identity.email else None,
                    **notice_context(cmd.client, now),
                )
            await self._uow.commit()
