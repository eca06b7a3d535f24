"""docs/integration.md's two FastAPI dependencies, extracted from the page and run as written (only the base URL
changed) against a real usermgmt server: the JWKS one keeps accepting a token after its logout (the documented
lag), the introspection one refuses it at once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from tests.support.server import ROOT, migrate, serve, service_env

PAGE = ROOT / "docs" / "integration.md"
DOC_URL = "http://127.0.0.1:8000"
PASSWORD = "an integration test passphrase"


def snippets() -> dict[str, str]:
    """The page's Python blocks, by the heading above each."""
    found: dict[str, str] = {}
    heading = ""
    for part in re.split(r"(^## .*$)", PAGE.read_text(), flags=re.MULTILINE):
        if part.startswith("## "):
            heading = part[3:].strip()
        for block in re.findall(r"```python\n(.*?)```", part, flags=re.DOTALL):
            found[heading] = block
    return found


def app_with(code: str, base: str) -> FastAPI:
    namespace: dict[str, Any] = {}
    exec(compile(code.replace(DOC_URL, base), str(PAGE), "exec"), namespace)  # noqa: S102 - the documented code
    app = FastAPI()

    @app.get("/whoami")
    async def whoami(user: dict[str, Any] = Depends(namespace["current_user"])) -> dict[str, Any]:  # noqa: B008
        return {"sub": user["sub"], "roles": user.get("roles")}

    return app


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = service_env(
        tmp_path_factory.mktemp("integration") / "var",
        introspection_clients='{"billing": "the-billing-service-secret-0123456789"}',
    )
    migrate(env)
    with serve(env) as base:
        yield base


def test_the_page_has_both_dependencies() -> None:
    assert set(snippets()) == {"With the JWKS alone", "With introspection"}
    for code in snippets().values():
        assert len(code.strip().splitlines()) <= 20  # short enough to copy


def test_both_accept_a_live_token_and_only_introspection_refuses_a_revoked_one(service: str) -> None:
    with httpx.Client(base_url=service) as usermgmt:
        registered = usermgmt.post("/api/v1/auth/register", json={"email": "svc@example.com", "password": PASSWORD})
        assert registered.status_code == 201
        tokens = usermgmt.post("/api/v1/auth/login", json={"login": "svc@example.com", "password": PASSWORD}).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    code = snippets()
    # One event loop per client for all its requests (the `with`), as a served app has: the introspection
    # dependency's httpx client lives as long as the app.
    with (
        TestClient(app_with(code["With the JWKS alone"], service)) as jwks_only,
        TestClient(app_with(code["With introspection"], service)) as introspecting,
    ):
        for client in (jwks_only, introspecting):
            answer = client.get("/whoami", headers=bearer)
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"sub": registered.json()["id"], "roles": []}
            assert client.get("/whoami", headers={"Authorization": "Bearer garbage"}).status_code == 401
            refresh = {"Authorization": f"Bearer {tokens['refresh_token']}"}
            assert client.get("/whoami", headers=refresh).status_code == 401

        with httpx.Client(base_url=service) as usermgmt:
            assert usermgmt.post("/api/v1/auth/logout", headers=bearer).status_code == 204

        assert jwks_only.get("/whoami", headers=bearer).status_code == 200  # until it expires: the documented lag
        assert introspecting.get("/whoami", headers=bearer).status_code == 401  # at once
