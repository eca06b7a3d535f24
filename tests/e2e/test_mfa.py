"""Two-factor authentication over HTTP on PostgreSQL, with real TOTP codes computed by pyotp from the secret the
enrolment returns: enrol, confirm, the login's second step, recovery codes, replay, exhaustion, disable, regenerate,
and ``amr`` read from the tokens themselves."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.e2e.conftest import PASSWORD, Account, Signup
from tests.e2e.test_auth_flow import LOGIN, ME, REFRESH, assert_problem
from usermgmt.adapters.sqlalchemy.tables import mfa_challenges, recovery_codes, totp_credentials
from usermgmt.config import Settings

MFA = "/api/v1/users/me/mfa"
TOTP = f"{MFA}/totp"
CONFIRM = f"{MFA}/totp/confirm"
RECOVERY = f"{MFA}/recovery-codes"
LOGIN_MFA = "/api/v1/auth/login/mfa"
SESSIONS = "/api/v1/users/me/sessions"
EVENTS = "/api/v1/users/me/events"
CODE_FORMAT = re.compile(r"[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}")


def code_at(secret: str, offset_steps: int = 0) -> str:
    """The TOTP of ``secret`` ``offset_steps`` steps from now (1: the next step, still inside the window)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * offset_steps)


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


async def enrol(client: httpx.AsyncClient, account: Account) -> tuple[str, list[str]]:
    """Turn TOTP on for ``account``: its secret and its recovery codes. The confirmation uses the current step."""
    started = await client.post(TOTP, json={"password": account.password}, headers=account.auth)
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(CONFIRM, json={"code": code_at(secret)}, headers=account.auth)
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def password_step(client: httpx.AsyncClient, account: Account) -> str:
    """Log in with the password; the ``mfa_token`` of the 403 ``mfa_required`` answer."""
    answer = await client.post(LOGIN, json={"login": account.email, "password": account.password})
    body = assert_problem(answer, 403, "mfa_required")
    assert body["mfa_methods"] == ["totp", "recovery_code"]
    assert body["expires_in"] == 300
    assert "access_token" not in body and "refresh_token" not in body
    assert answer.headers["cache-control"] == "no-store"
    token = body["mfa_token"]
    assert isinstance(token, str) and len(token) >= 40
    return token


async def sent_notices(settings: Settings, template: str, *, count: int = 1) -> list[Path]:
    """The ``.eml`` files the file mailer wrote for ``template`` (waiting for the outbox worker, up to 5 s)."""
    for _ in range(100):
        found = sorted((settings.data_dir / "mail").glob(f"*-{template}-*.eml"))
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {template} notice was written")


