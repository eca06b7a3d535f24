"""One table from error to HTTP status, and the handlers that answer every failure as problem+json."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any, ClassVar, Final, Protocol, TypeVar, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailAlreadyVerified,
    EmailNotVerified,
    EmailTaken,
    IdentityInUse,
    IdentityNotFound,
    InsufficientPermission,
    InvalidAccessToken,
    InvalidClient,
    InvalidCodeChallenge,
    InvalidCredentials,
    InvalidCursor,
    InvalidEmailToken,
    InvalidLoginCode,
    InvalidMfaCode,
    InvalidMfaToken,
    InvalidPassword,
    InvalidPeriod,
    InvalidRedirectUri,
    InvalidRefreshToken,
    LastAdmin,
    LastLoginMethod,
    MfaAlreadyEnabled,
    MfaNotEnabled,
    MfaRequired,
    NoPassword,
    NoPendingEnrolment,
    RateLimited,
    ReauthenticationRequired,
    RecentSignInRequired,
    RoleExists,
    RoleNotFound,
    ServiceBusy,
    ServiceUnavailable,
    SessionNotFound,
    UnknownProvider,
    UnknownRole,
    UsernameTaken,
    UserNotFound,
)
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.domain.errors import (
    AccountPendingDeletion,
    DomainError,
    InvalidEmail,
    InvalidFullName,
    InvalidUsername,
    SameEmail,
    SessionExpired,
    UserInactive,
    WeakPassword,
)
from usermgmt.domain.roles import InvalidRoleName, RoleProtected, UnknownPermission
from usermgmt.entrypoints.http.openapi import component_ref
from usermgmt.entrypoints.http.schemas import Problem

logger = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
# Where an answered problem leaves its code (and a rate limit its rule) in the request's scope, for the metrics.
PROBLEM_CODE_KEY: Final = "usermgmt.problem_code"
RATE_LIMIT_RULE_KEY: Final = "usermgmt.rate_limit_rule"

# Every DomainError class of usermgmt, by its exact class (a subclass needs its own entry; a test checks that none
# is missing). An error missing here is answered as 500 internal_error and logged.
ERROR_STATUS: Final[Mapping[type[DomainError], int]] = {
    InvalidEmail: 422,
    InvalidUsername: 422,
    InvalidFullName: 422,
    WeakPassword: 422,
    EmailTaken: 409,
    UsernameTaken: 409,
    ConcurrentUpdate: 409,
    InvalidCredentials: 401,
    InvalidRefreshToken: 401,
    InvalidAccessToken: 401,
    SessionExpired: 401,
    InvalidPassword: 403,
    UserInactive: 403,
    SessionNotFound: 404,
    RateLimited: 429,
    ServiceUnavailable: 503,
    ServiceBusy: 503,
    InvalidEmailToken: 400,
    SameEmail: 422,
    EmailAlreadyVerified: 409,
    EmailNotVerified: 403,
    MfaRequired: 403,
    InvalidMfaCode: 400,
    InvalidMfaToken: 401,
    MfaAlreadyEnabled: 409,
    NoPendingEnrolment: 409,
    MfaNotEnabled: 409,
    InsufficientPermission: 403,
    UserNotFound: 404,
    RoleNotFound: 404,
    RoleExists: 409,
    LastAdmin: 409,
    RoleProtected: 409,
    UnknownPermission: 422,
    UnknownRole: 422,
    InvalidRoleName: 422,
    InvalidCursor: 422,
    InvalidPeriod: 422,
    RecentSignInRequired: 403,
    InvalidClient: 401,
    AccountPendingDeletion: 403,
    UnknownProvider: 404,
    InvalidRedirectUri: 400,
    InvalidCodeChallenge: 400,
    InvalidLoginCode: 400,
    IdentityInUse: 409,
    IdentityNotFound: 404,
    LastLoginMethod: 409,
    NoPassword: 409,
    ReauthenticationRequired: 403,
}

# Codes for the framework's own HTTP errors (routing, methods, the body middleware).
HTTP_CODES: Final[Mapping[int, str]] = {
    400: "bad_request",
    401: "invalid_token",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int,
    code: str,
    detail: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
    members: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A problem+json answer; ``members`` are extension members (RFC 9457 3.2) beside the standard ones."""
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, code=code, errors=errors)
    return JSONResponse(
        {**body.model_dump(exclude_none=True), **(members or {})},
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_FIELDS_ATTR: Final = "__problem_fields__"


def field_errors(**fields: type[DomainError]) -> Callable[[Endpoint], Endpoint]:
    """Name the body field that each of a route's value errors is about, e.g. ``field_errors(email=InvalidEmail)``.

    Such an error is then answered, with its own status and ``code``, with ``errors: [{loc: ["body", field], msg:
    detail}]``, the member every other validation error carries. ``detail`` never repeats the input.
    """
    by_error = {error: name for name, error in fields.items()}

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _FIELDS_ATTR, by_error)
        return endpoint

    return mark


def _field_errors_of(request: Request, error: DomainError) -> list[dict[str, Any]] | None:
    fields: Mapping[type[DomainError], str] = getattr(request.scope.get("endpoint"), _FIELDS_ATTR, {})
    name = next((fields[cls] for cls in type(error).__mro__ if cls in fields), None)
    return [{"loc": ["body", name], "msg": error.detail}] if name is not None else None


