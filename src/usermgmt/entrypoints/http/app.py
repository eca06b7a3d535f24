"""The application factory: ``uvicorn --factory usermgmt.entrypoints.http.app:create_app``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import ip_network

from fastapi import FastAPI

import usermgmt
from usermgmt.container import Container, build_container, close_resources
from usermgmt.entrypoints import tracing
from usermgmt.entrypoints.http.dependencies import LOGIN_PATH
from usermgmt.entrypoints.http.errors import install_error_handlers
from usermgmt.entrypoints.http.middleware import ProblemCORSMiddleware, RequestContextMiddleware, RequestGuardMiddleware
from usermgmt.entrypoints.http.observability import RequestMetrics
from usermgmt.entrypoints.http.openapi import install_openapi
from usermgmt.entrypoints.http.routers import admin, auth, federation, meta, mfa, oauth, users
from usermgmt.entrypoints.http.schemas import LoginForm, LoginIn, Problem

# The response headers a browser client may read: what it acts on besides the body.
CORS_EXPOSED_HEADERS = [
    "Location",
    "WWW-Authenticate",
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
]


def create_app(container: Container | None = None) -> FastAPI:
    container = container or build_container()
    settings = container.settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        container.access_tokens()  # load (or generate) the signing keys now: a bad key stops the start
        container.hasher()
        container.mfa_codes()  # load (or generate) the data encryption keys now
        container.password_policy()  # reads the common-password lists once
        container.email_renderer().check()  # a missing or broken email template (an override's) stops the start
        worker = container.outbox_worker()
        gc.collect()
        gc.freeze()  # what start-up built lives as long as the process: keep it out of every later collection
        worker.start()  # delivers the outbox in the background, in every server process
        container.maintenance_loop().start()  # every process; one run per interval does the work (the lock)
        sampler = container.metrics_sampler()
        if sampler is not None:
            sampler.start()  # pools, caches and the database-read gauges of this process
        try:
            yield
        finally:
            await close_resources(container)  # stops the worker first, within 3 seconds
            tracing.shutdown(app)

    app = FastAPI(
        title="usermgmt",
        version=usermgmt.__version__,
        summary="Registration, login, rotating refresh tokens, sessions and JWKS for your apps.",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would be built from the Host header and make clients resend secrets
    )
    app.state.container = container
    app.state.trusted_proxies = [ip_network(item, strict=False) for item in settings.http.trusted_proxies]
    install_error_handlers(app)
    # Routes are matched in order: the hot ones (an internal service's introspection, the users' own routes) first.
    app.include_router(oauth.router)
    app.include_router(users.router)
    app.include_router(federation.identities)
    app.include_router(federation.router)
    app.include_router(auth.router)
    app.include_router(mfa.router)
    app.include_router(admin.router)
    app.include_router(meta.router)
    install_openapi(app, requests=(LoginIn, LoginForm), responses=(Problem,))  # referenced by name only
    app.add_middleware(
        RequestGuardMiddleware,
        max_body_bytes=settings.http.max_body_bytes,
        form_paths=[LOGIN_PATH, oauth.INTROSPECT_PATH],
    )
    if settings.http.cors_origins:
        app.add_middleware(
            ProblemCORSMiddleware,
            allow_origins=settings.http.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=CORS_EXPOSED_HEADERS,
        )
    metrics = container.metrics()
    app.add_middleware(
        RequestContextMiddleware,
        trusted_hosts=settings.http.trusted_hosts,
        trusted_proxies=app.state.trusted_proxies,
        hsts_max_age=settings.http.hsts_max_age,
        observe=RequestMetrics(metrics) if metrics is not None else None,
    )
    if tracing.enabled():
        tracing.instrument(app, container.engine())
    return app
