"""GET /api/v1/admin/stats over HTTP on PostgreSQL: refused without ``events:read``, 422 ``invalid_period`` for a
period it cannot compute, and the figures of a few real registrations and sign-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import PASSWORD, Signup
from tests.e2e.test_admin import ADMIN, grant
from tests.e2e.test_auth_flow import assert_problem
from usermgmt.container import Container

STATS = f"{ADMIN}/stats"


async def test_the_stats_need_events_read(client: httpx.AsyncClient, signup: Signup) -> None:
    plain = await signup("plain@example.com")

    problem = assert_problem(await client.get(STATS, headers=plain.auth), 403, "insufficient_permission")

    assert problem["permission"] == "events:read"
    assert (await client.get(STATS)).status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"from": "2026-03-11T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2026-03-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "2025-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"},
        {"from": "0001-01-01T00:00:00+05:00", "to": "2026-03-01T00:00:00Z"},
    ],
)
async def test_a_period_it_cannot_compute_is_422_invalid_period(
    client: httpx.AsyncClient, signup: Signup, container: Container, params: dict[str, str]
) -> None:
    admin = await signup("admin@example.com")
    await grant(container, admin.email, "admin")

    assert_problem(await client.get(STATS, params=params, headers=admin.auth), 422, "invalid_period")
    malformed = await client.get(STATS, params={"from": "yesterday"}, headers=admin.auth)
    assert_problem(malformed, 422, "validation_error")


async def test_the_figures_of_real_registrations_and_sign_ins(
    client: httpx.AsyncClient, signup: Signup, container: Container
) -> None:
    start = datetime.now(UTC) - timedelta(minutes=1)
    admin = await signup("admin@example.com")
    await grant(container, admin.email, "admin")
    await signup("alice@example.com")
    await signup("bob@example.com")
    wrong = await client.post("/api/v1/auth/login", json={"login": "alice@example.com", "password": "not " + PASSWORD})
    assert wrong.status_code == 401
    end = datetime.now(UTC) + timedelta(minutes=1)

    answer = await client.get(STATS, params={"from": start.isoformat(), "to": end.isoformat()}, headers=admin.auth)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert datetime.fromisoformat(body["from"]) == start and datetime.fromisoformat(body["to"]) == end
    assert body["registrations"] == 3
    assert sum(day["registrations"] for day in body["registrations_by_day"]) == 3
    assert body["registrations_per_day"] == pytest.approx(3 / ((end - start) / timedelta(days=1)))
    assert (body["sign_in_attempts"], body["sign_ins_succeeded"]) == (4, 3)
    assert body["login_success_rate"] == 0.75
    assert 0 < body["authentication_latency_ms"] < 10_000
    assert (body["users_total"], body["users_with_mfa"], body["mfa_adoption"]) == (3, 0, 0.0)
    assert (body["retention_cohort"], body["retained_7d"], body["retention_7d"]) == (0, 0, None)
    assert (body["password_resets"], body["password_reset_median_seconds"]) == (0, None)
    assert (body["deletions"], body["deletions_within_24h"], body["deletions_overdue"]) == (0, 0, 0)
    assert body["deletions_within_24h_rate"] is None

    default = await client.get(STATS, headers=admin.auth)  # the last 30 days ending now
    assert default.status_code == 200
    period = datetime.fromisoformat(default.json()["to"]) - datetime.fromisoformat(default.json()["from"])
    assert period == timedelta(days=30) and default.json()["registrations"] == 3


async def test_the_owner_does_not_see_the_duration_of_their_sign_ins(client: httpx.AsyncClient, signup: Signup) -> None:
    alice = await signup("alice@example.com")

    history = await client.get("/api/v1/users/me/events", headers=alice.auth)

    signed_in = [item for item in history.json()["items"] if item["type"] == "login_succeeded"]
    assert signed_in and all("duration_ms" not in item["details"] for item in signed_in)
