"""Access tokens as other services see them: JWKS, claims, rotation, and forgeries the API refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives.asymmetric import ec
from dependency_injector import providers
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Signup, client_for, make_container, make_settings
from tests.e2e.test_auth_flow import LOGIN, ME, REGISTER, assert_problem
from usermgmt.adapters.keys import SigningKey
from usermgmt.adapters.memory import FrozenClock
from usermgmt.adapters.system import SystemClock
from usermgmt.entrypoints.http.app import create_app


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, payload, _ = token.split(".")
    return (json.loads(base64.urlsafe_b64decode(header + "==")), json.loads(base64.urlsafe_b64decode(payload + "==")))


async def test_jwks_publishes_the_key_that_signs_access_tokens(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()

    response = await client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    keys = response.json()["keys"]
    assert all(k["kty"] == "EC" and k["alg"] == "ES256" and "d" not in k for k in keys)
    header, claims = segments(account.tokens["access_token"])
    assert header["alg"] == "ES256" and header["kid"] in {k["kid"] for k in keys}
    assert {"iss", "aud", "sub", "sid", "jti", "iat", "exp"} <= claims.keys()
    assert claims["sub"] == account.user["id"]
    assert claims["exp"] - claims["iat"] == 900
    signing_key = jwt.PyJWK(next(k for k in keys if k["kid"] == header["kid"]))
    verified = jwt.decode(
        account.tokens["access_token"], signing_key, algorithms=["ES256"], audience="usermgmt", issuer="usermgmt"
    )
    assert verified["sid"] == claims["sid"]


async def test_forged_tokens_are_refused(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    header, claims = segments(account.tokens["access_token"])
    jwks = (await client.get("/.well-known/jwks.json")).json()
    public_jwk = json.dumps(jwks["keys"][0]).encode()

    def mac(alg_header: dict[str, object], body: dict[str, object], secret: bytes) -> str:
        signing_input = f"{b64(json.dumps(alg_header).encode())}.{b64(json.dumps(body).encode())}"
        return f"{signing_input}.{b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())}"

    other_key = ec.generate_private_key(ec.SECP256R1())
    forgeries: dict[str, str] = {
        "alg none": f"{b64(json.dumps({'alg': 'none', 'kid': header['kid']}).encode())}.{b64(json.dumps(claims).encode())}.",
        "HS256 with the public JWK": mac({"alg": "HS256", "kid": header["kid"]}, claims, public_jwk),
        "signed by another key": jwt.encode(claims, other_key, algorithm="ES256", headers={"kid": str(header["kid"])}),
        "wrong audience": jwt.encode({**claims, "aud": "other"}, other_key, algorithm="ES256"),
        "tampered payload": ".".join(
            [
                account.tokens["access_token"].split(".")[0],
                b64(json.dumps({**claims, "sub": "00000000-0000-0000-0000-000000000000"}).encode()),
                account.tokens["access_token"].split(".")[2],
            ]
        ),
    }
    for name, token in forgeries.items():
        response = await client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
        assert_problem(response, 401, "invalid_token")


async def test_rotation_publishes_both_keys_and_old_tokens_keep_working(
    database_url: str, tmp_path: Path, clean_database: AsyncEngine
) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    old, new = SigningKey.generate(), SigningKey.generate()
    (keys_dir / "2026-01-01.pem").write_bytes(old.private_pem())
    settings = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir, signing_key_autogenerate=False)

    app = create_app(make_container(settings))
    async with LifespanManager(app), client_for(app) as client:
        await client.post(REGISTER, json={"email": "rot@example.com", "password": PASSWORD})
        old_token = (await client.post(LOGIN, json={"login": "rot@example.com", "password": PASSWORD})).json()

    (keys_dir / "2026-06-01.pem").write_bytes(new.private_pem())  # rotation: add the new key, restart
    app = create_app(make_container(settings))
    async with LifespanManager(app), client_for(app) as client:
        kids = [k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]]
        new_token = (await client.post(LOGIN, json={"login": "rot@example.com", "password": PASSWORD})).json()
        still_valid = await client.get(ME, headers={"Authorization": f"Bearer {old_token['access_token']}"})

    assert set(kids) == {old.kid, new.kid}
    assert segments(old_token["access_token"])[0]["kid"] == old.kid
    assert segments(new_token["access_token"])[0]["kid"] == new.kid
    assert still_valid.status_code == 200


async def test_expired_access_token_is_refused(
    database_url: str, tmp_path: Path, keys_dir: Path, clean_database: AsyncEngine
) -> None:
    settings = make_settings(database_url, tmp_path, signing_keys_dir=keys_dir)
    container = make_container(settings)
    past = FrozenClock(SystemClock().now())
    container.clock.override(providers.Object(past))
    app = create_app(container)
    async with LifespanManager(app), client_for(app) as client:
        await client.post(REGISTER, json={"email": "old@example.com", "password": PASSWORD})
        past.advance(-timedelta(minutes=16))
        tokens = (await client.post(LOGIN, json={"login": "old@example.com", "password": PASSWORD})).json()
        past.advance(timedelta(minutes=16))
        response = await client.get(ME, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert_problem(response, 401, "invalid_token")
    assert segments(tokens["access_token"])[1]["exp"] < time.time()  # type: ignore[operator]
