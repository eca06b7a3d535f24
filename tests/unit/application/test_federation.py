"""Sign-in through a provider with in-memory fakes and a frozen clock: what the e2e tests against a real OpenID
Provider cannot wait for (the 10-minute state, the 60-second login code, a sign-in 10 minutes old)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.unit.application._support import RecordingUnitOfWork, client
from usermgmt.adapters.memory import FrozenClock, SequentialIdGenerator
from usermgmt.application import commands
from usermgmt.application.abuse import Guard
from usermgmt.application.email import Postman
from usermgmt.application.errors import (
    IdentityNotFound,
    InvalidLoginCode,
    LastLoginMethod,
    NoPassword,
    ReauthenticationRequired,
)
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.federation import (
    FederationPolicy,
    FinishProviderSignInHandler,
    Providers,
    RedeemLoginCodeHandler,
    StartProviderSignInHandler,
    UnlinkIdentityHandler,
)
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.ports import ExternalIdentity, ProviderError
from usermgmt.application.results import SignedIn
from usermgmt.domain.value_objects import Email

FRONTEND = "https://app.example.com/auth/callback"


@dataclass
class FakeProvider:
    """An identity provider whose next sign-in is ``next``; ``identify`` checks it got the verifier it was sent."""

    name: str = "google"
    next: ExternalIdentity | None = None
    sent: dict[str, str] = field(default_factory=dict)

    async def authorization_url(self, *, redirect_uri: str, state: str, nonce: str, code_verifier: str) -> str:
        self.sent = {"state": state, "nonce": nonce, "verifier": code_verifier, "redirect_uri": redirect_uri}
        return f"https://provider.example/authorize?state={state}"

    async def identify(self, *, redirect_uri: str, code: str, code_verifier: str, nonce: str) -> ExternalIdentity:
        if code != "the-code" or code_verifier != self.sent["verifier"] or nonce != self.sent["nonce"]:
            raise ProviderError("invalid_id_token", "not what was sent")
        assert self.next is not None
        return self.next


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Flow:
    start: StartProviderSignInHandler
    finish: FinishProviderSignInHandler
    redeem: RedeemLoginCodeHandler
    provider: FakeProvider

    async def come_back(
        self, who: ExternalIdentity, *, wait: timedelta = timedelta(0), clock: FrozenClock
    ) -> dict[str, str]:
        verifier, challenge = pkce()
        started = await self.start(
            commands.StartProviderSignIn(
                provider="google", redirect_uri=FRONTEND, code_challenge=challenge, client=client()
            )
        )
        clock.advance(wait)
        self.provider.next = who
        back = await self.finish(
            commands.FinishProviderSignIn(
                provider="google",
                state=self.provider.sent["state"],
                code="the-code",
                browser=started.browser,
                client=client(),
            )
        )
        query = {key: values[0] for key, values in parse_qs(urlsplit(back).query).items()}
        query["verifier"] = verifier
        return query


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def flow(
    uow: RecordingUnitOfWork,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
    guard: Guard,
    postman: Postman,
    issuer: SessionIssuer,
    provider: FakeProvider,
) -> Flow:
    providers = Providers(
        uow=uow,
        providers={"google": provider},
        policy=FederationPolicy(public_url="https://auth.example.com", redirect_uris=(FRONTEND,)),
        clock=clock,
        guard=guard,
    )
    return Flow(
        start=StartProviderSignInHandler(providers=providers, guard=guard),
        finish=FinishProviderSignInHandler(uow=uow, providers=providers, clock=clock, ids=ids, postman=postman),
        redeem=RedeemLoginCodeHandler(uow=uow, issuer=issuer, clock=clock, guard=guard),
        provider=provider,
    )


def google_user(subject: str = "g-1", email: str = "ada@gmail.example", verified: bool = True) -> ExternalIdentity:
    return ExternalIdentity(provider="google", subject=subject, email=Email(email), email_verified=verified)


async def test_the_callback_uri_and_secrets_sent_to_the_provider(flow: Flow, clock: FrozenClock) -> None:
    await flow.come_back(google_user(), clock=clock)
    assert flow.provider.sent["redirect_uri"] == "https://auth.example.com/api/v1/auth/oauth/google/callback"
    assert len(flow.provider.sent["verifier"]) >= 43 and flow.provider.sent["nonce"]


async def test_a_state_older_than_ten_minutes_is_refused(flow: Flow, clock: FrozenClock) -> None:
    back = await flow.come_back(google_user(), wait=timedelta(minutes=10, seconds=1), clock=clock)
    assert back["error"] == "invalid_state"


async def test_a_login_code_lives_sixty_seconds(flow: Flow, clock: FrozenClock) -> None:
    back = await flow.come_back(google_user(), clock=clock)
    clock.advance(timedelta(seconds=60))
    with pytest.raises(InvalidLoginCode):
        await flow.redeem(commands.RedeemLoginCode(login_code=back["login_code"], code_verifier=back["verifier"]))


async def test_a_passwordless_account_needs_a_recent_sign_in_to_be_deleted(
    flow: Flow,
    clock: FrozenClock,
    uow: RecordingUnitOfWork,
    delete_account: DeleteAccountHandler,
) -> None:
    back = await flow.come_back(google_user(), clock=clock)
    signed_in = await flow.redeem(
        commands.RedeemLoginCode(login_code=back["login_code"], code_verifier=back["verifier"])
    )
    assert isinstance(signed_in, SignedIn)
    session_id = signed_in.tokens.session_id
    (user,) = uow.store.users.values()
    clock.advance(timedelta(minutes=10, seconds=1))
    with pytest.raises(ReauthenticationRequired):
        await delete_account(commands.DeleteAccount(user_id=user.id, session_id=session_id))

    back = await flow.come_back(google_user(), clock=clock)  # signs in again: the new session may
    again = await flow.redeem(commands.RedeemLoginCode(login_code=back["login_code"], code_verifier=back["verifier"]))
    assert isinstance(again, SignedIn)
    await delete_account(commands.DeleteAccount(user_id=user.id, session_id=again.tokens.session_id))
    assert not uow.store.users


async def test_a_passwordless_account_has_no_password_to_change_and_keeps_its_last_identity(
    flow: Flow,
    clock: FrozenClock,
    uow: RecordingUnitOfWork,
    guard: Guard,
    change_password: ChangePasswordHandler,
) -> None:
    back = await flow.come_back(google_user(), clock=clock)
    signed_in = await flow.redeem(
        commands.RedeemLoginCode(login_code=back["login_code"], code_verifier=back["verifier"])
    )
    assert isinstance(signed_in, SignedIn)
    (user,) = uow.store.users.values()
    assert not user.has_password
    with pytest.raises(NoPassword):
        await change_password(
            commands.ChangePassword(
                user_id=user.id,
                session_id=signed_in.tokens.session_id,
                current_password="whatever",
                new_password="a new long passphrase",
            )
        )
    unlink = UnlinkIdentityHandler(uow=uow, clock=clock, guard=guard)
    async with uow:
        (identity,) = await uow.identities.list_for_user(user.id)
    with pytest.raises(LastLoginMethod):
        await unlink(commands.UnlinkIdentity(user_id=user.id, identity_id=str(identity.id)))
    with pytest.raises(IdentityNotFound):
        await unlink(commands.UnlinkIdentity(user_id=user.id, identity_id="not-a-uuid"))
