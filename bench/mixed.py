"""The mixed-load scenario of issue 14: /me at 50 connections and login at 16 at the same time, each against its
solo rate in the same repeat.

The logins come from 16 Python clients (httpx, keep-alive), not wrk: each sends a login, waits for the answer, and
when the service sheds it (503 ``service_busy``) sleeps the ``Retry-After`` it was given before trying again, as a
well-behaved client does. wrk would retry at once and turn shedding into a flood of 503s. The login rate counts
only logins that succeeded, and the latency figures are those logins'; the shed answers are counted apart (the
row's ``extra``). The /me load is wrk's, as in the ``me`` rows.

Rows: ``login`` @16 alone, then ``mixed /me`` @50 and ``mixed login`` @16, run together for the same seconds.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

CONNECTIONS = 16


async def logins(base: str, emails: list[str], password: str, seconds: float) -> dict[str, Any]:
    """CONNECTIONS clients logging in users in turn for ``seconds``: the successes' latencies and the statuses."""
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    turn = iter(range(10**9))
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def one_client() -> None:
            while time.monotonic() < deadline:
                email = emails[next(turn) % len(emails)]
                started = time.perf_counter()
                try:
                    response = await client.post("/api/v1/auth/login", json={"login": email, "password": password})
                except httpx.HTTPError:
                    statuses[0] += 1
                    continue
                statuses[response.status_code] += 1
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                elif response.status_code == 503:
                    retry = float(response.headers.get("retry-after", "1"))
                    await asyncio.sleep(max(0.0, min(retry, deadline - time.monotonic())))

        started = time.monotonic()
        await asyncio.gather(*(one_client() for _ in range(CONNECTIONS)))
        elapsed = time.monotonic() - started
    return {"latencies": latencies, "statuses": dict(statuses), "seconds": elapsed}


def login_row(
    name: str, result: dict[str, Any], note: str, row: Callable[..., Any], percentile: Callable[..., float]
) -> Any:
    latencies = result["latencies"]
    statuses = result["statuses"]
    shed = statuses.get(503, 0)
    errors = sum(n for status, n in statuses.items() if status not in (200, 503))
    return row(
        scenario=name,
        connections=CONNECTIONS,
        rps=round(len(latencies) / result["seconds"], 1),
        p50_ms=round(percentile(latencies, 50) * 1000, 2),
        p99_ms=round(percentile(latencies, 99) * 1000, 2),
        mean_ms=round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        errors=errors,
        requests=sum(statuses.values()),
        note=f"{note}; {shed} shed (503)" if note else f"{shed} shed (503)",
        extra={"statuses": {str(k): v for k, v in statuses.items()}, "shed": shed},
    )


def run(
    base: str,
    emails: list[str],
    password: str,
    *,
    seconds: int,
    tag: str,
    solo_me_rps: float,
    me: Callable[[int], dict[str, Any]],
    wrk_row: Callable[..., Any],
    row: Callable[..., Any],
    percentile: Callable[..., float],
) -> list[Any]:
    """``me(seconds)`` runs wrk's /me at 50 connections (blocking) and returns its result."""
    solo = asyncio.run(logins(base, emails, password, seconds))
    solo_rate = len(solo["latencies"]) / solo["seconds"]
    rows = [login_row(f"login {tag}", solo, "solo, clients honour Retry-After", row, percentile)]

    async def together() -> tuple[dict[str, Any], dict[str, Any]]:
        reads = asyncio.create_task(asyncio.to_thread(me, seconds))
        signing_in = await logins(base, emails, password, seconds)
        return await reads, signing_in

    reads, signing_in = asyncio.run(together())
    rows.append(wrk_row(f"mixed /me {tag}", 50, reads, f"{reads['rps'] / solo_me_rps:.0%} of solo /me"))
    mixed_rate = len(signing_in["latencies"]) / signing_in["seconds"]
    share = f"{mixed_rate / solo_rate:.0%} of solo login" if solo_rate else "no solo login"
    rows.append(login_row(f"mixed login {tag}", signing_in, share, row, percentile))
    return rows
