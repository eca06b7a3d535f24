"""Sign-in through identity providers (/api/v1/auth/oauth/...) and the identities linked to the caller's account
(/api/v1/users/me/identities). The flow is described in application/handlers/federation.py and the README."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qsl, urlsplit
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse

from usermgmt.application import commands
from usermgmt.application.handlers.federation import (
    STATE_TTL,
    FinishProviderSignInHandler,
    ListIdentitiesHandler,
    ListProvidersHandler,
    RedeemLoginCodeHandler,
    StartIdentityLinkHandler,
    StartProviderSignInHandler,
    UnlinkIdentityHandler,
)
from usermgmt.entrypoints.http import dependencies as deps
from usermgmt.entrypoints.http.errors import PROBLEM_CODE_KEY, problem_responses
from usermgmt.entrypoints.http.routers.auth import SecondStep, signed_in_or_second_step
from usermgmt.entrypoints.http.routers.presenters import identity_out
from usermgmt.entrypoints.http.routing import StrictJsonRoute
from usermgmt.entrypoints.http.schemas import (
    AuthorizationUrlOut,
    IdentityLinkIn,
    IdentityOut,
    LoginCodeIn,
    ProvidersOut,
    TokenPairOut,
)

router = APIRouter(prefix="/api/v1/auth/oauth", tags=["oauth"], route_class=StrictJsonRoute)
identities = APIRouter(prefix="/api/v1/users/me/identities", tags=["users"], route_class=StrictJsonRoute)

# Binds a trip to the provider to the browser that left: sent back only to the callbacks, never to page scripts.
STATE_COOKIE = "usermgmt_oauth"
COOKIE_PATH = "/api/v1/auth/oauth/"
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}

Text = Annotated[str, Query(max_length=2048)]


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND, headers=NO_STORE)


@router.get(
    "/providers",
    operation_id="auth_oauth_providers",
    response_model=ProvidersOut,
    responses=problem_responses(ListProvidersHandler),
)
async def list_providers(handler: deps.ListProviders) -> ProvidersOut:
    """The identity providers this service is configured for: the "Continue with ..." buttons a sign-in page shows.
    Empty when none is."""
    return ProvidersOut(providers=list(handler()))


@router.get(
    "/{provider}/authorize",
    operation_id="auth_oauth_authorize",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        status.HTTP_302_FOUND: {"description": "To the provider (or back to redirect_uri with ?error=)."},
        **problem_responses(StartProviderSignInHandler, parameters=True),
    },
)
async def authorize(
    provider: str,
    request: Request,
    handler: deps.StartProviderSignIn,
    client: deps.Client,
    redirect_uri: Text = "",
    code_challenge: Annotated[str, Query(max_length=128)] = "",
    code_challenge_method: Annotated[str, Query(max_length=16)] = "S256",
) -> RedirectResponse:
    """Step 1 of "Continue with <provider>": the browser is sent here, then on to the provider. ``redirect_uri`` is
    where it comes back (one of ``USERMGMT_OAUTH_REDIRECT_URIS``), with ``?login_code=`` or ``?error=``;
    ``code_challenge`` is the frontend's own PKCE S256 challenge, whose verifier redeems the login code."""
    started = await handler(
        commands.StartProviderSignIn(
            provider=provider,
            redirect_uri=redirect_uri,
            code_challenge=code_challenge,
            code_challenge_method=code_challenge_method,
            client=client,
        )
    )
    response = _redirect(started.url)
    if started.browser is not None:
        response.set_cookie(
            STATE_COOKIE,
            started.browser,
            max_age=int(STATE_TTL.total_seconds()),
            path=COOKIE_PATH,
            secure=request.app.state.container.settings().oauth.cookie_secure,
            httponly=True,
            samesite="lax",
        )
    return response


