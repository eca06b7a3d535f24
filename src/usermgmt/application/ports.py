"""The boundary of the core: what the use cases need from the outside world, and nothing about how it is done."""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, Self

from usermgmt.application.results import Principal
from usermgmt.domain.events import EventType, SecurityEvent, StoredEvent
from usermgmt.domain.identities import Identity, IdentityId
from usermgmt.domain.mfa import MfaChallenge, TotpCredential
from usermgmt.domain.model import Session, User
from usermgmt.domain.roles import Role
from usermgmt.domain.value_objects import (
    AuthMethod,
    Email,
    EmailTokenPurpose,
    PasswordHash,
    PlainPassword,
    RefreshTokenHash,
    SessionId,
    UserId,
    Username,
)

logger = logging.getLogger(__name__)


class UserRepository(Protocol):
    async def get(self, user_id: UserId, *, for_update: bool = False) -> User | None:
        """The user; with ``for_update``, locked until the transaction ends (concurrent writers wait)."""

    async def get_by_email(self, email: Email) -> User | None: ...
    async def get_by_username(self, username: Username) -> User | None: ...

    async def add(self, user: User) -> None:
        """Raises: EmailTaken, UsernameTaken."""

    async def update(self, user: User) -> None:
        """Write back a user loaded through this repository. Raises: EmailTaken, UsernameTaken, ConcurrentUpdate."""

    async def due_for_erasure(self, now: datetime, *, limit: int) -> Sequence[User]:
        """Users whose deletion grace period ended at or before ``now``, the longest due first."""

    async def erase(self, user_id: UserId) -> Mapping[str, int]:
        """Delete the user and every row that belongs to them, wherever the storage keeps it (the users row,
        sessions, retired refresh tokens, security events, and whatever later holds account data); return how many
        rows went from each place, keyed by the place's stable name, one key per place even when nothing went.

        An anonymous count of deletions is kept, nothing more.
        """


class SessionRepository(Protocol):
    async def add(self, session: Session) -> None: ...
    async def get(self, session_id: SessionId) -> Session | None: ...
    async def list_for_user(self, user_id: UserId) -> Sequence[Session]: ...
    async def get_by_refresh_token(self, token_hash: RefreshTokenHash) -> Session | None: ...

    async def find_by_retired_token(self, token_hash: RefreshTokenHash) -> SessionId | None:
        """The session that once held this (since rotated) refresh token, if it still exists."""

    async def save_rotation(self, session: Session, retired: RefreshTokenHash) -> None:
        """Persist a rotation, only if the session still holds ``retired``. Raises: ConcurrentUpdate."""

    async def delete(self, session_id: SessionId, *, user_id: UserId | None = None) -> bool: ...
    async def delete_for_user(self, user_id: UserId, *, keep: SessionId | None = None) -> int: ...

    async def delete_expired(self, now: datetime) -> int:
        """Delete the sessions that expired before ``now`` (and their retired token hashes); return how many."""


