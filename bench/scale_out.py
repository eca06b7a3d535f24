"""`make bench BENCH_ARGS="--scale-out"`: /me through HAProxy, on 1 then 2 instances of 1 worker (issue 14).

Runs after the normal scenarios (add ``--quick --repeat 1`` to keep those short), once their service is stopped,
on the same database, seeded users, access tokens (me.lua's) and signing keys. Each topology is instances of
`usermgmt serve --workers 1`, one PostgreSQL and one Redis (USERMGMT_BENCH_REDIS_URL, default
redis://127.0.0.1:6379/0), behind HAProxy on loopback (tests/support/cluster.py: round-robin, server connections
reused, one thread). Per topology, two wrk runs at 50 connections through HAProxy: GET /healthz, the ceiling of the
HTTP stack behind the balancer, and GET /api/v1/users/me. Rows: ``scale-out 1x1 limit-http``, ``scale-out 1x1
/me``, then the same for 2x1, whose /me note gives the ratio 2x1 / 1x1. On 2 cores that wrk, HAProxy, PostgreSQL
and the instances share, the ratio says how far the second instance still adds throughput, not how a cluster of
separate machines scales.

Every instance and HAProxy is stopped on the way out, also when a run fails.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("USERMGMT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
TOPOLOGIES = (1, 2)  # instances, of 1 worker each
CONNECTIONS = 50

Wrk = Callable[..., dict[str, Any]]
WrkRow = Callable[..., Any]

if str(ROOT) not in sys.path:  # tests.support.cluster: the instances and HAProxy, as the scale-out tests start them
    sys.path.insert(0, str(ROOT))


def haproxy_missing() -> bool:
    from tests.support.cluster import haproxy_binary

    return haproxy_binary() is None


def cpu_seconds(instances: tuple[str, ...]) -> Counter[str]:
    """CPU seconds used so far, by role: the instances (by their ports), HAProxy, and every PostgreSQL process
    of the machine (wrk, short-lived, is left out: it is what remains of the cores)."""
    ports = [f"--port\0{urlsplit(base).port}\0".encode() for base in instances]
    tick = os.sysconf("SC_CLK_TCK")
    used: Counter[str] = Counter()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            text = stat.read_text()
            comm, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
            if comm in ("haproxy", "postgres"):
                role = comm
            elif any(port in (stat.parent / "cmdline").read_bytes() for port in ports):
                role = "instances"
            else:
                continue
            used[role] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return used


def run(
    service_env: Mapping[str, str], lua_env: Mapping[str, str], *, seconds: int, wrk: Wrk, wrk_row: WrkRow
) -> list[Any]:
    """The scale-out rows: ``wrk`` and ``wrk_row`` are bench/run.py's, ``service_env`` the bench service's
    environment (database, data folder with the signing keys, settings), ``lua_env`` me.lua's."""
    from tests.support.cluster import cluster

    env = {**service_env, "USERMGMT_REDIS_URL": REDIS_URL}
    rows, me_rps = [], {}
    for instances in TOPOLOGIES:
        name = f"scale-out {instances}x1"
        with cluster(env, instances=instances, workers=1) as started:
            print(f"{name}: HAProxy on {started.base}, instances {', '.join(started.instances)}", file=sys.stderr)
            http = wrk(started.base, "/healthz", connections=CONNECTIONS, seconds=seconds)
            before, started_at = cpu_seconds(started.instances), time.monotonic()
            me = wrk(started.base, "/", connections=CONNECTIONS, seconds=seconds, script="me.lua", env=dict(lua_env))
            elapsed, after = time.monotonic() - started_at, cpu_seconds(started.instances)
        cores = {
            role: round((after[role] - before[role]) / elapsed, 2) for role in ("instances", "haproxy", "postgres")
        }
        me_rps[instances] = me["rps"]
        note = f"{me['rps'] / http['rps']:.0%} of limit-http; cores: " + ", ".join(f"{k} {v}" for k, v in cores.items())
        if instances > 1:
            note = f"{me['rps'] / me_rps[1]:.2f}x 1x1 /me; {note}"
        rows.append(wrk_row(f"{name} limit-http", CONNECTIONS, http, "through HAProxy"))
        rows.append(wrk_row(f"{name} /me", CONNECTIONS, me, note))
        for row in rows[-2:]:
            row.extra.update(instances=instances, workers_per_instance=1, balancer="haproxy")
        rows[-1].extra["cores_during_me"] = cores
    return rows