async def handle_domain_error(request: Request, error: Exception) -> JSONResponse:
    error = cast(DomainError, error)
    status = ERROR_STATUS.get(type(error))
    if status is None:  # a bug, which tests/unit/entrypoints/test_error_table.py keeps out: never guess a 4xx
        logger.error("domain error %s has no status in ERROR_STATUS", type(error).__qualname__, exc_info=error)
        return _internal_error(request)
    request.scope[PROBLEM_CODE_KEY] = error.code
    headers: dict[str, str] = {}
    if isinstance(error, InvalidClient):
        headers["WWW-Authenticate"] = 'Basic realm="usermgmt", charset="UTF-8"'
    elif status == 401 and not isinstance(error, InvalidMfaToken):
        headers["WWW-Authenticate"] = (
            'Bearer error="invalid_token"' if isinstance(error, InvalidAccessToken) else "Bearer"
        )
    if isinstance(error, RateLimited):
        request.scope[RATE_LIMIT_RULE_KEY] = error.rule
        headers["Retry-After"] = str(error.retry_after)
        headers["RateLimit-Limit"] = str(error.limit)
        headers["RateLimit-Remaining"] = "0"
        headers["RateLimit-Reset"] = str(error.retry_after)
    if isinstance(error, ServiceBusy):  # load shedding: expected under a storm, counted by the metrics, not logged
        headers["Retry-After"] = str(error.retry_after)
    elif status == 503:
        headers["Retry-After"] = "5"
        logger.warning("service unavailable: %r", error.__cause__)
    if isinstance(error, MfaRequired):
        headers["Cache-Control"] = "no-store"  # it carries the mfa_token
    members: Mapping[str, Any] | None = getattr(error, "members", None)  # MfaRequired's, InsufficientPermission's
    return problem(
        status, error.code, error.detail, errors=_field_errors_of(request, error), headers=headers, members=members
    )


async def handle_validation_error(request: Request, error: Exception) -> JSONResponse:
    error = cast(RequestValidationError, error)
    raw = error.errors()
    if any(item.get("type") == "json_invalid" for item in raw):
        request.scope[PROBLEM_CODE_KEY] = "malformed_json"
        return problem(400, "malformed_json", "The request body is not valid JSON.")
    request.scope[PROBLEM_CODE_KEY] = "validation_error"
    # Only location and message: never the submitted input, which may be a password.
    errors = [
        {"loc": [str(p) if not isinstance(p, int) else p for p in item["loc"]], "msg": item["msg"]} for item in raw
    ]
    return problem(422, "validation_error", "The request is not valid.", errors=errors)


async def handle_http_exception(request: Request, error: Exception) -> JSONResponse:
    error = cast(StarletteHTTPException, error)
    code = HTTP_CODES.get(error.status_code, "http_error")
    request.scope[PROBLEM_CODE_KEY] = code
    detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    return problem(error.status_code, code, detail, headers=error.headers)


def _internal_error(request: Request) -> JSONResponse:
    request.scope[PROBLEM_CODE_KEY] = "internal_error"
    return problem(500, "internal_error", "An unexpected error occurred. It has been logged.")


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=error)
    return _internal_error(request)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, handle_domain_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)


class RaisingHandler(Protocol):
    """A use-case handler: the application declares the errors each one can raise."""

    raises: ClassVar[tuple[type[DomainError], ...]]


# The problems the adapter answers with itself, besides the use cases' errors: on every route (the Host allow-list,
# an unexpected error), on routes with a body (middleware.py, the JSON parser, the schemas), and on routes with path
# or query parameters.
EVERY_ROUTE_PROBLEMS: Final = ((400, "invalid_host"), (500, "internal_error"))
BODY_PROBLEMS: Final = (
    (400, "bad_request"),
    (400, "malformed_json"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "validation_error"),
)
PARAMETER_PROBLEMS: Final = ((422, "validation_error"),)


def problem_responses(
    *handlers: type[RaisingHandler], body: bool = False, parameters: bool = False, bearer: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI error responses of a route that runs ``handlers``: each status with the exact codes it can carry.

    The codes come from each handler's ``raises``, through ERROR_STATUS, and from what the adapter itself answers:
    ``body`` for a route that reads a JSON body, ``parameters`` for one with path or query parameters, ``bearer``
    for one that needs an access token (what ``AuthenticateHandler`` raises). Every route can answer
    ``invalid_host`` and ``internal_error``. Each response is problem+json: Problem, with ``code`` an enum.
    """
    raising: tuple[type[RaisingHandler], ...] = (*handlers, AuthenticateHandler) if bearer else handlers
    found = [(ERROR_STATUS[error], error.code) for handler in raising for error in handler.raises]
    found += EVERY_ROUTE_PROBLEMS
    found += BODY_PROBLEMS if body else ()
    found += PARAMETER_PROBLEMS if parameters else ()
    codes: dict[int, set[str]] = {}
    for status, code in found:
        codes.setdefault(status, set()).add(code)
    return {status: _problem_response(status, sorted(codes[status])) for status in sorted(codes)}


def _problem_response(status: int, codes: list[str]) -> dict[str, Any]:
    code_enum = {"type": "object", "properties": {"code": {"type": "string", "enum": codes}}, "required": ["code"]}
    return {
        "description": HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": {"allOf": [component_ref(Problem), code_enum]}}},
    }