class EventRepository(Protocol):
    async def add(self, event: SecurityEvent) -> None:
        """Store the event with this transaction. An event naming a user who no longer exists is stored without
        the user (a failed login racing the account's deletion must not fail). Use ``UnitOfWork.record``."""

    async def list_for_user(self, user_id: UserId, *, limit: int, before: int | None = None) -> Sequence[StoredEvent]:
        """The user's events, newest first, older than position ``before`` when given."""

    async def list_all(
        self,
        *,
        limit: int,
        before: int | None = None,
        type: EventType | None = None,
        actor_id: UserId | None = None,
        user_id: UserId | None = None,
    ) -> Sequence[StoredEvent]:
        """Every account's events (the admin trail), newest first, narrowed by the filters given."""

    async def last_at(self, user_id: UserId, type: EventType, *, ip: str | None = None) -> datetime | None:
        """When the user's newest event of ``type`` happened (from ``ip`` only, when given), if any is kept."""

    async def failed_sign_ins(
        self, user_id: UserId, *, since: datetime, limit: int, ip: str | None = None
    ) -> Sequence[datetime]:
        """When the user's newest ``login_failed`` events at or after ``since`` happened (from ``ip`` only, when
        given), newest first, at most ``limit`` of them."""

    async def delete_anonymous_before(self, cutoff: datetime) -> int:
        """Delete the events that name no account (failed logins of unknown names, deletion marks, role changes)
        from before ``cutoff``; return how many."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignInCounts:
    succeeded: int
    failed: int
    mean_duration_ms: float | None  # over those of them that carry a ``duration_ms`` detail; None: none does


class StatsQueries(Protocol):
    """What the KPIs are computed from (``application/handlers/stats.py`` defines them; docs/operations.md says
    what each means). Each query reads one bounded range of an index, never the whole audit trail: the events by
    (type, at), an account's events by (user_id, ...), the users by erasure_at. Periods are [start, end)."""

    async def registrations_by_day(self, start: datetime, end: datetime) -> Sequence[tuple[date, int]]:
        """The ``registered`` events in the period, counted per UTC date, by date (dates with none left out)."""

    async def sign_ins(self, start: datetime, end: datetime) -> SignInCounts:
        """The ``login_succeeded`` and ``login_failed`` events in the period, and the mean of their ``duration_ms``."""

    async def accounts(self) -> tuple[int, int]:
        """Now: (how many accounts exist, how many of them have a confirmed TOTP credential)."""

    async def registered_and_last_active(
        self, start: datetime, end: datetime, *, until: datetime
    ) -> Sequence[tuple[datetime, datetime | None]]:
        """For each account registered in the period (a ``registered`` event still naming it): when, and when its
        newest ``login_succeeded`` or ``token_refreshed`` event before ``until`` happened (None: none did)."""

    async def password_resets(self, start: datetime, end: datetime) -> Sequence[tuple[datetime, datetime | None]]:
        """For each ``password_reset`` event in the period: when, and when the same account's newest
        ``password_reset_requested`` event at or before it happened (None: none is kept)."""

    async def deletions(self, start: datetime, end: datetime, *, within: timedelta) -> tuple[int, int]:
        """The ``account_deleted`` marks in the period: (how many, how many of them with a ``lag_seconds`` of at most
        ``within``, or none: marks from before the detail existed)."""

    async def overdue_erasures(self, start: datetime, end: datetime) -> int:
        """How many accounts still exist whose ``erasure_at`` is in the period (scheduled, and not erased yet)."""


# A position in the user search, newest first: (created_at, id) of the last user of a page.
UserPageKey = tuple[datetime, UserId]


