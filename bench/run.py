"""`make bench`: the service on a fresh PostgreSQL database, loaded from separate processes on 127.0.0.1.

Starts `usermgmt serve` (N workers, rate limits off, bcrypt at the default cost), seeds users, drives load with
wrk (maximum throughput) and hey (fixed-rate many-user runs), and prints one table: scenario, req/s, p50, p99,
errors, with the limits measured in the same run and the ratios against them. Raw results go to
bench-results/<timestamp>.json (not committed).

Every scenario runs --repeat times (default 2) back to back: with 2 workers the kernel spreads connections
unevenly between them, so one run can be off by up to 1.75x.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import io
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

import mixed
import scale_out
import users_5000

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"
LUA = ROOT / "bench" / "lua"
RESULTS = ROOT / "bench-results"
PASSWORD = "bench passphrase that is long enough"
INTROSPECTION_CLIENT = ("bench", "a bench introspection secret")  # the introspect scenario's caller
# Users 0-259 log in before the load and hold the sessions of the /me, refresh and PATCH scenarios; login.lua
# logs in the users from this one on, so that its logins are real ones and not refused empty ones.
FIRST_LOGIN_USER = 300
ADMIN_URL = os.environ.get("USERMGMT_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Row:
    scenario: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    requests: int
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- the service


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_database() -> str:
    name = f"usermgmt_bench_{datetime.now(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(url: str) -> None:
    connection = await asyncpg.connect(ADMIN_URL)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await connection.close()


class Service:
    def __init__(self, database_url: str, data_dir: Path, workers: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("USERMGMT_")}
        self.env.update(
            USERMGMT_DATA_DIR=str(data_dir),
            USERMGMT_DATABASE_URL=database_url.replace("postgresql://", "postgresql+asyncpg://", 1),
            USERMGMT_RATE_LIMITS_ENABLED="false",
            USERMGMT_DATABASE_POOL_SIZE=os.environ.get("BENCH_POOL_SIZE", "20"),
            USERMGMT_DATABASE_PRINCIPAL_POOL_SIZE=os.environ.get("BENCH_POOL_SIZE", "20"),  # as measured before
            USERMGMT_INTROSPECTION_CLIENTS=json.dumps({INTROSPECTION_CLIENT[0]: INTROSPECTION_CLIENT[1]}),
        )
        self.process: subprocess.Popen[bytes] | None = None

    def migrate(self) -> None:
        subprocess.run([BIN / "usermgmt", "migrate"], cwd=ROOT, env=self.env, check=True, capture_output=True)

    def start(self) -> None:
        self.process = subprocess.Popen(
            [BIN / "usermgmt", "serve", "--port", str(self.port), "--workers", str(self.workers)]
            + ["--log-level", "warning"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200 and len(self.worker_pids()) >= 1:
                    time.sleep(1.0)  # let every worker finish starting
                    return
            time.sleep(0.2)
        raise RuntimeError("the service did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def worker_pids(self) -> list[int]:
        if self.process is None:
            return []
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.process.pid:
                    children.append(int(stat.parent.name))
        return children or [self.process.pid]

    def worker_rss_mib(self) -> list[float]:
        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        sizes.append(round(int(line.split()[1]) / 1024, 1))
        return sizes


# ---------------------------------------------------------------- seeding


async def seed_users(database_url: str, count: int, rounds: int) -> list[str]:
    """Insert ``count`` users sharing one password hash (hashed once, at the service's cost)."""
    sys.path.insert(0, str(ROOT / "src"))
    from passlib.context import CryptContext

    from usermgmt.adapters.system import UuidV7Generator
    from usermgmt.domain.value_objects import Email

    password_hash = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds).hash(PASSWORD)
    ids, now = UuidV7Generator(), datetime.now(UTC)
    emails = [f"user{i}@bench.example.com" for i in range(count)]
    rows = [
        (ids.new_user_id(), e, Email(e).canonical, None, None, None, password_hash, False, True, now, now, now, 1)
        for e in emails
    ]
    connection = await asyncpg.connect(database_url)
    try:
        await connection.copy_records_to_table(
            "users",
            records=rows,
            columns=[
                "id", "email", "email_canonical", "username", "username_canonical", "full_name", "password_hash",
                "email_verified", "is_active", "created_at", "updated_at", "password_changed_at", "version",
            ],
        )  # fmt: skip
    finally:
        await connection.close()
    return emails


