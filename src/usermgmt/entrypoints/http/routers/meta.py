"""Public keys and health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from usermgmt.entrypoints.http.errors import problem_responses
from usermgmt.entrypoints.http.routing import StrictJsonRoute
from usermgmt.entrypoints.http.schemas import HealthOut, JwksOut

router = APIRouter(tags=["meta"], route_class=StrictJsonRoute)


@router.get("/.well-known/jwks.json", operation_id="meta_jwks", response_model=JwksOut, responses=problem_responses())
async def jwks(request: Request) -> JSONResponse:
    """The public keys that verify access tokens (RFC 7517). The newest signs; older ones stay during rotation."""
    body: dict[str, Any] = request.app.state.container.keyring().jwks()
    return JSONResponse(body, headers={"Cache-Control": "public, max-age=300"})


@router.get("/healthz", operation_id="meta_healthz", response_model=HealthOut, responses=problem_responses())
async def healthz() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    operation_id="meta_readyz",
    response_model=HealthOut,
    responses={**problem_responses(), 503: {"model": HealthOut, "description": "The database does not answer."}},
)
async def readyz(request: Request) -> Any:
    """Readiness: the database answers too."""
    if await request.app.state.container.health().database_ready():
        return HealthOut(status="ok")
    return JSONResponse({"status": "unavailable"}, status_code=503)
