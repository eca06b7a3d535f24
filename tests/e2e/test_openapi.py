"""/openapi.json tells clients what they get: stable operation ids, named bodies, and every error as the
problem+json it is, with the exact set of codes each response can carry, derived from the use cases' errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.e2e.conftest import PASSWORD, Signup
from tests.e2e.test_auth_flow import assert_problem
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.entrypoints.http.dependencies import current_principal
from usermgmt.entrypoints.http.errors import ERROR_STATUS
from usermgmt.entrypoints.http.routers import auth, federation, meta, users

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

OPERATION_IDS = {
    ("post", "/api/v1/auth/register"): "auth_register",
    ("post", "/api/v1/auth/login"): "auth_login",
    ("post", "/api/v1/auth/refresh"): "auth_refresh",
    ("post", "/api/v1/auth/logout"): "auth_logout",
    ("post", "/api/v1/auth/password/forgot"): "auth_password_forgot",
    ("post", "/api/v1/auth/password/reset"): "auth_password_reset",
    ("post", "/api/v1/auth/email/verify"): "auth_email_verify",
    ("post", "/api/v1/auth/email/confirm"): "auth_email_confirm",
    ("post", "/api/v1/users/me/email"): "users_me_email_change",
    ("post", "/api/v1/users/me/email/verification"): "users_me_email_verification_send",
    ("get", "/api/v1/users/me"): "users_me_get",
    ("patch", "/api/v1/users/me"): "users_me_update",
    ("delete", "/api/v1/users/me"): "users_me_delete",
    ("post", "/api/v1/users/me/password"): "users_me_password_change",
    ("get", "/api/v1/users/me/sessions"): "users_me_sessions_list",
    ("delete", "/api/v1/users/me/sessions/{session_id}"): "users_me_session_revoke",
    ("get", "/api/v1/users/me/events"): "users_me_events_list",
    ("post", "/api/v1/auth/login/mfa"): "auth_login_mfa",
    ("get", "/api/v1/users/me/mfa"): "users_me_mfa_get",
    ("post", "/api/v1/users/me/mfa/totp"): "users_me_mfa_totp_start",
    ("post", "/api/v1/users/me/mfa/totp/confirm"): "users_me_mfa_totp_confirm",
    ("delete", "/api/v1/users/me/mfa/totp"): "users_me_mfa_totp_delete",
    ("post", "/api/v1/users/me/mfa/recovery-codes"): "users_me_mfa_recovery_codes",
    ("get", "/api/v1/admin/users"): "admin_users_list",
    ("get", "/api/v1/admin/users/{user_id}"): "admin_user_get",
    ("patch", "/api/v1/admin/users/{user_id}"): "admin_user_update",
    ("delete", "/api/v1/admin/users/{user_id}"): "admin_user_delete",
    ("post", "/api/v1/admin/users/{user_id}/disable"): "admin_user_disable",
    ("post", "/api/v1/admin/users/{user_id}/enable"): "admin_user_enable",
    ("get", "/api/v1/admin/users/{user_id}/sessions"): "admin_user_sessions_list",
    ("delete", "/api/v1/admin/users/{user_id}/sessions"): "admin_user_sessions_revoke",
    ("get", "/api/v1/admin/users/{user_id}/events"): "admin_user_events_list",
    ("put", "/api/v1/admin/users/{user_id}/roles"): "admin_user_roles_set",
    ("post", "/api/v1/admin/users/{user_id}/mfa/reset"): "admin_user_mfa_reset",
    ("post", "/api/v1/admin/users/{user_id}/password-reset"): "admin_user_password_reset",
    ("get", "/api/v1/admin/roles"): "admin_roles_list",
    ("post", "/api/v1/admin/roles"): "admin_role_create",
    ("patch", "/api/v1/admin/roles/{name}"): "admin_role_update",
    ("delete", "/api/v1/admin/roles/{name}"): "admin_role_delete",
    ("get", "/api/v1/admin/events"): "admin_events_list",
    ("get", "/api/v1/admin/stats"): "admin_stats_get",
    ("get", "/api/v1/users/me/export"): "users_me_export",
    ("post", "/api/v1/users/me/export"): "users_me_export_with_password",
    ("post", "/api/v1/auth/account/restore"): "auth_account_restore",
    ("post", "/api/v1/oauth/introspect"): "oauth_introspect",
    ("get", "/api/v1/auth/oauth/providers"): "auth_oauth_providers",
    ("get", "/api/v1/auth/oauth/{provider}/authorize"): "auth_oauth_authorize",
    ("get", "/api/v1/auth/oauth/{provider}/callback"): "auth_oauth_callback",
    ("post", "/api/v1/auth/oauth/token"): "auth_oauth_token",
    ("get", "/api/v1/users/me/identities"): "users_me_identities_list",
    ("post", "/api/v1/users/me/identities/{provider}"): "users_me_identity_link",
    ("delete", "/api/v1/users/me/identities/{identity_id}"): "users_me_identity_unlink",
    ("get", "/.well-known/jwks.json"): "meta_jwks",
    ("get", "/healthz"): "meta_healthz",
    ("get", "/readyz"): "meta_readyz",
}

BODY_400 = ["bad_request", "invalid_host", "malformed_json"]
EXPECTED_CODES = {
    ("post", "/api/v1/auth/register"): {
        "400": BODY_400,
        "409": ["email_taken", "username_taken"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["invalid_email", "invalid_full_name", "invalid_username", "validation_error", "weak_password"],
        "429": ["rate_limited"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("post", "/api/v1/auth/login"): {
        "400": BODY_400,
        "401": ["invalid_credentials"],
        "403": ["account_disabled", "account_pending_deletion", "email_not_verified", "mfa_required"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["validation_error"],
        "429": ["rate_limited"],
        "500": ["internal_error"],
        "503": ["service_busy", "service_unavailable"],
    },
    ("post", "/api/v1/auth/password/forgot"): {
        "400": BODY_400,
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["invalid_email", "validation_error"],
        "429": ["rate_limited"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("post", "/api/v1/auth/password/reset"): {
        "400": ["bad_request", "invalid_email_token", "invalid_host", "malformed_json"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["validation_error", "weak_password"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("post", "/api/v1/auth/email/confirm"): {
        "400": ["bad_request", "invalid_email_token", "invalid_host", "malformed_json"],
        "409": ["email_taken"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["validation_error"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("post", "/api/v1/users/me/email"): {
        "400": BODY_400,
        "401": ["invalid_token"],
        "403": ["account_disabled", "invalid_password", "reauthentication_required"],
        "409": ["concurrent_update", "email_taken"],
        "413": ["payload_too_large"],
        "415": ["unsupported_media_type"],
        "422": ["invalid_email", "same_email", "validation_error"],
        "429": ["rate_limited"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("get", "/api/v1/users/me"): {
        "400": ["invalid_host"],
        "401": ["invalid_token"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("delete", "/api/v1/users/me/sessions/{session_id}"): {
        "400": ["invalid_host"],
        "401": ["invalid_token"],
        "404": ["session_not_found"],
        "422": ["validation_error"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("get", "/api/v1/admin/stats"): {
        "400": ["invalid_host"],
        "401": ["invalid_token"],
        "403": ["insufficient_permission"],
        "422": ["invalid_period", "validation_error"],
        "429": ["rate_limited"],
        "500": ["internal_error"],
        "503": ["service_unavailable"],
    },
    ("get", "/healthz"): {"400": ["invalid_host"], "500": ["internal_error"]},
}


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def error_responses(schema: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                yield method, path, status, response


def codes_of(response: dict[str, Any]) -> list[str]:
    problem_schema = response["content"]["application/problem+json"]["schema"]
    return list(problem_schema["allOf"][1]["properties"]["code"]["enum"])


def test_every_operation_has_its_stable_operation_id(schema: dict[str, Any]) -> None:
    assert {(m, p): op.get("operationId") for m, p, op in operations(schema)} == OPERATION_IDS


def test_every_error_is_documented_as_problem_json_only(schema: dict[str, Any]) -> None:
    checked = 0
    for method, path, status, response in error_responses(schema):
        if (method, path, status) == ("get", "/readyz", "503"):  # a health document for orchestrators, by design
            assert response["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/HealthOut"}}}
            continue
        assert set(response["content"]) == {"application/problem+json"}, (method, path, status)
        problem_schema = response["content"]["application/problem+json"]["schema"]
        assert problem_schema["allOf"][0] == PROBLEM_REF, (method, path, status)
        assert problem_schema["allOf"][1]["required"] == ["code"]
        assert codes_of(response), (method, path, status)
        checked += 1
    assert checked > 50
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code"} <= set(problem["properties"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]  # FastAPI's own 422 shape is never sent


def test_every_operation_documents_the_500(schema: dict[str, Any]) -> None:
    for method, path, operation in operations(schema):
        assert codes_of(operation["responses"]["500"]) == ["internal_error"], (method, path)


@pytest.mark.parametrize("operation", sorted(EXPECTED_CODES), ids=lambda op: " ".join(op))
def test_code_enums_hold_exactly_the_codes_a_route_can_answer(
    schema: dict[str, Any], operation: tuple[str, str]
) -> None:
    method, path = operation
    responses = schema["paths"][path][method]["responses"]

    documented = {status: codes_of(response) for status, response in responses.items() if int(status) >= 400}

    assert documented == EXPECTED_CODES[operation]


def _handlers_of(route: APIRoute) -> list[type]:
    """The use-case handlers a route depends on, read from its signature (``deps.RegisterUser`` and the like)."""
    handlers: list[type] = []
    for hint in typing.get_type_hints(route.endpoint, include_extras=True).values():
        if typing.get_origin(hint) is typing.Annotated:
            target, *metadata = typing.get_args(hint)
            if any(getattr(m, "dependency", None) is current_principal for m in metadata):
                handlers.append(AuthenticateHandler)
            elif hasattr(target, "raises"):
                handlers.append(target)
    return handlers


def test_every_error_a_routes_use_case_raises_is_documented_on_that_route(schema: dict[str, Any]) -> None:
    """The derivation holds for every route, not only the ones spelled out above: each handler a route depends on
    contributes each of its errors, with the status ERROR_STATUS gives it."""
    checked = 0
    for route in [
        *auth.router.routes,
        *users.router.routes,
        *meta.router.routes,
        *federation.router.routes,
        *federation.identities.routes,
    ]:
        assert isinstance(route, APIRoute)
        handlers = _handlers_of(route)
        for method in route.methods:
            responses = schema["paths"][route.path][method.lower()]["responses"]
            for handler in handlers:
                for error in getattr(handler, "raises", ()):
                    assert error.code in codes_of(responses[str(ERROR_STATUS[error])]), (route.path, error)
                    checked += 1
    assert checked > 30


def test_the_login_bodies_are_named_components(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/api/v1/auth/login"]["post"]["requestBody"]["content"]

    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/LoginIn"}
    assert content["application/x-www-form-urlencoded"]["schema"] == {"$ref": "#/components/schemas/LoginForm"}
    components = schema["components"]["schemas"]
    assert components["LoginIn"]["required"] == ["login", "password"]
    assert components["LoginForm"]["required"] == ["username", "password"]


async def test_the_documented_login_form_is_what_the_route_reads(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    as_docs_send_it = {"grant_type": "password", "username": account.email, "password": PASSWORD, "scope": ""}

    accepted = await client.post("/api/v1/auth/login", data=as_docs_send_it)
    missing = await client.post("/api/v1/auth/login", data={"grant_type": "password", "password": PASSWORD})

    assert accepted.status_code == 200, accepted.text
    body = assert_problem(missing, 422, "validation_error")
    assert body["errors"] == [{"loc": ["body", "username"], "msg": "Field required"}]


def test_every_reference_resolves(schema: dict[str, Any]) -> None:
    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(schema))
    assert "#/components/schemas/Problem" in found
    for ref in found:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schema["components"]["schemas"], ref


OPENAPI_TYPESCRIPT = "openapi-typescript@7.13.0"
TYPESCRIPT = "typescript@5.9.3"

# Compiles only if errors are typed as Problem with their code enums (an untyped body is `unknown` or `never`).
CLIENT_TS = """
import type { components, operations } from "./schema";