async def log_in(base: str, emails: list[str], concurrency: int) -> list[dict[str, Any]]:
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:

        async def one(email: str) -> dict[str, Any]:
            async with semaphore:
                while True:  # a login shed under load (503 service_busy) comes back after its Retry-After
                    response = await client.post("/api/v1/auth/login", json={"login": email, "password": PASSWORD})
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                response.raise_for_status()
                return dict(response.json())

        return list(await asyncio.gather(*(one(e) for e in emails)))


# ---------------------------------------------------------------- load generators


def wrk(
    base: str,
    path: str,
    *,
    connections: int,
    seconds: int,
    script: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    threads = max(1, min(2, connections))
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    command += ["-s", str(LUA / (script or "report.lua"))]
    run_env = {**os.environ, "BENCH_LUA_DIR": str(LUA), **(env or {})}
    out = subprocess.run(command + [base + path], capture_output=True, text=True, env=run_env, check=True).stdout
    result = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    # Answers shed under load (503 service_busy, counted by login.lua) are neither served requests nor errors: the
    # client waited their Retry-After. Their latency is in wrk's percentiles, but they answer in about a millisecond.
    result["errors"] -= result["shed"]
    result["rps"] = (result["requests"] - result["shed"]) / (result["duration_us"] / 1e6)
    return result


def wrk_row(name: str, connections: int, result: dict[str, Any], note: str = "") -> Row:
    return Row(
        scenario=name,
        connections=connections,
        rps=round(result["rps"], 1),
        p50_ms=round(result["p50_us"] / 1000, 2),
        p99_ms=round(result["p99_us"] / 1000, 2),
        mean_ms=round(result["mean_us"] / 1000, 2),
        errors=result["errors"],
        requests=result["requests"],
        note=note,
    )


def hey(
    url: str, *, connections: int, qps: float, seconds: int, method: str = "GET", body: str | None = None,
    headers: dict[str, str] | None = None,
) -> subprocess.Popen[str]:  # fmt: skip
    command = [
        "hey",
        "-c",
        str(connections),
        "-q",
        str(qps),
        "-z",
        f"{seconds}s",
        "-m",
        method,
        "-o",
        "csv",
        "-t",
        "10",
    ]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if body is not None:
        command += ["-T", "application/json", "-d", body]
    return subprocess.Popen(command + [url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def hey_samples(process: subprocess.Popen[str]) -> list[tuple[float, int]]:
    out, _ = process.communicate()
    samples = []
    for record in csv.DictReader(io.StringIO(out)):
        samples.append((float(record["response-time"]), int(record["status-code"])))
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else 0.0


# ---------------------------------------------------------------- scenarios


def limit_hash(rounds: int) -> tuple[float, float]:
    """(verify seconds at the configured cost, cores / that): the login ceiling of this machine."""
    from passlib.context import CryptContext

    context = CryptContext(schemes=["bcrypt_sha256"], bcrypt_sha256__rounds=rounds)
    stored = context.hash(PASSWORD)
    times = []
    for _ in range(8):
        started = time.perf_counter()
        context.verify(PASSWORD, stored)
        times.append(time.perf_counter() - started)
    verify = statistics.median(times)
    return verify, (os.cpu_count() or 1) / verify


async def python_users(
    base: str, pairs: list[dict[str, Any]], seconds: int, every: float, action: str
) -> list[tuple[float, int]]:
    """Users on a fixed rhythm, each with their own tokens: ``refresh`` keeps its own rotating refresh token,
    ``patch`` updates its own profile (concurrent updates of one account would rightly get 409)."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(pairs), max_keepalive_connections=len(pairs))
    async with httpx.AsyncClient(base_url=base, timeout=10, limits=limits) as client:

        async def user(pair: dict[str, Any], offset: float) -> None:
            token = pair["refresh_token"]
            auth = {"Authorization": f"Bearer {pair['access_token']}"}
            await asyncio.sleep(offset)
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    if action == "patch":
                        response = await client.patch("/api/v1/users/me", headers=auth, json={"full_name": "Load"})
                    else:
                        response = await client.post("/api/v1/auth/refresh", json={"refresh_token": token})
                    status = response.status_code
                    if status == 200 and action == "refresh":
                        token = response.json()["refresh_token"]
                except httpx.HTTPError:
                    status = 0
                samples.append((time.perf_counter() - started, status))
                await asyncio.sleep(max(0.0, every - (time.perf_counter() - started)))

        await asyncio.gather(*(user(p, i * every / len(pairs)) for i, p in enumerate(pairs)))
    return samples


def mixed_row(name: str, connections: int, samples: list[tuple[float, int]], seconds: int, note: str) -> Row:
    latencies = [s for s, _ in samples]
    failed = Counter(status for _, status in samples if not 200 <= status < 300)
    errors = sum(failed.values())
    if failed:
        note += f"; failures by status: {dict(failed)}"
    return Row(
        scenario=name,
        connections=connections,
        rps=round(len(samples) / seconds, 1),
        p50_ms=round(percentile(latencies, 50) * 1000, 2),
        p99_ms=round(percentile(latencies, 99) * 1000, 2),
        mean_ms=round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
        errors=errors,
        requests=len(samples),
        note=note,
    )


def users_1000(
    base: str, tokens: list[str], refresh_pairs: list[dict[str, Any]], patch_pairs: list[dict[str, Any]], seconds: int
) -> list[Row]:
    """1,000 connections, each a user sending about one request every two seconds: mostly /me, some PATCH /me,
    refreshes and a few logins. hey drives the fixed-rate HTTP mix; the refreshing users need their own client,
    since each must present the token its previous refresh returned.

    hey's connections of one process tick in step, so the groups start spread over one 2-second period, as real
    users' requests are (1,000 people do not click at the same instant).
    """
    groups: list[dict[str, Any]] = [
        {"url": f"{base}/api/v1/users/me", "connections": 88,
         "headers": {"Authorization": f"Bearer {tokens[i % len(tokens)]}"}}
        for i in range(10)
    ]  # fmt: skip
    # The 10 logging-in users in 5 processes of 2, placed between the /me groups: one process of 10 would send its
    # 10 logins in the same millisecond every 2 seconds, a burst that 10 independent people never make (and that
    # the service now sheds, issue 14: 503 service_busy beyond the logins its hash threads can start at once).
    logins = {"url": f"{base}/api/v1/auth/login", "connections": 2, "method": "POST",
              "body": json.dumps({"login": "user0@bench.example.com", "password": PASSWORD})}  # fmt: skip
    for slot in range(5):
        groups.insert(3 * slot + 1, dict(logins))

    async def drive() -> tuple[list[subprocess.Popen[str]], list[tuple[float, int]]]:
        python = [
            asyncio.create_task(python_users(base, refresh_pairs, seconds, every=2.0, action="refresh")),
            asyncio.create_task(python_users(base, patch_pairs, seconds, every=2.0, action="patch")),
        ]
        processes = []
        for group in groups:
            processes.append(hey(qps=0.5, seconds=seconds, **group))
            await asyncio.sleep(2.0 / len(groups))
        return processes, [s for samples in await asyncio.gather(*python) for s in samples]

    processes, refresh_samples = asyncio.run(drive())
    samples = [s for p in processes for s in hey_samples(p)] + refresh_samples
    connections = sum(g["connections"] for g in groups) + len(refresh_pairs) + len(patch_pairs)
    note = f"880 /me, {len(patch_pairs)} PATCH /me, {len(refresh_pairs)} refresh, 10 login; 0.5 req/s each"
    return [mixed_row("users-1000", connections, samples, seconds, note)]


# ---------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10, help="duration of each wrk scenario")
    parser.add_argument("--users-seconds", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--users", type=int, default=2000, help="seeded users")
    parser.add_argument("--rounds", type=int, default=11, help="bcrypt cost (the service default is 11)")
    parser.add_argument("--quick", action="store_true", help="only the limits, /me and login (for A/B checks)")
    parser.add_argument("--scale-out", action="store_true", help="then /me through HAProxy on 1 and 2 instances")
    parser.add_argument("--no-users-5000", action="store_true", help="skip users-5000 (5,000 connections, once)")
    args = parser.parse_args()
    if args.users <= FIRST_LOGIN_USER:
        parser.error(
            f"--users must be more than {FIRST_LOGIN_USER}, not {args.users}: users 0-259 hold the sessions of the "
            f"other scenarios, and the login scenario logs in users {FIRST_LOGIN_USER} and up"
        )
    for name, least in (("workers", 1), ("seconds", 2), ("users_seconds", 1), ("repeat", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be at least {least}")
    if not 10 <= args.rounds <= 16:
        parser.error("--rounds must be 10 to 16, the costs USERMGMT_BCRYPT_ROUNDS accepts")
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: apt-get install wrk hey (Debian packages)", file=sys.stderr)
            return 2
    if args.scale_out and scale_out.haproxy_missing():
        print("haproxy is missing: apt-get install haproxy (Debian package)", file=sys.stderr)
        return 2
    files = users_5000.raise_file_limit()  # before the services and hey start: they inherit it
    if not (args.quick or args.no_users_5000) and files < users_5000.FILES_NEEDED:
        print(f"users-5000 needs {users_5000.FILES_NEEDED} open files and the hard limit is {files}: raise it "
              "(ulimit -Hn) or pass --no-users-5000", file=sys.stderr)  # fmt: skip
        return 2

    database_url = asyncio.run(create_database())
    data_dir = Path(tempfile.mkdtemp(prefix="usermgmt-bench-"))
    service = Service(database_url, data_dir, args.workers)
    service.env["USERMGMT_BCRYPT_ROUNDS"] = str(args.rounds)
    rows: list[Row] = []
    meta: dict[str, Any] = {}
    metered: Service | None = None
    try:
        service.migrate()
        emails = asyncio.run(seed_users(database_url, args.users, args.rounds))
        service.start()
        # The same service with its metrics on (issue 15), idle beside the first until its /me row: the cost of the
        # metrics is the ratio of the two rows, measured back to back in every repeat.
        metered = Service(database_url, data_dir, args.workers)
        metered.env = {**service.env, "USERMGMT_METRICS_PORT": str(free_port())}
        metered.start()
        print(f"service on {service.base}, {args.workers} workers, {len(emails)} users seeded", file=sys.stderr)
        pairs = asyncio.run(log_in(service.base, emails[:210], concurrency=2 * (os.cpu_count() or 1)))
        tokens = [p["access_token"] for p in pairs[:100]]
        refresh_pairs, patch_pairs = pairs[100:150], pairs[150:210]
        workdir = Path(tempfile.mkdtemp(prefix="usermgmt-bench-files-"))
        (workdir / "tokens").write_text("\n".join(tokens) + "\n")
        (workdir / "users").write_text("\n".join(emails[FIRST_LOGIN_USER:]) + "\n")
        lua_env = {"TOKENS_FILE": str(workdir / "tokens"), "USERS_FILE": str(workdir / "users"),
                   "BENCH_PASSWORD": PASSWORD,
                   "INTROSPECTION_BASIC_B64": base64.b64encode(":".join(INTROSPECTION_CLIENT).encode()).decode()}  # fmt: skip
        cores = os.cpu_count() or 1
        verify_seconds, hash_ceiling = limit_hash(args.rounds)
        meta.update(verify_ms=round(verify_seconds * 1000, 1), limit_hash_rps=round(hash_ceiling, 1))

        for attempt in range(1, args.repeat + 1):
            tag = f"#{attempt}"
            http = wrk(service.base, "/healthz", connections=50, seconds=args.seconds)
            rows.append(wrk_row(f"limit-http {tag}", 50, http))
            rows.append(Row(f"limit-hash {tag}", cores, round(hash_ceiling, 1), round(verify_seconds * 1000, 1),
                            0, 0, 0, 0, note=f"{cores} cores / {verify_seconds * 1000:.0f} ms verify"))  # fmt: skip
            for connections in (50, 256):
                me = wrk(service.base, "/", connections=connections, seconds=args.seconds, script="me.lua", env=lua_env)
                ratio = me["rps"] / http["rps"]
                rows.append(wrk_row(f"me {tag}", connections, me, f"{ratio:.0%} of limit-http"))
                if connections == 50:
                    solo_me = me["rps"]
                    # A-B-A: the metered run between two plain ones, compared with their mean, so that a drift of
                    # this shared machine during the three runs does not pass for the metrics' cost.
                    with_metrics = wrk(metered.base, "/", connections=50, seconds=args.seconds, script="me.lua",
                                       env=lua_env)  # fmt: skip
                    again = wrk(service.base, "/", connections=50, seconds=args.seconds, script="me.lua", env=lua_env)
                    rows.append(
                        wrk_row(f"me (again) {tag}", 50, again, f"{again['rps'] / http['rps']:.0%} of limit-http")
                    )
                    plain = (solo_me + again["rps"]) / 2
                    rows.append(wrk_row(f"me+metrics {tag}", 50, with_metrics,
                                        f"{with_metrics['rps'] / plain:.0%} of /me without metrics"))  # fmt: skip
            introspect = wrk(service.base, "/", connections=50, seconds=args.seconds, script="introspect.lua",
                             env=lua_env)  # fmt: skip
            rows.append(wrk_row(f"introspect {tag}", 50, introspect, f"{introspect['rps'] / solo_me:.0%} of /me"))
            for connections in (cores, 2 * cores):  # the p50 target is at concurrency <= cores
                login = wrk(service.base, "/", connections=connections, seconds=args.seconds, script="login.lua",
                            env=lua_env)  # fmt: skip
                shed = f"; {login['shed']} shed (503)" if login["shed"] else ""
                rows.append(wrk_row(f"login {tag}", connections, login,
                                    f"{login['rps'] / hash_ceiling:.0%} of limit-hash{shed}"))  # fmt: skip
            # Issue 14: /me @50 and login @16 together, each against its solo rate of this repeat (bench/mixed.py).
            rows += mixed.run(
                service.base, emails[FIRST_LOGIN_USER:], PASSWORD, seconds=args.seconds, tag=tag, solo_me_rps=solo_me,
                me=lambda seconds: wrk(service.base, "/", connections=50, seconds=seconds, script="me.lua",
                                       env=lua_env),
                wrk_row=wrk_row, row=Row, percentile=percentile,
            )  # fmt: skip
            if args.quick:
                continue

            solo = next(r for r in reversed(rows) if r.scenario == f"me {tag}" and r.connections == 50)
            storm = subprocess.Popen(
                ["wrk", "-t1", f"-c{2 * cores}", f"-d{args.seconds}s", "--latency", "-s", str(LUA / "login.lua"),
                 service.base + "/"],
                env={**os.environ, "BENCH_LUA_DIR": str(LUA), **lua_env}, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
            during = wrk(service.base, "/", connections=50, seconds=args.seconds - 1, script="me.lua", env=lua_env)
            storm.wait()
            rows.append(wrk_row(f"login-storm + me {tag}", 50, during, f"{during['rps'] / solo.rps:.0%} of solo /me"))

            register = wrk(service.base, "/", connections=2 * cores, seconds=args.seconds, script="register.lua",
                           env={**lua_env, "BENCH_RUN_ID": f"{int(time.time())}{attempt}"})  # fmt: skip
            rows.append(wrk_row(f"register {tag}", 2 * cores, register))

            rows += [
                Row(r.scenario + f" {tag}", r.connections, r.rps, r.p50_ms, r.p99_ms, r.mean_ms, r.errors, r.requests,
                    r.note)
                for r in users_1000(service.base, tokens, refresh_pairs, patch_pairs, args.users_seconds)
            ]  # fmt: skip
            refresh_pairs = asyncio.run(log_in(service.base, emails[210:260], concurrency=2 * cores))

        if not (args.quick or args.no_users_5000):  # bench/users_5000.py, once, after the repeats
            sessions = asyncio.run(log_in(service.base, emails[-users_5000.SESSIONS :], concurrency=2 * cores))
            rows += users_5000.users_5000(
                service.base, service.port, sessions[: users_5000.REFRESHING], sessions[users_5000.REFRESHING :],
                args.users_seconds, password=PASSWORD, worker_rss=service.worker_rss_mib, hey=hey,
                hey_samples=hey_samples, python_users=python_users, mixed_row=mixed_row,
            )  # fmt: skip
        meta["worker_rss_mib"] = service.worker_rss_mib()
        if args.scale_out:  # bench/scale_out.py, on the cores and connections the stopped services leave
            service.stop()
            metered.stop()
            rows += scale_out.run(service.env, lua_env, seconds=args.seconds, wrk=wrk, wrk_row=wrk_row)
    finally:
        service.stop()
        if metered is not None:
            metered.stop()
        asyncio.run(drop_database(database_url))
        shutil.rmtree(data_dir, ignore_errors=True)

    meta.update(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=f"{platform.node()} {platform.machine()} {os.cpu_count()} cores",
        python=platform.python_version(),
        workers=args.workers,
        bcrypt_rounds=args.rounds,
        seconds=args.seconds,
    )
    print_table(rows, meta)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=2))
    print(f"\nraw results: {path.relative_to(ROOT)}")
    return 0


def print_table(rows: list[Row], meta: dict[str, Any]) -> None:
    print(f"\nusermgmt bench {meta['date']} on {meta['machine']}, Python {meta['python']}, "
          f"{meta['workers']} workers, bcrypt cost {meta['bcrypt_rounds']}, rate limits off")  # fmt: skip
    header = (
        f"{'scenario':<24} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'errors':>6}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r.scenario:<24} {r.connections:>5} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.mean_ms:>8.2f} {r.errors:>6}  {r.note}")  # fmt: skip
    print(f"worker RSS after the run (MiB): {meta.get('worker_rss_mib')}")


if __name__ == "__main__":
    sys.exit(main())
