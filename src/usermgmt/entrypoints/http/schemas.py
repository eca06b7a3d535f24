"""Request and response bodies. Requests forbid unknown fields, bound every string and refuse NUL characters."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_no_nul)

# Generous bounds for transport; the domain applies the precise rules (and says which one failed).
EmailText = Annotated[str, Field(min_length=1, max_length=320), NoNul]
LoginText = Annotated[str, Field(min_length=1, max_length=320), NoNul]
SecretText = Annotated[str, Field(min_length=1, max_length=1024), NoNul]
UsernameText = Annotated[str, Field(max_length=64), NoNul]
NameText = Annotated[str, Field(max_length=256), NoNul]
TokenText = Annotated[str, Field(min_length=1, max_length=512), NoNul]


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class RegisterIn(RequestModel):
    email: EmailText
    password: SecretText = Field(repr=False)
    username: UsernameText | None = None
    full_name: NameText | None = None


class LoginIn(RequestModel):
    login: LoginText = Field(description="Email address or username.")
    password: SecretText = Field(repr=False)


class LoginForm(BaseModel):
    """The login body as the OAuth2 password grant's form (RFC 6749 4.3.2) that /docs sends. Its other fields
    (``grant_type``, ``scope``, ``client_id``, ``client_secret``) are ignored."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    username: LoginText = Field(description="Email address or username.")
    password: SecretText = Field(repr=False, json_schema_extra={"format": "password"})


class RefreshIn(RequestModel):
    refresh_token: TokenText = Field(repr=False)


class ProfilePatch(RequestModel):
    """Username and full name. The email address is not here: it changes through POST /users/me/email."""

    username: UsernameText | None = Field(None, description="New username, or null to remove it.")
    full_name: NameText | None = Field(None, description="New full name, or null to remove it.")


class ChangePasswordIn(RequestModel):
    current_password: SecretText = Field(repr=False)
    new_password: SecretText = Field(repr=False)


class DeleteAccountIn(RequestModel):
    password: SecretText | None = Field(
        None,
        repr=False,
        description="The current password; an account without one (has_password false) sends none and needs a "
        "sign-in within the last 10 minutes instead.",
    )


class EmailTokenIn(RequestModel):
    token: TokenText = Field(repr=False, description="The `token` of the link in the email.")


class EmailChangeIn(RequestModel):
    new_email: EmailText
    password: SecretText | None = Field(
        None,
        repr=False,
        description="The current password; an account without one (has_password false) sends none and needs a "
        "sign-in within the last 10 minutes instead.",
    )


class EmailSentOut(BaseModel):
    detail: str = Field(description="What was sent, and where.")


class ForgotPasswordIn(RequestModel):
    email: EmailText


class ResetPasswordIn(RequestModel):
    token: TokenText = Field(repr=False, description="The `token` of the link in the reset email.")
    new_password: SecretText = Field(repr=False)


class ForgotPasswordOut(BaseModel):
    detail: str = Field(description="The same text for every address, whether or not an account has it.")


class UserOut(BaseModel):
    id: UUID
    email: str
    username: str | None
    full_name: str | None
    email_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    pending_email: str | None = Field(
        description="An address change waiting for confirmation from the new mailbox; null when none is."
    )
    has_password: bool = Field(
        description="False for an account made through an identity provider, until a password reset sets one."
    )


class TokenPairOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a token type, not a secret
    expires_in: int = Field(description="Access token lifetime in seconds.")
    refresh_token: str
    refresh_expires_in: int = Field(description="Refresh token lifetime in seconds.")


class SessionOut(BaseModel):
    id: UUID
    amr: list[str] = Field(description='How the session was signed in to (RFC 8176): ["pwd"], ["pwd", "otp"].')
    authenticated_at: datetime
    created_at: datetime
    last_used_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool
    sign_in_method: str = Field(description="`password`, or the identity provider signed in through (`google`...).")


CodeText = Annotated[str, Field(min_length=1, max_length=64), NoNul]


class LoginMfaIn(RequestModel):
    mfa_token: TokenText = Field(repr=False, description="The `mfa_token` of the login's `mfa_required` answer.")
    code: CodeText = Field(repr=False, description="A 6-digit code of the authenticator app, or a recovery code.")


class PasswordIn(RequestModel):
    password: SecretText = Field(repr=False, description="The current password.")


class MfaCodeIn(RequestModel):
    code: CodeText = Field(repr=False, description="A 6-digit code of the authenticator app.")