class RoleRepository(Protocol):
    async def list(self) -> Sequence[Role]:
        """Every role, by name."""

    async def get(self, name: str, *, for_update: bool = False) -> Role | None:
        """The role; with ``for_update``, locked until the transaction ends: the unit of work that changes who
        holds ``admin`` locks it first, so two of them cannot each remove a different last administrator."""

    async def add(self, role: Role) -> None:
        """Raises: RoleExists."""

    async def update(self, role: Role) -> None: ...

    async def delete(self, name: str) -> bool:
        """Delete the role and take it from every user holding it."""

    async def roles_of(self, user_id: UserId) -> tuple[str, ...]:
        """The names of the user's roles, sorted."""

    async def roles_of_many(self, user_ids: Iterable[UserId]) -> Mapping[UserId, tuple[str, ...]]:
        """``roles_of`` for several users at once (a user without roles may be left out)."""

    async def set_roles(self, user_id: UserId, names: Iterable[str], now: datetime) -> None:
        """Make ``names`` (existing roles) the user's roles. Raises: ConcurrentUpdate (a role deleted meanwhile)."""

    async def active_holders(self, name: str) -> int:
        """How many active accounts hold the role."""

    async def search_users(
        self,
        *,
        query: str | None,
        role: str | None,
        active: bool | None,
        limit: int,
        after: UserPageKey | None,
    ) -> Sequence[User]:
        """Users newest first (by ``created_at``, then id), after ``after``: whose canonical email or username
        starts with ``query`` (already canonical), who hold ``role``, whose ``is_active`` is ``active``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailToken:
    """A one-time email token as stored: only the SHA-256 digest of the secret that went out in the link."""

    digest: str = field(repr=False)
    user_id: UserId
    purpose: EmailTokenPurpose
    email: Email  # the address the link went to (for an email change: the new address)
    created_at: datetime
    expires_at: datetime


class EmailTokenRepository(Protocol):
    async def add(self, token: EmailToken) -> None: ...

    async def take(self, digest: str, purpose: EmailTokenPurpose) -> EmailToken | None:
        """Remove and return the token with this digest if it serves ``purpose`` (expired or not: the caller
        checks the time). Single use: of two transactions taking one token, at most one gets it. A token of
        another purpose stays where it is."""

    async def delete_for_user(self, user_id: UserId, *purposes: EmailTokenPurpose) -> int:
        """Delete the user's outstanding tokens of these purposes (every purpose when none is given)."""

    async def latest_for_user(self, user_id: UserId, purpose: EmailTokenPurpose) -> EmailToken | None:
        """The user's most recently created outstanding token of ``purpose``."""

    async def delete_expired(self, now: datetime) -> int:
        """Delete the tokens that expired at or before ``now``; return how many."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutgoingEmail:
    """An email to send: which template, to whom, with what (JSON-serialisable) context. It may carry a one-time
    link; the outbox forgets it once the message is sent."""

    to: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict, repr=False)
    user_id: UserId | None = None  # the account it is about: erased with it while still queued


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedEmail:
    """A row of the outbox, claimed for delivery until ``claimed_until`` (the lease). Marking it (sent, retry, give
    up) succeeds only while the claim is still this one: a worker whose lease ran out and whose row another worker
    claimed meanwhile changes nothing."""

    id: int
    message_id: str  # the same on every attempt: a receiver can tell a resent message from a new one
    message: OutgoingEmail
    created_at: datetime
    attempts: int  # failed attempts so far
    claimed_until: datetime


class Outbox(Protocol):
    """The transactional outbox. Use cases ``add`` messages in their own transaction; the delivery worker claims
    due rows, and marks each once tried, each step in a unit of work of its own."""

    async def add(self, message: OutgoingEmail, *, now: datetime) -> None:
        """Queue ``message`` with this transaction: it is delivered only if the transaction commits, and it gets
        its stable Message-ID now."""

    async def claim(self, *, now: datetime, lease: timedelta, limit: int) -> Sequence[QueuedEmail]:
        """Claim up to ``limit`` due rows (next attempt at or before ``now``, and not claimed, or claimed by a lease
        that ended), the longest due first, until ``now + lease``. Once this transaction commits, no other claim
        returns them before the lease ends; concurrent claims (two workers, two instances) never return one row
        twice (PostgreSQL: ``FOR UPDATE SKIP LOCKED``; SQLite: one writer at a time)."""

    async def mark_sent(self, email: QueuedEmail) -> bool:
        """Delete the row (nothing of its link survives); False when the claim was no longer ``email``'s."""

    async def reschedule(self, email: QueuedEmail, *, at: datetime, error: str) -> bool:
        """Count a failed attempt, release the claim and make the row due again ``at``, noting ``error`` (at most
        500 characters are kept); False when the claim was no longer ``email``'s."""

    async def give_up(self, email: QueuedEmail) -> bool:
        """Delete the row unsent; False when the claim was no longer ``email``'s."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderedEmail:
    subject: str
    text: str = field(repr=False)
    html: str = field(repr=False)


class EmailRenderer(Protocol):
    def render(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        """The subject (one line), plain text and HTML of ``template`` with ``context``. Raises ``ValueError``
        when the template does not exist or does not render with this context."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailMessage:
    """A message ready to leave: a text and an HTML alternative of one rendered template."""

    message_id: str  # "<...@domain>", stable across retries
    sender: str  # the From: header
    to: str = field(repr=False)
    subject: str
    text: str = field(repr=False)  # may carry a one-time link: never logged
    html: str = field(repr=False)
    template: str


