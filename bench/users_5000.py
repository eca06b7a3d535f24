"""users-5000 (issue 14): 5,000 keep-alive connections, each a user sending one request every 2 seconds (2,500
req/s in all), in the users-1000 mix: mostly GET /me, some PATCH /me and refreshes, a few logins.

The load generator is hey (Debian ``hey``, already the fixed-rate tool of users-1000), in several processes:

- one hey process keeps at most 500 idle connections (``MaxIdleConnsPerHost: min(c, 500)`` in its requester), so
  a larger ``-c`` closes the connections above 500 after each request; the /me users are groups of at most 500;
- ``-q 0.5`` is per connection and the connections of one process tick in step, so the groups start spread over
  one 2-second period, as in users-1000, and smaller groups make smaller bursts.

Measured on the 2-core bench machine (2 workers, 20 hey processes of 250 connections, /me only, 20 s):
``ss -tn state established`` counted 5,000 connections to the service port from the third second to the end,
2,424 req/s were served, and the 20 hey processes used 0.32 of a core in all (about 130 µs of CPU a request),
against 1.12 cores for the two workers. The other candidates: wrk2, vegeta, k6 and oha are not Debian packages;
bombardier (Debian, not measured here) rate-limits all its connections together and its fasthttp client reuses
the last idle one, so at 2,500 req/s it would keep a few dozen busy and let the rest idle out; a Python client
shares the cores and the GIL with its own latency measurement: httpx, which drives the refreshing and PATCHing
users here, used 0.38-0.45 of a core for their 275 req/s (about 1.5 ms of CPU a request, ten times hey's).

The whole mix is more than 2 shared cores serve: /me alone at 2,424 req/s already left them 0-5% idle, with p99
2.3 s; with the refreshes, PATCHes and 5 logins/s (0.6 of a core of bcrypt) on top, two 20-s smoke runs served
1,121-1,326 req/s, p99 13-15 s, with 544 and 1,040 errors (timeouts, 503, and 401 for refresh tokens that a
timed-out refresh had already rotated) and 23,000-29,000 listen-queue overflows while connections re-opened.

The refreshing and PATCHing users run in this process (``python_users``): each must present its own rotating
refresh token, and two PATCHes of one account at once would rightly get 409. They need their own sessions,
logged in by the caller right before (``SESSIONS`` logins, about 35 s at bcrypt cost 11 on 2 cores).

Logins are not scaled with the rest: 10 connections at 0.5 req/s, as in users-1000. Fifty would ask 25
logins/s, more than bcrypt at cost 11 allows on 2 cores (limit-hash, about 16/s).

The process needs more than 5,000 file descriptors, and so does each worker (the kernel may hand one worker
most of the connections): ``raise_file_limit`` lifts the soft limit to the hard one before the service starts.
"""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CONNECTIONS = 5000
LOGIN_CONNECTIONS = 10
REFRESHING = 250  # the users-1000 mix, times 5: 880 /me, 60 PATCH /me, 50 refresh, 10 login
PATCHING = 300
SESSIONS = REFRESHING + PATCHING
GROUP = 500  # hey keeps at most 500 idle connections a process
GROUPS = 20  # 4,440 /me connections in 20 hey processes of 222
FILES_NEEDED = CONNECTIONS + 1000  # one worker may hold nearly every connection, plus its pool and files


def raise_file_limit() -> int:
    """Lift this process's soft limit on open files to the hard one (the service and hey inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard if hard != resource.RLIM_INFINITY else FILES_NEEDED


def established(port: int) -> int:
    """Connections to ``port`` on this host in the ESTABLISHED state, as ``ss`` counts them."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"], capture_output=True, text=True, check=True
    ).stdout
    return len(out.splitlines())