class ReauthIn(RequestModel):
    password: SecretText | None = Field(
        None,
        repr=False,
        description="The current password; an account without one (has_password false) sends none and needs a "
        "sign-in within the last 10 minutes instead.",
    )


class PasswordAndCodeIn(RequestModel):
    password: SecretText | None = Field(
        None,
        repr=False,
        description="The current password; an account without one (has_password false) sends none and needs a "
        "sign-in within the last 10 minutes instead.",
    )
    code: CodeText = Field(repr=False, description="A 6-digit code of the authenticator app, or a recovery code.")


class MfaStatusOut(BaseModel):
    totp_enabled: bool
    enabled_at: datetime | None = Field(description="When TOTP was turned on; null while it is off.")
    recovery_codes_left: int


class TotpEnrolmentOut(BaseModel):
    secret: str = Field(description="The base32 secret, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="The otpauth://totp/ URI apps enrol from.")
    qr_svg: str = Field(description="A QR code of otpauth_uri, as an SVG document.")


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Shown once: each works once, as xxxxx-xxxxx (dash optional).")


class ErasedOut(BaseModel):
    what: str
    count: int


class DeletionReceiptOut(BaseModel):
    user_id: UUID
    deleted_at: datetime
    erased: list[ErasedOut]


class EventOut(BaseModel):
    id: str
    type: str
    at: datetime
    ip: str | None
    user_agent: str | None
    session_id: UUID | None
    details: dict[str, Any]


class EventPageOut(BaseModel):
    items: list[EventOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


# --- administration ------------------------------------------------------------------------------------------------

RoleNameText = Annotated[str, Field(min_length=1, max_length=64), NoNul]
PermissionText = Annotated[str, Field(min_length=1, max_length=64), NoNul]
DescriptionText = Annotated[str, Field(max_length=256), NoNul]


class AdminUserOut(UserOut):
    roles: list[str] = Field(description="The names of the user's roles.")


class AdminUserDetailOut(AdminUserOut):
    last_sign_in_at: datetime | None = Field(description="The newest sign-in the security history still holds.")
    mfa: MfaStatusOut


class UserPageOut(BaseModel):
    items: list[AdminUserOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class AdminUserPatch(RequestModel):
    """Fields left out stay as they are."""

    username: UsernameText | None = Field(None, description="New username, or null to remove it.")
    full_name: NameText | None = Field(None, description="New full name, or null to remove it.")
    email: EmailText | None = Field(
        None, description="New address, set as verified (no link); the old address is told. Not null."
    )
    email_verified: bool | None = Field(None, description="Mark the address verified or not. Not null.")


class RolesIn(RequestModel):
    roles: list[RoleNameText] = Field(max_length=50, description="Every role the user is to hold; [] for none.")


class UserRolesOut(BaseModel):
    roles: list[str]


class RoleOut(BaseModel):
    name: str
    description: str
    permissions: list[str]
    builtin: bool = Field(description="The built-in admin role: every permission; cannot be changed or deleted.")
    created_at: datetime
    updated_at: datetime


class RoleIn(RequestModel):
    name: RoleNameText = Field(description="1-32 of a-z, 0-9, '_' and '-', starting with a letter.")
    permissions: list[PermissionText] = Field(max_length=50)
    description: DescriptionText = ""


class RolePatch(RequestModel):
    permissions: list[PermissionText] | None = Field(None, max_length=50)
    description: DescriptionText | None = None


class AdminEventOut(EventOut):
    user_id: UUID | None = Field(description="The account it happened to; null for one erased since, or none.")
    actor_id: UUID | None = Field(description="The administrator who acted, when it was not the account's owner.")
    request_id: str | None


class AdminEventPageOut(BaseModel):
    items: list[AdminEventOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next (older) page; null at the end.")


class DayCountOut(BaseModel):
    day: date = Field(description="A UTC date.")
    registrations: int


class StatsOut(BaseModel):
    """The KPIs of the period [from, to), as docs/operations.md defines them. A rate (0 to 1) or a mean is null
    when the period holds nothing to divide by."""

    from_: datetime = Field(serialization_alias="from", description="The period's start (included), UTC.")
    to: datetime = Field(description="The period's end (excluded), UTC.")
    registrations: int = Field(description="`registered` events in the period.")
    registrations_per_day: float = Field(description="registrations / the period's length in days.")
    registrations_by_day: list[DayCountOut] = Field(description="registrations per UTC date the period touches.")
    sign_in_attempts: int = Field(description="`login_succeeded` + `login_failed` (rate-limited requests are neither).")
    sign_ins_succeeded: int = Field(description="`login_succeeded`: completed sign-ins (a 2FA one counts once).")
    login_success_rate: float | None = Field(description="sign_ins_succeeded / sign_in_attempts.")
    authentication_latency_ms: float | None = Field(
        description="Mean server-side time of a sign-in attempt (its last step), in milliseconds."
    )
    users_total: int = Field(description="Accounts now.")
    users_with_mfa: int = Field(description="Accounts now with a confirmed TOTP authenticator.")
    mfa_adoption: float | None = Field(description="users_with_mfa / users_total, now.")
    retention_cohort: int = Field(description="Accounts registered in [from, to - 7 days) that still exist.")
    retained_7d: int = Field(description="Those of the cohort active 7 days or more after registering, before to.")
    retention_7d: float | None = Field(description="retained_7d / retention_cohort.")
    password_resets: int = Field(description="`password_reset` events in the period.")
    password_reset_median_seconds: float | None = Field(
        description="Median seconds from the account's latest `password_reset_requested` to `password_reset`."
    )
    deletions: int = Field(description="Accounts erased in the period (`account_deleted`).")
    deletions_within_24h: int = Field(description="Those erased at most 24 hours after they were due.")
    deletions_overdue: int = Field(description="Accounts whose erasure fell due in the period and is 24 hours late.")
    deletions_within_24h_rate: float | None = Field(
        description="deletions_within_24h / (deletions + deletions_overdue)."
    )


# --- privacy and integration ---------------------------------------------------------------------------------------


class ErasureScheduledOut(BaseModel):
    erasure_at: datetime = Field(description="When the account will be erased, unless restored with the emailed link.")


class ExportProfileOut(BaseModel):
    id: UUID
    email: str
    username: str | None
    full_name: str | None
    email_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime
    pending_email: str | None
    has_password: bool


class ExportSessionOut(BaseModel):
    id: UUID
    amr: list[str]
    authenticated_at: datetime
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    sign_in_method: str


class ExportOut(BaseModel):
    """docs/schemas/export-v1.schema.json: everything the service holds about the account, without a secret."""

    format: Literal["usermgmt.export"] = "usermgmt.export"
    version: Literal[1] = 1
    exported_at: datetime
    profile: ExportProfileOut
    roles: list[str]
    two_factor: MfaStatusOut
    sessions: list[ExportSessionOut]
    identities: list[IdentityOut]
    security_events: list[EventOut]


class IntrospectionOut(BaseModel):
    """RFC 7662 2.2. An inactive token gets ``{"active": false}`` and nothing else."""

    active: bool
    token_type: Literal["access_token"] | None = None
    sub: str | None = None
    sid: str | None = None
    exp: int | None = None
    iat: int | None = None
    iss: str | None = None
    aud: str | None = None
    amr: list[str] | None = None
    auth_time: int | None = None
    roles: list[str] | None = Field(None, description="The roles the token names (as fresh as the token).")
    username: str | None = None


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details, plus a stable machine-readable ``code``."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldError] | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]


class Jwk(BaseModel):
    kty: str
    crv: str
    x: str
    y: str
    kid: str
    use: str
    alg: str


class JwksOut(BaseModel):
    keys: list[Jwk]


# --- sign-in through identity providers ----------------------------------------------------------------------------

ChallengeText = Annotated[str, Field(min_length=1, max_length=128), NoNul]


class LoginCodeIn(RequestModel):
    login_code: TokenText = Field(repr=False, description="The `login_code` the callback sent the browser back with.")
    code_verifier: Annotated[str, Field(min_length=1, max_length=128), NoNul] = Field(
        repr=False, description="The PKCE verifier whose S256 challenge started the sign-in."
    )


class IdentityLinkIn(RequestModel):
    redirect_uri: Annotated[str, Field(min_length=1, max_length=2048), NoNul] = Field(
        description="Where the browser comes back to, with `?linked={provider}` or `?error=`: one of "
        "USERMGMT_OAUTH_REDIRECT_URIS."
    )
    code_challenge: ChallengeText = Field(repr=False, description="The frontend's PKCE S256 challenge.")
    code_challenge_method: Literal["S256"] = "S256"


class ProvidersOut(BaseModel):
    providers: list[str] = Field(
        description="The configured identity providers, by name (`google`, `facebook`, an OIDC provider's `name`)."
    )


class AuthorizationUrlOut(BaseModel):
    authorization_url: str = Field(description="Send the browser there (the provider's sign-in page).")


class IdentityOut(BaseModel):
    id: UUID
    provider: str
    email: str | None = Field(description="The address the provider gave at the last sign-in through it.")
    created_at: datetime
    last_used_at: datetime