class DeliveryFailed(Exception):
    """A message did not reach the mail server (or the file). ``permanent``: trying again cannot help (the server
    refused the message or its recipient for good: a 5xx reply); otherwise it is worth another attempt later (the
    server was unreachable, timed out, answered 4xx, or refused our login or TLS until someone fixes it).

    ``reason`` is safe to log: it names the failure (an SMTP reply code, an error class), never the recipient, the
    message or its link."""

    def __init__(self, reason: str, *, permanent: bool, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent
        self.detail = detail or reason  # what the server said, for the outbox row's last_error (not for the log)


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> str:
        """Hand ``message`` over to the mail server (or write it out); return where it went, for a person to read
        (``smtp.example.com:587``, a file's path). Raises: DeliveryFailed."""


class KnownDeviceRepository(Protocol):
    async def touch(self, user_id: UserId, device_key: str, now: datetime) -> datetime | None:
        """Record that the account was used from this device (a digest of its user agent and IP network) at
        ``now``; return when it was last seen before, or None if never. Concurrent touches never fail."""


EventHandler = Callable[[Sequence[SecurityEvent]], Awaitable[None]]


class EventDispatcher:
    """What happens to the security events of a unit of work when it commits, in two phases.

    - ``before_commit`` handlers run inside the transaction, with the unit of work still open: what they write
      commits or rolls back with the change (an outbox row for an email, say). If one raises, nothing commits.
    - ``after_commit`` handlers run once the change is durable (logging, waking a worker). They cannot undo it:
      one that raises is logged and the others still run.
    A unit of work that rolls back dispatches nothing.
    """

    def __init__(
        self,
        *,
        before_commit: Sequence[Callable[[UnitOfWork, Sequence[SecurityEvent]], Awaitable[None]]] = (),
        after_commit: Sequence[EventHandler] = (),
    ) -> None:
        self.before_commit, self.after_commit = tuple(before_commit), tuple(after_commit)

    async def prepare(self, uow: UnitOfWork, events: Sequence[SecurityEvent]) -> None:
        for handler in self.before_commit:
            await handler(uow, events)

    async def committed(self, events: Sequence[SecurityEvent]) -> None:
        for handler in self.after_commit:
            try:
                await handler(events)
            except Exception:  # the change is committed: a failed side effect must not turn it into an error
                logger.exception("after-commit handler %r failed", handler)


# --- sign-in through identity providers ----------------------------------------------------------------------------


class IdentityRepository(Protocol):
    async def get(self, provider: str, subject: str) -> Identity | None: ...
    async def get_for_user(self, identity_id: IdentityId, user_id: UserId) -> Identity | None: ...

    async def list_for_user(self, user_id: UserId) -> Sequence[Identity]:
        """Oldest first."""

    async def add(self, identity: Identity) -> None:
        """Raises: IdentityInUse (another row has its provider and subject)."""

    async def update(self, identity: Identity) -> None:
        """Store ``last_used_at`` and ``email``."""

    async def delete(self, identity_id: IdentityId, user_id: UserId) -> bool: ...


class FlowPurpose(StrEnum):
    SIGN_IN = "sign_in"
    LINK = "link"  # from the settings of the signed-in ``user_id``


@dataclass(kw_only=True)
class PendingAuthorization:
    """A trip to a provider under way: what the callback needs, kept server-side for 10 minutes under the digest
    of its ``state``. ``browser_digest``: the digest of the cookie that binds it to the browser that left (None for
    a link started by a frontend's server, which is bound to ``user_id`` instead)."""

    state_digest: str = field(repr=False)
    provider: str
    purpose: FlowPurpose
    user_id: UserId | None
    browser_digest: str | None = field(repr=False)
    redirect_uri: str
    code_challenge: str = field(repr=False)  # the frontend's PKCE challenge, for the login code
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)  # ours, for the provider's token endpoint
    created_at: datetime
    expires_at: datetime