def listen_overflows() -> int:
    """The kernel's count of connections refused because a listen queue was full (TcpExt ListenOverflows)."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True)).get("ListenOverflows", 0))
    return 0


def generator_cpu() -> tuple[float, float]:
    """CPU seconds of this process (the refreshing and PATCHing users) and of its children that have ended
    (hey's processes, once read)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def users_5000(
    base: str, port: int, refresh_pairs: list[dict[str, Any]], patch_pairs: list[dict[str, Any]], seconds: int, *,
    password: str, worker_rss: Callable[[], list[float]], hey: Callable[..., subprocess.Popen[str]],
    hey_samples: Callable[..., list[tuple[float, int]]], python_users: Callable[..., Any], mixed_row: Callable[..., Any],
) -> list[Any]:  # fmt: skip
    """5,000 connections at 0.5 req/s each, with bench/run.py's generators and row; the note says the
    connections held (ESTABLISHED to ``port``, the least and most once every connection is open), the kernel's
    listen-queue overflows during the run and the workers' RSS after it."""
    tokens = [p["access_token"] for p in patch_pairs]  # fresh: the /me tokens of the start may be near expiry
    me = CONNECTIONS - LOGIN_CONNECTIONS - len(refresh_pairs) - len(patch_pairs)
    groups: list[dict[str, Any]] = [
        {"url": f"{base}/api/v1/users/me", "connections": me // GROUPS + (i < me % GROUPS),
         "headers": {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}}
        for i in range(GROUPS)
    ]  # fmt: skip
    if max(g["connections"] for g in groups) > GROUP:
        raise ValueError(f"a hey process keeps at most {GROUP} connections open")
    # The logging-in users in processes of 2 between the /me groups, as in users-1000 (bench/run.py): one process
    # would send all its logins in the same millisecond every 2 seconds.
    login = {"url": f"{base}/api/v1/auth/login", "connections": 2, "method": "POST",
             "body": json.dumps({"login": "user0@bench.example.com", "password": password})}  # fmt: skip
    for slot in range(LOGIN_CONNECTIONS // 2):
        groups.insert(len(groups) * slot // (LOGIN_CONNECTIONS // 2), dict(login))
    overflows, cpu = listen_overflows(), generator_cpu()
    started = time.monotonic()

    async def count(held: list[int]) -> None:
        await asyncio.sleep(4.0)  # the groups start over 2 s, and their connections open on the first tick
        deadline = time.monotonic() + seconds - 5.0
        while time.monotonic() < deadline:
            held.append(await asyncio.to_thread(established, port))
            await asyncio.sleep(1.0)

    async def drive(held: list[int]) -> tuple[list[subprocess.Popen[str]], list[tuple[float, int]]]:
        python = [
            asyncio.create_task(python_users(base, refresh_pairs, seconds, every=2.0, action="refresh")),
            asyncio.create_task(python_users(base, patch_pairs, seconds, every=2.0, action="patch")),
        ]
        counting = asyncio.create_task(count(held))
        processes = []
        for group in groups:
            processes.append(hey(qps=0.5, seconds=seconds, **group))
            await asyncio.sleep(2.0 / len(groups))
        samples = [s for samples in await asyncio.gather(*python) for s in samples]
        await counting
        return processes, samples

    held: list[int] = []
    processes: list[subprocess.Popen[str]] = []
    try:
        processes, python_samples = asyncio.run(drive(held))
        samples = [s for p in processes for s in hey_samples(p)] + python_samples
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    elapsed = time.monotonic() - started
    python_cores, hey_cores = ((after - before) / elapsed for after, before in zip(generator_cpu(), cpu, strict=True))
    connections = sum(g["connections"] for g in groups) + len(refresh_pairs) + len(patch_pairs)
    seen = f"{min(held)}-{max(held)}" if held else "not counted"
    note = (
        f"{me} /me, {len(patch_pairs)} PATCH /me, {len(refresh_pairs)} refresh, {LOGIN_CONNECTIONS} login; "
        f"0.5 req/s each; {seen} connections held; {listen_overflows() - overflows} listen overflows; "
        f"worker RSS {worker_rss()} MiB"
    )
    row = mixed_row("users-5000", connections, samples, seconds, note)
    row.extra = {"established": held, "established_median": statistics.median(held) if held else 0,
                 "python_cores": round(python_cores, 2), "hey_cores": round(hey_cores, 2)}  # fmt: skip
    return [row]


def main() -> int:
    """Only this scenario, on a fresh database (``python bench/users_5000.py --seconds 20``)."""
    import argparse
    import os
    import shutil
    import tempfile

    import run

    parser = argparse.ArgumentParser(description="users-5000 alone, the way `make bench` runs it")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=11, help="bcrypt cost (the service default is 11)")
    args = parser.parse_args()
    if raise_file_limit() < FILES_NEEDED:
        parser.error(f"users-5000 needs {FILES_NEEDED} open files; raise the hard limit (ulimit -Hn)")
    database_url = asyncio.run(run.create_database())
    data_dir = Path(tempfile.mkdtemp(prefix="usermgmt-bench-"))
    service = run.Service(database_url, data_dir, args.workers)
    service.env["USERMGMT_BCRYPT_ROUNDS"] = str(args.rounds)
    try:
        service.migrate()
        emails = asyncio.run(run.seed_users(database_url, SESSIONS + 1, args.rounds))
        service.start()
        pairs = asyncio.run(run.log_in(service.base, emails[1:], concurrency=2 * (os.cpu_count() or 1)))
        rows = users_5000(service.base, service.port, pairs[:REFRESHING], pairs[REFRESHING:], args.seconds,
                          password=run.PASSWORD, worker_rss=service.worker_rss_mib, hey=run.hey,
                          hey_samples=run.hey_samples, python_users=run.python_users, mixed_row=run.mixed_row)  # fmt: skip
        rss = service.worker_rss_mib()
    finally:
        service.stop()
        asyncio.run(run.drop_database(database_url))
        shutil.rmtree(data_dir, ignore_errors=True)
    for r in rows:
        print(f"{r.scenario} {r.connections} conns: {r.rps} req/s, p50 {r.p50_ms} ms, p99 {r.p99_ms} ms, "
              f"mean {r.mean_ms} ms, {r.errors} errors of {r.requests}; {r.note}")  # fmt: skip
    print(f"CPU of the load generators: hey {rows[0].extra['hey_cores']} cores, "
          f"the Python users {rows[0].extra['python_cores']} cores")  # fmt: skip
    print(f"worker RSS after the run (MiB): {rss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