async def test_enrol_confirm_and_sign_in_with_a_totp_code(
    client: httpx.AsyncClient, signup: Signup, settings: Settings
) -> None:
    account = await signup()
    other = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert (await client.get(MFA, headers=account.auth)).json() == {
        "totp_enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
    }

    started = await client.post(TOTP, json={"password": PASSWORD}, headers=account.auth)
    assert started.status_code == 200
    assert started.headers["cache-control"] == "no-store"
    body = started.json()
    assert body["otpauth_uri"].startswith("otpauth://totp/usermgmt:")
    assert "issuer=usermgmt" in body["otpauth_uri"] and f"secret={body['secret']}" in body["otpauth_uri"]
    assert body["qr_svg"].lstrip().startswith("<svg") and "<script" not in body["qr_svg"]
    assert pyotp.parse_uri(body["otpauth_uri"]).secret == body["secret"]
    # Pending: login still needs the password only, and the status says off.
    assert (await client.get(MFA, headers=account.auth)).json()["totp_enabled"] is False

    assert_problem(await client.post(CONFIRM, json={"code": "000000"}, headers=account.auth), 400, "invalid_mfa_code")
    confirmed = await client.post(CONFIRM, json={"code": code_at(body["secret"])}, headers=account.auth)
    assert confirmed.status_code == 200, confirmed.text
    codes = confirmed.json()["recovery_codes"]
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(CODE_FORMAT.fullmatch(code) for code in codes)
    status = (await client.get(MFA, headers=account.auth)).json()
    assert status["totp_enabled"] is True and status["enabled_at"] is not None
    assert status["recovery_codes_left"] == 10
    # Turning TOTP on ended every other session of the account, not this one.
    other_tokens = other.json()
    assert_problem(
        await client.post(REFRESH, json={"refresh_token": other_tokens["refresh_token"]}), 401, "invalid_refresh_token"
    )
    assert (await client.get(ME, headers=account.auth)).status_code == 200
    assert_problem(
        await client.post(CONFIRM, json={"code": code_at(body["secret"])}, headers=account.auth),
        409,
        "no_pending_enrolment",
    )
    assert_problem(
        await client.post(TOTP, json={"password": PASSWORD}, headers=account.auth), 409, "mfa_already_enabled"
    )
    await sent_notices(settings, "mfa_enabled")

    mfa_token = await password_step(client, account)
    signed_in = await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": code_at(body["secret"], 1)})
    assert signed_in.status_code == 200, signed_in.text
    tokens = signed_in.json()
    assert claims(tokens["access_token"])["amr"] == ["pwd", "otp"]
    assert claims(account.tokens["access_token"])["amr"] == ["pwd"]
    # The session keeps its amr: a refreshed token carries it, and the session list shows it.
    refreshed = await client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]})
    assert claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"]
    auth = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    listed = (await client.get(SESSIONS, headers=auth)).json()
    assert sorted(s["amr"] for s in listed) == [["pwd"], ["pwd", "otp"]]
    # The mfa_token died with its use.
    assert_problem(
        await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": code_at(body["secret"])}),
        401,
        "invalid_mfa_token",
    )
    kinds = [e["type"] for e in (await client.get(EVENTS, headers=auth)).json()["items"]]
    assert "mfa_enabled" in kinds and kinds.count("login_succeeded") >= 2