type Problem = components["schemas"]["Problem"];
type ProblemOf<Op extends keyof operations, Status extends keyof operations[Op]["responses"]> =
  operations[Op]["responses"][Status] extends { content: { "application/problem+json": infer Body } } ? Body : never;

type RegisterConflict = ProblemOf<"auth_register", 409>;
type LoginUnauthorized = ProblemOf<"auth_login", 401>;

export function explain(problem: RegisterConflict): string {
  switch (problem.code) {
    case "email_taken":
      return `email: ${problem.detail}`;
    case "username_taken":
      return `username: ${problem.detail}`;
  }
}

const asProblem: Problem = {} as RegisterConflict;
const status: number = ({} as LoginUnauthorized).status;
const code: "invalid_credentials" = ({} as LoginUnauthorized).code;
// @ts-expect-error: not a code of this response
const wrong: RegisterConflict["code"] = "invalid_credentials";
const fields: { loc: (string | number)[]; msg: string }[] | null | undefined = ({} as ProblemOf<"auth_register", 422>).errors;
export { asProblem, status, code, wrong, fields };
"""


def _npx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    npx = shutil.which("npx")
    assert npx is not None
    return subprocess.run(  # fixed arguments, no shell
        [npx, "--yes", *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.skipif(shutil.which("npx") is None, reason="npx (Node.js) is not installed: no TypeScript client to check")
async def test_a_generated_typescript_client_types_every_error(schema: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "openapi.json").write_text(json.dumps(schema))
    (tmp_path / "client.ts").write_text(CLIENT_TS)

    generated = await asyncio.to_thread(
        _npx, OPENAPI_TYPESCRIPT, "openapi.json", "--output", "schema.d.ts", cwd=tmp_path
    )
    assert generated.returncode == 0, generated.stderr
    checked = await asyncio.to_thread(
        _npx,
        "--package",
        TYPESCRIPT,
        "--",
        "tsc",
        "--noEmit",
        "--strict",
        "--noImplicitReturns",
        "--target",
        "es2022",
        "--moduleResolution",
        "bundler",
        "--module",
        "esnext",
        "client.ts",
        cwd=tmp_path,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
