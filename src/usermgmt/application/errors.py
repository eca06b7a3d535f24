"""Expected failures raised by use cases and by adapters on their behalf (all ``DomainError``s with a stable code)."""

from __future__ import annotations

import math

from usermgmt.domain.errors import DomainError


class EmailTaken(DomainError):
    code = "email_taken"
    default_detail = "An account with this email address already exists."


class UsernameTaken(DomainError):
    code = "username_taken"
    default_detail = "This username is already taken."


class InvalidCredentials(DomainError):
    code = "invalid_credentials"
    default_detail = "The login or password is incorrect."


class InvalidRefreshToken(DomainError):
    code = "invalid_refresh_token"
    default_detail = "The refresh token is invalid, expired or already used."


class InvalidAccessToken(DomainError):
    code = "invalid_token"
    default_detail = "The access token is missing, invalid, expired or revoked."


class InvalidPassword(DomainError):
    code = "invalid_password"
    default_detail = "The password is incorrect."


class SessionNotFound(DomainError):
    code = "session_not_found"
    default_detail = "No such session."


class ConcurrentUpdate(DomainError):
    code = "concurrent_update"
    default_detail = "The account was changed by another request at the same time; try again."


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    default_detail = "A backing service is unavailable; try again shortly."


class ServiceBusy(DomainError):
    """Load shedding: the password checks already queued would make this one wait longer than the service allows
    (``USERMGMT_HASH_MAX_WAIT``). Answered at once, before any other work, so that the hashes the service did take
    finish in time and a client told to come back later does not queue behind them."""

    code = "service_busy"
    default_detail = "Too many sign-ins are being checked right now; try again shortly."

    def __init__(self, *, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"Too many sign-ins are being checked right now; try again in {self.retry_after} seconds.")


class InvalidEmailToken(DomainError):
    """One answer for every token that does not work: unknown, expired, used, or of another purpose."""

    code = "invalid_email_token"
    default_detail = "The link is invalid or has expired; ask for a new one."


class EmailAlreadyVerified(DomainError):
    code = "email_already_verified"
    default_detail = "The email address is already verified."


class EmailNotVerified(DomainError):
    code = "email_not_verified"
    default_detail = "The email address is not verified yet; a new verification email is on its way."


class MfaRequired(DomainError):
    """Not a failure of the request: the password was right, and the account asks for its second factor. Answered
    with the members a client needs for the next step (``POST /auth/login/mfa``)."""

    code = "mfa_required"
    default_detail = "Two-factor authentication is on: send a code from your authenticator app with the mfa_token."

    def __init__(self, *, mfa_token: str, methods: tuple[str, ...], expires_in: int) -> None:
        super().__init__()
        self.members = {"mfa_token": mfa_token, "mfa_methods": list(methods), "expires_in": expires_in}


class InvalidMfaCode(DomainError):
    code = "invalid_mfa_code"
    default_detail = "The code is not valid; enter the current code of your authenticator app or a recovery code."


class InvalidMfaToken(DomainError):
    """One answer for every mfa_token that does not work: unknown, expired, used, or exhausted by wrong codes."""

    code = "invalid_mfa_token"
    default_detail = "The sign-in step has expired or was used up; sign in again with your password."


class MfaAlreadyEnabled(DomainError):
    code = "mfa_already_enabled"
    default_detail = "Two-factor authentication is already on; turn it off first to enrol another app."


class NoPendingEnrolment(DomainError):
    code = "no_pending_enrolment"
    default_detail = "There is no enrolment to confirm; start one with POST /api/v1/users/me/mfa/totp."


class MfaNotEnabled(DomainError):
    code = "mfa_not_enabled"
    default_detail = "Two-factor authentication is not on for this account."


class InsufficientPermission(DomainError):
    code = "insufficient_permission"
    default_detail = "You lack the permission this needs."

    def __init__(self, permission: str) -> None:
        super().__init__(f"This needs the permission {permission!r}.")
        self.members = {"permission": permission}


class UserNotFound(DomainError):
    code = "user_not_found"
    default_detail = "No such user."


class RoleNotFound(DomainError):
    code = "role_not_found"
    default_detail = "No such role."


class RoleExists(DomainError):
    code = "role_exists"
    default_detail = "A role with this name already exists."


class UnknownRole(DomainError):
    code = "unknown_role"
    default_detail = "Unknown role."


class InvalidCursor(DomainError):
    code = "invalid_cursor"
    default_detail = "The cursor is not one this list gave out; start again without it."


class InvalidPeriod(DomainError):
    code = "invalid_period"
    default_detail = "The period is not valid: 'from' must be before 'to', and it may span at most 366 days."


class LastAdmin(DomainError):
    code = "last_admin"
    default_detail = "This is the last active administrator: grant admin to another account first."


class RecentSignInRequired(DomainError):
    """The caller's session signed in too long ago for this: sign in again (or send the password, where a route
    takes it). ``max_age`` is how recent the sign-in must be, in seconds."""

    code = "recent_sign_in_required"
    default_detail = "This needs a recent sign-in: sign in again, or send your password."

    def __init__(self, *, max_age: int) -> None:
        super().__init__(f"This needs a sign-in within the last {max_age // 60} minutes: sign in again, or send "
                         "your password.")  # fmt: skip
        self.members = {"max_age": max_age}


class InvalidClient(DomainError):
    """An introspection caller without valid HTTP Basic credentials of a listed client."""

    code = "invalid_client"
    default_detail = "Client authentication failed: send the HTTP Basic credentials of a configured client."


class RateLimited(DomainError):
    code = "rate_limited"
    default_detail = "Too many attempts; try again later."

    def __init__(self, *, retry_after: float, limit: int, rule: str) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.limit, self.rule = limit, rule
        super().__init__(f"Too many attempts; try again in {self.retry_after} seconds.")


# --- sign-in through identity providers ----------------------------------------------------------------------------


class UnknownProvider(DomainError):
    code = "unknown_provider"
    default_detail = "No identity provider of this name is configured."


class InvalidRedirectUri(DomainError):
    code = "invalid_redirect_uri"
    default_detail = "The redirect_uri is not one of the frontend addresses this service may send browsers back to."


class InvalidCodeChallenge(DomainError):
    code = "invalid_code_challenge"
    default_detail = "Send code_challenge_method=S256 and a code_challenge of 43 to 128 base64url characters."


class InvalidLoginCode(DomainError):
    """A login code that is unknown, used, expired, or redeemed with a verifier that does not match its challenge."""

    code = "invalid_login_code"
    default_detail = "The login code is invalid, used or expired, or the code_verifier does not match."


class IdentityInUse(DomainError):
    code = "identity_in_use"
    default_detail = "This provider account is already linked to another account."


class IdentityNotFound(DomainError):
    code = "identity_not_found"
    default_detail = "No linked identity of yours has this id."


class LastLoginMethod(DomainError):
    code = "last_login_method"
    default_detail = "This is the only way into the account: set a password or link another provider first."


class NoPassword(DomainError):
    code = "no_password"
    default_detail = "This account has no password yet: set one through the password reset email."


class ReauthenticationRequired(DomainError):
    """An account without a password proves the owner is present by a recent sign-in instead. ``max_age``: how
    recent, in seconds."""

    code = "reauthentication_required"
    default_detail = "Sign in again first: this needs a sign-in within the last 10 minutes."

    def __init__(self, *, max_age: int) -> None:
        super().__init__(f"Sign in again first: this needs a sign-in within the last {max_age // 60} minutes.")
        self.members = {"max_age": max_age}