@dataclass(kw_only=True)
class LoginCode:
    """The one-time code a callback hands the frontend: 60 seconds, for ``user_id``, redeemed once with the
    verifier of ``code_challenge``."""

    digest: str = field(repr=False)
    user_id: UserId
    provider: str
    redirect_uri: str
    code_challenge: str = field(repr=False)
    created_at: datetime
    expires_at: datetime


class FederationRepository(Protocol):
    async def add_authorization(self, pending: PendingAuthorization) -> None: ...

    async def take_authorization(self, state_digest: str) -> PendingAuthorization | None:
        """Delete and return it (expired or not): a state is used at most once, even by two callbacks at once."""

    async def add_login_code(self, code: LoginCode) -> None: ...

    async def take_login_code(self, digest: str) -> LoginCode | None:
        """Delete and return it (expired or not): at most once."""

    async def delete_expired(self, now: datetime) -> int:
        """Drop the authorizations and login codes past their time; return how many."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalIdentity:
    """Who a provider says signed in: ``subject`` is its stable id for them; ``email`` None when it gave none (or
    none that is a valid address)."""

    provider: str
    subject: str
    email: Email | None
    email_verified: bool
    name: str | None = None


class ProviderError(Exception):
    """A provider's answer that proves nothing: ``code`` is what the frontend is told (``invalid_id_token``: the ID
    token failed validation; ``provider_error``: the provider refused or could not be reached). The message is for
    the log and names no secret."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class IdentityProvider(Protocol):
    """One configured provider, e.g. Google (OpenID Connect) or Facebook (OAuth 2 and the Graph API)."""

    @property
    def name(self) -> str: ...

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        """Where to send the browser: the provider's authorization endpoint with this request (PKCE S256 from
        ``code_verifier``). ``redirect_uri`` is the service's own callback. Raises: ProviderError."""

    async def identify(self, *, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> ExternalIdentity:
        """Exchange ``code`` and prove who signed in (the ID token's signature from the provider's keys, issuer,
        audience, expiry and ``nonce``; or the Graph API). Raises: ProviderError."""


class UnitOfWork(abc.ABC):
    """One transaction. Leaving the ``async with`` block without ``commit()`` rolls everything back.

    Use cases raise security events in one way, ``await uow.record(event)``: the event is stored with the
    transaction and handed to the dispatcher's handlers when it commits.
    """

    users: UserRepository
    sessions: SessionRepository
    events: EventRepository
    email_tokens: EmailTokenRepository
    outbox: Outbox
    known_devices: KnownDeviceRepository
    mfa: MfaRepository
    roles: RoleRepository
    stats: StatsQueries
    identities: IdentityRepository
    federation: FederationRepository

    def __init__(self, dispatcher: EventDispatcher | None = None) -> None:
        self._dispatcher = dispatcher or EventDispatcher()
        self._recorded: list[SecurityEvent] = []

    async def __aenter__(self) -> Self:
        self._recorded = []
        await self._begin()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._recorded = []
        await self._end(exc)

    async def record(self, event: SecurityEvent) -> None:
        await self.events.add(event)
        self._recorded.append(event)

    async def try_lock(self, name: str) -> bool:
        """Take the deployment-wide lock ``name`` until this transaction ends, if no other transaction (of any
        process or instance) holds it; False, at once, if one does. The default, for a store with a single writer:
        always True."""
        return True

    async def commit(self) -> None:
        """Commit, then run the after-commit handlers. The unit of work stays open for more work."""
        recorded = self._recorded
        await self._dispatcher.prepare(self, recorded)
        await self._commit()
        self._recorded = []
        await self._dispatcher.committed(recorded)

    @abc.abstractmethod
    async def _begin(self) -> None: ...

    @abc.abstractmethod
    async def _commit(self) -> None: ...

    @abc.abstractmethod
    async def _end(self, error: BaseException | None) -> None:
        """Roll back what was not committed and release the transaction's resources."""


class PrincipalReader(Protocol):
    async def get(self, user_id: UserId, session_id: SessionId, now: datetime) -> Principal | None:
        """The caller, if the session exists, belongs to the user and has not expired (whatever the account's
        state: the caller applies the sign-in rule). One read, no lock, no password hash.

        Raises: ServiceUnavailable."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PasswordCheck:
    """What a password check saw: the password's version (``changed_at``) and the hash that verified, plus the same
    password under newer hashing parameters when the stored hash is outdated. ``verified_hash`` is None when the
    check happened in an earlier step (a second factor completes it): then nothing is rehashed."""

    changed_at: datetime | None
    verified_hash: PasswordHash | None = None
    upgraded_hash: PasswordHash | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProvenFactor:
    """A factor just proven for ``user_id``, after those in ``earlier`` (proven in a previous step of the same
    sign-in); ``password`` when a password was one of them. ``throttle_key`` names the failed-login throttles the
    first factor counted against: a second step counts its wrong codes there too. ``provider``: the identity
    provider (``google``...) when the first factor was a sign-in there. ``started``: the ``time.perf_counter()`` at
    which this step's use case began, for the ``duration_ms`` of its outcome's event."""

    user_id: UserId
    method: AuthMethod
    earlier: tuple[AuthMethod, ...] = ()
    password: PasswordCheck | None = None
    throttle_key: str | None = None
    started: float | None = None
    provider: str | None = None  # the identity provider that vouched, for a federated first factor

    @property
    def amr(self) -> tuple[AuthMethod, ...]:
        return tuple(dict.fromkeys((*self.earlier, self.method)))


@dataclass(frozen=True, slots=True, kw_only=True)
class FurtherStep:
    """A second step the sign-in must pass: prove one of ``methods`` with ``token`` within ``expires_in`` seconds."""

    methods: tuple[str, ...]
    token: str = field(repr=False)
    expires_in: int


class SecondFactorPolicy(Protocol):
    async def further_step(
        self, uow: UnitOfWork, user: User, factor: ProvenFactor, now: datetime
    ) -> FurtherStep | None:
        """Inside the sign-in's transaction (``user`` locked): the step still required after ``factor`` before
        ``user`` may have a session, written with the transaction (None: no further step)."""


class MfaRepository(Protocol):
    """Second factors: the TOTP credential, the recovery codes (keyed digests only) and open sign-in challenges."""

    async def get_totp(self, user_id: UserId) -> TotpCredential | None: ...

    async def save_totp(self, credential: TotpCredential) -> None:
        """Insert or replace the user's credential."""

    async def use_totp_step(self, user_id: UserId, step: int) -> bool:
        """Record ``step`` as the newest accepted, only if it is newer than every step accepted before (atomic: of
        two transactions using one code, at most one succeeds). False when it is not, or there is no credential."""

    async def delete_totp(self, user_id: UserId) -> bool: ...

    async def recovery_codes(self, user_id: UserId) -> Sequence[str]:
        """The digests of the user's unused recovery codes."""

    async def replace_recovery_codes(self, user_id: UserId, digests: Sequence[str], now: datetime) -> None: ...

    async def use_recovery_code(self, user_id: UserId, digest: str) -> bool:
        """Delete the code (single use, atomic); False when it was already gone."""

    async def delete_recovery_codes(self, user_id: UserId) -> int: ...

    async def add_challenge(self, challenge: MfaChallenge) -> None: ...

    async def get_challenge(self, digest: str) -> MfaChallenge | None: ...

    async def count_challenge_failure(self, digest: str) -> int | None:
        """Add one wrong code to the challenge (atomic); return its failures so far, or None when it is gone."""

    async def delete_challenge(self, digest: str) -> bool:
        """False when another transaction deleted it first: whoever gets True used it."""

    async def delete_challenges_for_user(self, user_id: UserId) -> int: ...

    async def delete_expired_challenges(self, now: datetime) -> int: ...


class SecretBox(Protocol):
    """Authenticated encryption of small secrets at rest, with keys that rotate (newest first)."""

    def seal(self, plaintext: bytes, *, context: str) -> str:
        """Encrypt under the newest key, bound to ``context`` (e.g. the owner's id): opened under another context,
        it fails."""

    def open(self, sealed: str, *, context: str) -> bytes:
        """Decrypt with whichever configured key sealed it. Raises ``ValueError`` (unknown key, tampered data, or
        another context)."""

    def fingerprints(self, value: str) -> tuple[str, ...]:
        """Keyed digests of ``value`` (HMAC-SHA-256 under a key derived from each data key), newest key first: what
        is stored of a recovery code is the first; a code stored under an older key matches one of the others."""


class TotpAuthenticator(Protocol):
    """RFC 6238 TOTP as authenticator apps speak it (SHA-1, 6 digits, 30 seconds)."""

    def new_secret(self) -> str:
        """A fresh base32 secret (160 bits)."""

    def provisioning_uri(self, secret: str, *, account: str, issuer: str) -> str:
        """The ``otpauth://totp/...`` URI an app enrols from."""

    def matching_step(self, secret: str, code: str, now: datetime) -> int | None:
        """The time step (within one step either side of ``now``) whose code is ``code``, compared in constant
        time; None when none is."""


class QrCodeRenderer(Protocol):
    def svg(self, data: str) -> str:
        """A QR code of ``data`` as an SVG document."""


class PasswordHasher(Protocol):
    @property
    def dummy_hash(self) -> PasswordHash:
        """A hash of no one's password, verified for unknown users so timing reveals nothing."""

    async def hash(self, password: PlainPassword) -> PasswordHash: ...

    def admission(self) -> AbstractContextManager[None]:
        """A sign-in's place at the hashing pool, held for the block. Raises ServiceBusy when the sign-ins and hashes
        already in flight would delay one more beyond the configured wait: a sign-in asks before any other work, so
        a shed attempt costs neither a hash nor a rate-limit slot."""

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        """(matches, a new hash when the stored one uses outdated parameters). Runs off the event loop."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: UserId
    session_id: SessionId
    expires_at: datetime
    amr: tuple[AuthMethod, ...] = ()
    auth_time: datetime | None = None
    issued_at: datetime | None = None
    roles: tuple[str, ...] = ()


class AccessTokenService(Protocol):
    def issue(self, session: Session, roles: Sequence[str] = ()) -> IssuedToken:
        """An access token for ``session``: its user, its id, how and when it was authenticated, and the user's
        ``roles`` now (for internal services: as fresh as the token)."""

    def verify(self, token: str) -> AccessClaims:
        """Raises: InvalidAccessToken."""


class RefreshTokenFactory(Protocol):
    def generate(self) -> str:
        """A new opaque refresh token with at least 256 bits of randomness."""

    def digest(self, token: str) -> RefreshTokenHash: ...


@dataclass(frozen=True, slots=True)
class Rate:
    """At most ``limit`` hits per ``period``."""

    limit: int
    period: timedelta

    def __post_init__(self) -> None:
        if self.limit < 1 or self.period <= timedelta(0):
            raise ValueError("a rate needs limit >= 1 and a positive period")


@dataclass(frozen=True, slots=True)
class RateStatus:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window frees a slot


class RateLimiter(Protocol):
    """Moving-window counters keyed by strings. Implementations must not raise on storage failure."""

    async def hit(self, rate: Rate, key: str) -> RateStatus:
        """Count one hit; ``allowed`` is False (and nothing is counted) when the window is already full."""

    async def clear(self, rate: Rate, key: str) -> None: ...

    def degraded(self) -> bool:
        """True while the counts are this process's alone because the store shared by every process (Redis) is
        failing: each process then lets a client through its own window."""


class BreachedPasswordChecker(Protocol):
    async def is_breached(self, password: PlainPassword) -> bool:
        """True only when the password is known to be breached; False when it is not, or when the check could not
        be made (fail-open: an outage of the breach service must not stop sign-ups)."""


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC."""


class IdGenerator(Protocol):
    def new_user_id(self) -> UserId: ...
    def new_session_id(self) -> SessionId: ...
    def new_identity_id(self) -> IdentityId: ...