@router.get(
    "/{provider}/callback",
    operation_id="auth_oauth_callback",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        status.HTTP_302_FOUND: {"description": "Back to the frontend: ?login_code=, ?linked= or ?error=<code>."},
        **problem_responses(FinishProviderSignInHandler, parameters=True),
    },
)
async def callback(
    provider: str,
    request: Request,
    handler: deps.FinishProviderSignIn,
    client: deps.Client,
    state: Text | None = None,
    code: Text | None = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> RedirectResponse:
    """Step 2: the provider sends the browser back here; it goes on to the frontend's ``redirect_uri`` with a
    one-time ``login_code`` (60 seconds), ``linked={provider}`` after a link from settings, or ``error=<code>``."""
    target = await handler(
        commands.FinishProviderSignIn(
            provider=provider,
            state=state,
            code=code,
            error=error,
            browser=request.cookies.get(STATE_COOKIE),
            client=client,
        )
    )
    refused = dict(parse_qsl(urlsplit(target).query)).get("error")
    if refused is not None:  # for the sign-in metrics: the outcome of a callback is where it sends the browser
        request.scope[PROBLEM_CODE_KEY] = refused
    response = _redirect(target)
    response.delete_cookie(STATE_COOKIE, path=COOKIE_PATH, httponly=True, samesite="lax")
    return response


@router.post(
    "/token",
    operation_id="auth_oauth_token",
    response_model=TokenPairOut,
    responses=problem_responses(RedeemLoginCodeHandler, SecondStep, body=True),
)
async def token(body: LoginCodeIn, handler: deps.RedeemLoginCode, client: deps.Client) -> TokenPairOut:
    """Step 3, from the frontend's server: the login code and the PKCE verifier of the sign-in's challenge, for a
    token pair as after a login. With two-factor authentication on, 403 ``mfa_required`` as from the login: a
    provider does not replace the second factor."""
    return signed_in_or_second_step(
        await handler(
            commands.RedeemLoginCode(login_code=body.login_code, code_verifier=body.code_verifier, client=client)
        )
    )


@identities.get(
    "",
    operation_id="users_me_identities_list",
    response_model=list[IdentityOut],
    responses=problem_responses(ListIdentitiesHandler, bearer=True),
)
async def list_identities(principal: deps.CurrentPrincipal, handler: deps.ListIdentities) -> list[IdentityOut]:
    """The provider accounts linked to the caller's account, oldest first."""
    return [identity_out(identity) for identity in await handler(principal.user_id)]


@identities.post(
    "/{provider}",
    operation_id="users_me_identity_link",
    response_model=AuthorizationUrlOut,
    responses=problem_responses(StartIdentityLinkHandler, body=True, parameters=True, bearer=True),
)
async def link_identity(
    provider: str,
    body: IdentityLinkIn,
    principal: deps.CurrentPrincipal,
    handler: deps.StartIdentityLink,
    client: deps.Client,
) -> AuthorizationUrlOut:
    """Link a provider account from settings: send the browser to ``authorization_url``; it comes back to
    ``redirect_uri`` with ``?linked={provider}``, or ``?error=identity_in_use`` when another account has it."""
    url = await handler(
        commands.StartIdentityLink(
            user_id=principal.user_id,
            provider=provider,
            redirect_uri=body.redirect_uri,
            code_challenge=body.code_challenge,
            code_challenge_method=body.code_challenge_method,
            client=client,
        )
    )
    return AuthorizationUrlOut(authorization_url=url)


@identities.delete(
    "/{identity_id}",
    operation_id="users_me_identity_unlink",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(UnlinkIdentityHandler, parameters=True, bearer=True),
)
async def unlink_identity(
    identity_id: UUID, principal: deps.CurrentPrincipal, handler: deps.UnlinkIdentity, client: deps.Client
) -> Response:
    """Unlink a provider account; 409 ``last_login_method`` when it is the account's only way in."""
    await handler(
        commands.UnlinkIdentity(
            user_id=principal.user_id, identity_id=str(identity_id), session_id=principal.session_id, client=client
        )
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
