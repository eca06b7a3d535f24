"""Use-case inputs: plain, frozen data. Secrets are hidden from repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from usermgmt.domain.events import EventType
from usermgmt.domain.roles import ALL_PERMISSIONS, Permission
from usermgmt.domain.value_objects import SessionId, UserId


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a request came from: recorded with sessions and security events, and the key of per-IP limits."""

    user_agent: str | None = None
    ip: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterUser:
    email: str
    password: str = field(repr=False)
    username: str | None = None
    full_name: str | None = None
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class Login:
    login: str
    password: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class RefreshSession:
    refresh_token: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class Logout:
    user_id: UserId
    session_id: SessionId
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class Authenticate:
    access_token: str = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateProfile:
    """Fields left ``None`` stay as they are; names in ``clear`` (username, full_name) are removed."""

    user_id: UserId
    username: str | None = None
    full_name: str | None = None
    clear: frozenset[str] = frozenset()
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangePassword:
    user_id: UserId
    session_id: SessionId
    current_password: str = field(repr=False)
    new_password: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteAccount:
    """``password`` None: an account without one proves a recent sign-in of ``session_id`` instead."""

    user_id: UserId
    password: str | None = field(default=None, repr=False)
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListSessions:
    user_id: UserId
    current_session_id: SessionId


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeSession:
    user_id: UserId
    session_id: SessionId
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEvents:
    user_id: UserId
    limit: int = 20
    before: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgotPassword:
    email: str
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResetPassword:
    token: str = field(repr=False)
    new_password: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyEmail:
    token: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ResendVerification:
    user_id: UserId
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEmailChange:
    user_id: UserId
    new_email: str
    password: str | None = field(repr=False)  # None: an account without one
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmEmailChange:
    token: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class LoginMfa:
    mfa_token: str = field(repr=False)
    code: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class GetMfaStatus:
    user_id: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTotpEnrolment:
    user_id: UserId
    password: str | None = field(repr=False)  # None: an account without one
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmTotpEnrolment:
    user_id: UserId
    code: str = field(repr=False)
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class DisableTotp:
    """Also the command of regenerating recovery codes: both need the password and a current code."""

    user_id: UserId
    password: str | None = field(repr=False)  # None: an account without one
    code: str = field(repr=False)
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()


RegenerateRecoveryCodes = DisableTotp


# --- administration ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who administers: a signed-in user with the permissions their roles grant now, or (``user_id`` None) the
    operator at the command line, who holds every permission."""

    user_id: UserId | None
    permissions: frozenset[Permission]
    client: ClientInfo = ClientInfo()

    @classmethod
    def operator(cls) -> Actor:
        return cls(user_id=None, permissions=ALL_PERMISSIONS, client=ClientInfo(user_agent="usermgmt-cli"))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListUsers:
    actor: Actor
    query: str | None = None
    role: str | None = None
    active: bool | None = None
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetUser:
    """An administrator's action on one user that needs nothing else (get, disable, enable, delete, sessions...)."""

    actor: Actor
    user_id: UserId


@dataclass(frozen=True, slots=True, kw_only=True)
class AdministerUser:
    """Fields left ``None`` stay as they are; names in ``clear`` (username, full_name) are removed."""

    actor: Actor
    user_id: UserId
    username: str | None = None
    full_name: str | None = None
    email: str | None = None
    email_verified: bool | None = None
    clear: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class ListUserEvents:
    actor: Actor
    user_id: UserId
    limit: int = 20
    before: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SetUserRoles:
    actor: Actor
    user_id: UserId
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRoles:
    actor: Actor


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateRole:
    actor: Actor
    name: str
    permissions: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateRole:
    actor: Actor
    name: str
    permissions: tuple[str, ...] | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteRole:
    actor: Actor
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ListAuditTrail:
    actor: Actor
    type: EventType | None = None
    actor_id: UserId | None = None
    user_id: UserId | None = None
    limit: int = 20
    before: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetStats:
    """The KPIs of the period [``from_``, ``to``); either end left out: the last 30 days ending ``to`` or now."""

    actor: Actor
    from_: datetime | None = None
    to: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BootstrapAdmin:
    """``usermgmt create-admin``: create the account with ``password``, or grant ``admin`` to the existing one."""

    email: str
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeRoleByEmail:
    """``usermgmt roles grant|revoke``."""

    email: str
    role: str
    grant: bool


# --- privacy and integration ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportData:
    """``password`` None: the calling session must have signed in recently (GET); else it is checked (POST)."""

    user_id: UserId
    session_id: SessionId
    password: str | None = field(default=None, repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreAccount:
    token: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class IntrospectToken:
    token: str = field(repr=False)
    client_id: str | None
    client_secret: str | None = field(repr=False)


# --- sign-in through identity providers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StartProviderSignIn:
    """A browser leaves for ``provider``; it will come back to ``redirect_uri`` (the frontend), whose own PKCE
    ``code_challenge`` binds the login code to the frontend that asked."""

    provider: str
    redirect_uri: str
    code_challenge: str = field(repr=False)
    code_challenge_method: str = "S256"
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class StartIdentityLink:
    user_id: UserId
    provider: str
    redirect_uri: str
    code_challenge: str = field(repr=False)
    code_challenge_method: str = "S256"
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishProviderSignIn:
    """The provider sent the browser back: ``code`` and ``state`` (or ``error``) from the query, ``browser`` the
    value of the state cookie (None: none came)."""

    provider: str
    state: str | None = field(default=None, repr=False)
    code: str | None = field(default=None, repr=False)
    error: str | None = None
    browser: str | None = field(default=None, repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class RedeemLoginCode:
    login_code: str = field(repr=False)
    code_verifier: str = field(repr=False)
    client: ClientInfo = ClientInfo()


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlinkIdentity:
    user_id: UserId
    identity_id: str
    session_id: SessionId | None = None
    client: ClientInfo = ClientInfo()