async def test_a_used_time_step_is_refused(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    secret, _ = await enrol(client, account)  # used the current step

    replay = await client.post(
        LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": code_at(secret)}
    )
    assert_problem(replay, 400, "invalid_mfa_code")
    mfa_token = await password_step(client, account)
    next_step = code_at(secret, 1)
    assert (await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": next_step})).status_code == 200
    again = await client.post(LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": next_step})
    assert_problem(again, 400, "invalid_mfa_code")


async def test_a_recovery_code_signs_in_once(client: httpx.AsyncClient, signup: Signup, settings: Settings) -> None:
    account = await signup()
    _, codes = await enrol(client, account)
    typed = codes[0].replace("-", "").upper()  # any case, dash or not

    first = await client.post(LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": typed})
    assert first.status_code == 200, first.text
    assert claims(first.json()["access_token"])["amr"] == ["pwd", "otp"]
    second = await client.post(LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": codes[0]})
    assert_problem(second, 400, "invalid_mfa_code")

    auth = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert (await client.get(MFA, headers=auth)).json()["recovery_codes_left"] == 9
    used = [e for e in (await client.get(EVENTS, headers=auth)).json()["items"] if e["type"] == "recovery_code_used"]
    assert len(used) == 1 and used[0]["details"]["codes_left"] == 9
    notice = (await sent_notices(settings, "recovery_code_used"))[0].read_text()
    assert "9 recovery codes left" in notice


async def test_wrong_codes_exhaust_the_mfa_token(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    secret, _ = await enrol(client, account)
    mfa_token = await password_step(client, account)

    for wrong in ("000000", "111111", "abcde-fghjk", "12345", "222222"):
        assert_problem(
            await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": wrong}), 400, "invalid_mfa_code"
        )
    exhausted = await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": code_at(secret, 1)})
    assert_problem(exhausted, 401, "invalid_mfa_token")
    # Starting again with the password works.
    fresh = await client.post(
        LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": code_at(secret, 1)}
    )
    assert fresh.status_code == 200, fresh.text
    assert_problem(
        await client.post(LOGIN_MFA, json={"mfa_token": "x" * 43, "code": "123456"}), 401, "invalid_mfa_token"
    )


async def test_wrong_codes_count_against_the_accounts_login_throttle(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    await enrol(client, account)
    # 10 password checks per account and IP per 15 minutes. A password step that needs a second one keeps its
    # slot until the code is right, and each wrong code takes one more.
    answers = []
    for _ in range(4):
        mfa_token = await password_step(client, account)
        for _ in range(2):
            answer = await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": "000000"})
            answers.append(answer.status_code)
    assert answers == [400] * 6 + [429, 429]
    assert_problem(await client.post(LOGIN, json={"login": account.email, "password": PASSWORD}), 429, "rate_limited")


async def test_disable_with_the_password_and_a_code(
    client: httpx.AsyncClient, signup: Signup, settings: Settings
) -> None:
    account = await signup()
    _, codes = await enrol(client, account)

    wrong_password = await client.request(
        "DELETE", TOTP, json={"password": "not it at all", "code": codes[0]}, headers=account.auth
    )
    assert_problem(wrong_password, 403, "invalid_password")
    wrong_code = await client.request(
        "DELETE", TOTP, json={"password": PASSWORD, "code": "000000"}, headers=account.auth
    )
    assert_problem(wrong_code, 400, "invalid_mfa_code")
    disabled = await client.request("DELETE", TOTP, json={"password": PASSWORD, "code": codes[0]}, headers=account.auth)
    assert disabled.status_code == 204, disabled.text

    assert (await client.get(MFA, headers=account.auth)).json() == {
        "totp_enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
    }
    login = await client.post(LOGIN, json={"login": account.email, "password": PASSWORD})
    assert login.status_code == 200 and claims(login.json()["access_token"])["amr"] == ["pwd"]
    again = await client.request("DELETE", TOTP, json={"password": PASSWORD, "code": codes[1]}, headers=account.auth)
    assert_problem(again, 409, "mfa_not_enabled")
    await sent_notices(settings, "mfa_disabled")


async def test_regenerated_codes_replace_the_old_set(
    client: httpx.AsyncClient, signup: Signup, settings: Settings
) -> None:
    account = await signup()
    _, old = await enrol(client, account)

    regenerated = await client.post(RECOVERY, json={"password": PASSWORD, "code": old[0]}, headers=account.auth)
    assert regenerated.status_code == 200, regenerated.text
    new = regenerated.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)

    stale = await client.post(LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": old[1]})
    assert_problem(stale, 400, "invalid_mfa_code")
    fresh = await client.post(LOGIN_MFA, json={"mfa_token": await password_step(client, account), "code": new[0]})
    assert fresh.status_code == 200
    await sent_notices(settings, "recovery_codes_regenerated")


async def test_the_database_holds_neither_the_secret_nor_the_codes(
    client: httpx.AsyncClient, signup: Signup, engine: AsyncEngine
) -> None:
    account = await signup()
    secret, codes = await enrol(client, account)
    await password_step(client, account)  # an open challenge

    async with engine.connect() as connection:
        sealed = (await connection.execute(select(totp_credentials.c.sealed_secret))).scalar_one()
        digests = (await connection.execute(select(recovery_codes.c.digest))).scalars().all()
        challenge = (await connection.execute(select(mfa_challenges.c.digest))).scalar_one()
    assert secret not in sealed and secret.lower() not in sealed.lower()
    assert sealed.startswith("v1.")
    assert len(digests) == 10
    for code in codes:
        assert all(code.replace("-", "") not in digest for digest in digests)
    assert len(challenge) == 64


async def test_a_password_change_keeps_totp_on(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    await enrol(client, account)
    changed = await client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "another fine passphrase"},
        headers=account.auth,
    )
    assert changed.status_code == 204, changed.text
    account.password = "another fine passphrase"
    assert (await client.get(MFA, headers=account.auth)).json()["totp_enabled"] is True
    await password_step(client, account)


async def test_an_mfa_token_dies_with_a_password_change(client: httpx.AsyncClient, signup: Signup) -> None:
    account = await signup()
    secret, _ = await enrol(client, account)
    mfa_token = await password_step(client, account)
    changed = await client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "another fine passphrase"},
        headers=account.auth,
    )
    assert changed.status_code == 204
    late = await client.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": code_at(secret, 1)})
    assert_problem(late, 401, "invalid_credentials")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"mfa_token": "t"},
        {"code": "123456"},
        {"mfa_token": "t", "code": "1" * 65},
        {"mfa_token": "t", "code": "1", "x": 1},
    ],
)
async def test_bad_second_step_bodies_are_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert_problem(await client.post(LOGIN_MFA, json=body), 422, "validation_error")
