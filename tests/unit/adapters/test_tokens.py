"""JoseAccessTokenService: ES256 access tokens, algorithm pinned, risky headers refused, keys rotated."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from usermgmt.adapters.keys import KeyRing, SigningKey
from usermgmt.adapters.memory import FrozenClock
from usermgmt.adapters.system import SystemClock
from usermgmt.adapters.tokens import JoseAccessTokenService
from usermgmt.application.errors import InvalidAccessToken
from usermgmt.domain.model import Session
from usermgmt.domain.value_objects import AuthMethod, RefreshTokenHash, SessionId, UserId

ISSUER = "https://auth.example.com"
AUDIENCE = "usermgmt-api"
TTL = timedelta(minutes=15)
USER_ID = UserId(UUID("0190f2b4-0000-7000-8000-000000000001"))
SESSION_ID = SessionId(UUID("0190f2b4-0000-7000-8000-000000000002"))


def session(
    *, authenticated_at: datetime | None = None, amr: tuple[AuthMethod, ...] = (AuthMethod.PASSWORD,)
) -> Session:
    return Session.start(
        id=SESSION_ID,
        user_id=USER_ID,
        refresh_token_hash=RefreshTokenHash("x"),
        amr=amr,
        now=authenticated_at or datetime.now(UTC),
        lifetime=timedelta(days=1),
        user_agent=None,
        ip=None,
    )


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def service(key: SigningKey) -> JoseAccessTokenService:
    return make_service(KeyRing(keys=(key,)))


def make_service(
    ring: KeyRing, *, issuer: str = ISSUER, audience: str = AUDIENCE, clock: Any = None
) -> JoseAccessTokenService:
    return JoseAccessTokenService(keyring=ring, issuer=issuer, audience=audience, ttl=TTL, clock=clock or SystemClock())


# --- crafting tokens by hand -----------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def es256_signature(private_key: ec.EllipticCurvePrivateKey, signing_input: bytes) -> bytes:
    r, s = decode_dss_signature(private_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def craft(header: dict[str, Any], claims: dict[str, Any], private_key: ec.EllipticCurvePrivateKey) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64url(es256_signature(private_key, signing_input.encode()))}"


def craft_hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def good_header(key: SigningKey) -> dict[str, Any]:
    return {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}


def good_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(USER_ID),
        "sid": str(SESSION_ID),
        "jti": "a-unique-token-id",
        "iat": now,
        "exp": now + 600,
        "amr": ["pwd"],
        "auth_time": now - 60,
    }
    claims.update(overrides)
    return claims


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != name}


def rejects(service: JoseAccessTokenService, token: Any) -> bool:
    try:
        service.verify(token)
    except InvalidAccessToken:
        return True
    return False


# --- issue / verify --------------------------------------------------------------------------------------------


def test_issue_then_verify_round_trip(service: JoseAccessTokenService) -> None:
    before = datetime.now(UTC)
    issued = service.issue(session())

    claims = service.verify(issued.token)

    assert issued.expires_in == int(TTL.total_seconds())
    assert claims.user_id == USER_ID
    assert claims.session_id == SESSION_ID
    assert claims.expires_at.tzinfo is not None
    assert claims.expires_at.utcoffset() == timedelta(0)
    assert before + TTL - timedelta(seconds=2) <= claims.expires_at <= datetime.now(UTC) + TTL
    assert claims.amr == (AuthMethod.PASSWORD,)


def test_the_token_carries_how_and_when_its_session_began(service: JoseAccessTokenService) -> None:
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    token = service.issue(session(authenticated_at=began, amr=(AuthMethod.PASSWORD, AuthMethod.OTP))).token

    claims = service.verify(token)

    assert claims.amr == (AuthMethod.PASSWORD, AuthMethod.OTP)
    assert claims.auth_time == began
    raw = pyjwt.decode(token, options={"verify_signature": False})
    assert (raw["amr"], raw["auth_time"]) == (["pwd", "otp"], int(began.timestamp()))


def test_token_claims_and_header(key: SigningKey) -> None:
    clock = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    token = make_service(KeyRing(keys=(key,)), clock=clock).issue(session(authenticated_at=clock.now())).token

    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})

    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}
    assert set(claims) == {"iss", "aud", "sub", "sid", "jti", "iat", "exp", "amr", "auth_time", "roles"}
    assert (claims["amr"], claims["auth_time"]) == (["pwd"], int(clock.now().timestamp()))
    assert claims["roles"] == []  # none granted: an empty list, so a service can always read it
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == str(USER_ID)
    assert claims["sid"] == str(SESSION_ID)
    assert claims["iat"] == int(clock.now().timestamp())
    assert claims["exp"] == claims["iat"] + int(TTL.total_seconds())
    assert len(claims["jti"]) >= 22


def test_a_token_names_the_roles_it_was_issued_with(service: JoseAccessTokenService) -> None:
    token = service.issue(session(), ["admin", "support"]).token

    assert pyjwt.decode(token, options={"verify_signature": False})["roles"] == ["admin", "support"]
    assert service.verify(token).user_id == USER_ID  # our own API reads permissions fresh, not from the claim


def test_every_token_has_a_fresh_jti(service: JoseAccessTokenService) -> None:
    ids = {pyjwt.decode(service.issue(session()).token, options={"verify_signature": False})["jti"] for _ in range(20)}
    assert len(ids) == 20


def test_pyjwt_verifies_our_token_with_the_published_jwks(key: SigningKey, service: JoseAccessTokenService) -> None:
    token = service.issue(session()).token
    jwks = KeyRing(keys=(key,)).jwks()
    public = pyjwt.PyJWK(jwks["keys"][0])

    claims = pyjwt.decode(token, key=public, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER)

    assert public.key_id == key.kid
    assert claims["sub"] == str(USER_ID)
    stranger = pyjwt.PyJWK(dict(SigningKey.generate().public_jwk))
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, key=stranger, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER)


def test_hand_crafted_token_with_our_key_is_accepted(key: SigningKey, service: JoseAccessTokenService) -> None:
    """The control for the rejection tests below: the crafting helpers themselves produce valid tokens."""
    claims = service.verify(craft(good_header(key), good_claims(), key.private_key))
    assert (claims.user_id, claims.session_id, claims.amr) == (USER_ID, SESSION_ID, (AuthMethod.PASSWORD,))


def test_audience_list_containing_ours_is_accepted(key: SigningKey, service: JoseAccessTokenService) -> None:
    token = craft(good_header(key), good_claims(aud=["other-api", AUDIENCE]), key.private_key)
    assert service.verify(token).user_id == USER_ID


# --- rejections ------------------------------------------------------------------------------------------------


def test_alg_none_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{segment({'alg': alg, 'typ': 'at+jwt', 'kid': key.kid})}.{segment(good_claims())}."
        assert rejects(service, token)


def test_hs256_maced_with_the_public_key_pem_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for header in ({"alg": "HS256", "typ": "at+jwt", "kid": key.kid}, {"alg": "HS256", "kid": key.kid}):
        assert rejects(service, craft_hs256(header, good_claims(), public_pem))
        assert rejects(service, craft_hs256(header, good_claims(), public_pem.strip()))


def test_hs256_maced_with_the_public_jwk_json_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key.kid}
    for secret in (
        json.dumps(dict(key.public_jwk)).encode(),
        json.dumps(dict(key.public_jwk), separators=(",", ":"), sort_keys=True).encode(),
        json.dumps(KeyRing(keys=(key,)).jwks()).encode(),
    ):
        assert rejects(service, craft_hs256(header, good_claims(), secret))


def test_hmac_signature_under_es256_header_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    public_pem = key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert rejects(service, craft_hs256(good_header(key), good_claims(), public_pem))


def test_token_signed_by_another_key_under_our_kid_is_rejected(
    key: SigningKey, service: JoseAccessTokenService
) -> None:
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert rejects(service, craft(good_header(key), good_claims(), impostor))


def test_unknown_kid_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    other = SigningKey.generate()
    assert rejects(service, craft(good_header(other), good_claims(), other.private_key))
    assert rejects(service, craft({"alg": "ES256", "typ": "at+jwt"}, good_claims(), key.private_key))  # no kid
    assert rejects(service, craft({**good_header(key), "kid": ""}, good_claims(), key.private_key))


@pytest.mark.parametrize("kid", [["x"], {"k": "v"}, 42, None, True])
def test_non_string_kid_is_rejected(key: SigningKey, service: JoseAccessTokenService, kid: Any) -> None:
    # Regression: an unhashable kid used to escape as TypeError (a 500) instead of InvalidAccessToken.
    token = craft({"alg": "ES256", "typ": "at+jwt", "kid": kid}, good_claims(), key.private_key)
    assert rejects(service, token)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_access_token_types_are_accepted(key: SigningKey, service: JoseAccessTokenService, typ: str) -> None:
    assert service.verify(craft({**good_header(key), "typ": typ}, good_claims(), key.private_key)).user_id == USER_ID


def test_missing_typ_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    """An access token has a purpose, stated in ``typ``: a JWT without one is not an access token."""
    assert rejects(service, craft({"alg": "ES256", "kid": key.kid}, good_claims(), key.private_key))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "dpop+jwt", "id_token+jwt", "logout+jwt", "secevent+jwt", ""])
def test_other_token_types_are_rejected(key: SigningKey, service: JoseAccessTokenService, typ: str) -> None:
    assert rejects(service, craft({**good_header(key), "typ": typ}, good_claims(), key.private_key))


@pytest.mark.parametrize("typ", [123, ["at+jwt"], None])
def test_non_string_typ_is_rejected(key: SigningKey, service: JoseAccessTokenService, typ: Any) -> None:
    assert rejects(service, craft({**good_header(key), "typ": typ}, good_claims(), key.private_key))


def test_wrong_issuer_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    foreign = make_service(KeyRing(keys=(key,)), issuer="https://evil.example.com")
    assert rejects(service, foreign.issue(session()).token)
    assert rejects(service, craft(good_header(key), good_claims(iss=ISSUER + "/"), key.private_key))


def test_wrong_audience_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    foreign = make_service(KeyRing(keys=(key,)), audience="another-api")
    assert rejects(service, foreign.issue(session()).token)
    assert rejects(service, craft(good_header(key), good_claims(aud=["another-api"]), key.private_key))


def test_expired_token_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    past = FrozenClock(datetime.now(UTC) - TTL - timedelta(seconds=5))
    expired = make_service(KeyRing(keys=(key,)), clock=past).issue(session()).token

    assert rejects(service, expired)


def test_token_expiring_now_is_rejected_without_leeway(key: SigningKey, service: JoseAccessTokenService) -> None:
    now = int(time.time())
    assert rejects(service, craft(good_header(key), good_claims(iat=now - 60, exp=now - 1), key.private_key))


def test_token_not_yet_valid_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    assert rejects(service, craft(good_header(key), good_claims(nbf=int(time.time()) + 600), key.private_key))


@pytest.mark.parametrize("claim", ["jti", "sid", "sub", "exp", "iat", "iss", "aud", "amr", "auth_time"])
def test_missing_claim_is_rejected(key: SigningKey, service: JoseAccessTokenService, claim: str) -> None:
    assert rejects(service, craft(good_header(key), without(good_claims(), claim), key.private_key))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("sub", "not-a-uuid"),
        ("sid", "not-a-uuid"),
        ("sid", 42),
        ("sid", None),
        ("sub", 42),
        ("exp", "soon"),
        ("amr", "pwd"),
        ("amr", ["telepathy"]),
        ("auth_time", "yesterday"),
    ],
)
def test_malformed_claim_is_rejected(key: SigningKey, service: JoseAccessTokenService, claim: str, value: Any) -> None:
    assert rejects(service, craft(good_header(key), good_claims(**{claim: value}), key.private_key))


@pytest.mark.parametrize(
    "extra",
    [
        {"crit": ["exp"]},
        {"jku": "https://evil.example.com/jwks.json"},
        {"x5u": "https://evil.example.com/cert.pem"},
        {"x5c": ["MIIB"]},
        {"b64": False},
        {"zip": "DEF"},
        {"cty": "JWT"},
    ],
    ids=lambda extra: next(iter(extra)),
)
def test_extra_header_is_rejected(key: SigningKey, service: JoseAccessTokenService, extra: dict[str, Any]) -> None:
    assert rejects(service, craft(good_header(key) | extra, good_claims(), key.private_key))


def test_embedded_jwk_header_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    attacker = SigningKey.generate()
    header = {**good_header(key), "jwk": dict(attacker.public_jwk)}
    assert rejects(service, craft(header, good_claims(), attacker.private_key))
    assert rejects(service, craft(header, good_claims(), key.private_key))


def test_tampered_payload_is_rejected(key: SigningKey, service: JoseAccessTokenService) -> None:
    token = service.issue(session()).token
    header, _, signature = token.split(".")
    forged = good_claims(sub=str(UUID(int=666)))
    assert rejects(service, f"{header}.{segment(forged)}.{signature}")


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        "....",
        "é.é.é",
        "Bearer x.y.z",
        f"{segment(['alg'])}.{segment({})}.",
        f"{segment('ES256')}.{segment({})}.",
        f"{segment({'alg': ['ES256']})}.{segment({})}.",
        "eyJhbGciOiJFUzI1NiJ9",
        "eyJhbGciOiJFUzI1NiJ9.!!!.###",
    ],
)
def test_garbage_is_rejected(service: JoseAccessTokenService, garbage: str) -> None:
    assert rejects(service, garbage)


def test_truncated_and_signature_stripped_tokens_are_rejected(service: JoseAccessTokenService) -> None:
    token = service.issue(session()).token
    header, payload, _ = token.split(".")

    assert rejects(service, token[:-10])
    assert rejects(service, f"{header}.{payload}.")
    assert rejects(service, f"{header}.{payload}")
    assert rejects(service, token + ".extra")


# --- key rotation ----------------------------------------------------------------------------------------------


def test_token_signed_by_an_older_key_still_verifies_after_rotation(key: SigningKey) -> None:
    newer = SigningKey.generate()
    before_rotation = make_service(KeyRing(keys=(key,)))
    after_rotation = make_service(KeyRing(keys=(key, newer)))
    old_token = before_rotation.issue(session()).token

    assert after_rotation.verify(old_token).user_id == USER_ID

    new_token = after_rotation.issue(session()).token
    assert pyjwt.get_unverified_header(new_token)["kid"] == newer.kid
    assert after_rotation.verify(new_token).session_id == SESSION_ID
    assert rejects(before_rotation, new_token)  # a node that has not got the new key yet cannot verify it


def test_token_of_a_retired_key_is_rejected(key: SigningKey) -> None:
    newer = SigningKey.generate()
    old_token = make_service(KeyRing(keys=(key,))).issue(session()).token

    assert rejects(make_service(KeyRing(keys=(newer,))), old_token)
