"""Scale-out on loopback: instances of the real service (`usermgmt serve`) behind HAProxy, for the tests and the
bench (bench/scale_out.py).

HAProxy is Debian's binary, run in the foreground (``haproxy -db``) on a generated configuration; the Debian
service is never started. It balances round-robin over the instances, reuses its server connections
(``http-reuse safe``), checks each instance's GET /readyz every second, passes the client's address on in
X-Forwarded-For (the instances trust it from 127.0.0.1, as they would a real balancer's) and names the instance
that answered in an X-Served-By response header.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import httpx

from tests.support.proxy import free_port
from tests.support.server import serve

SERVED_BY = "X-Served-By"
HEALTH_CHECK_HOST = "localhost"  # the Host of the checks: USERMGMT_TRUSTED_HOSTS must accept it (default: any)

CONFIG = """\
global
    maxconn 4096
    nbthread {threads}

defaults
    mode http
    option forwardfor
    http-reuse safe
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 10s
    timeout queue 10s
    timeout check 2s

frontend usermgmt
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host {host}
    http-check expect status 200
    http-response set-header {served_by} %[srv_name]
{servers}
"""


def haproxy_binary() -> str | None:
    """The haproxy command (`make test` installs it from Debian when missing), or None."""
    found = shutil.which("haproxy")
    if found is None and Path("/usr/sbin/haproxy").is_file():  # PATH of a non-root user may lack /usr/sbin
        found = "/usr/sbin/haproxy"
    return found


def haproxy_config(port: int, backends: Sequence[str], *, threads: int = 1) -> str:
    """HAProxy's configuration: listen on 127.0.0.1:``port`` and balance over ``backends`` (base URLs), which
    are named usermgmt1, usermgmt2… in X-Served-By."""
    servers = "\n".join(
        f"    server usermgmt{n} {urlsplit(base).netloc} check inter 1s fall 2 rise 1"
        for n, base in enumerate(backends, start=1)
    )
    return CONFIG.format(port=port, threads=threads, host=HEALTH_CHECK_HOST, served_by=SERVED_BY, servers=servers)


@contextmanager
def balance(backends: Sequence[str], *, threads: int = 1) -> Iterator[str]:
    """Run HAProxy in front of ``backends``; yield its base URL once every backend has answered through it; stop
    it afterwards."""
    binary = haproxy_binary()
    if binary is None:
        raise RuntimeError("haproxy is missing: apt-get install haproxy (`make test` does)")
    port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="usermgmt-haproxy-") as folder,
        (Path(folder) / "stderr").open("w+b") as log,
    ):
        config = Path(folder) / "haproxy.cfg"
        config.write_text(haproxy_config(port, backends, threads=threads))
        process = subprocess.Popen([binary, "-f", str(config), "-db"], stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_for_every_backend(process, base, len(backends), log)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_every_backend(process: subprocess.Popen[bytes], base: str, count: int, log: IO[bytes]) -> None:
    expected = {f"usermgmt{n}" for n in range(1, count + 1)}
    seen: set[str] = set()
    deadline = time.monotonic() + 20
    while seen != expected:
        try:
            response = httpx.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                seen.add(response.headers.get(SERVED_BY, ""))
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"haproxy did not pass to {sorted(expected - seen)}:\n{output[-4000:]}")
        time.sleep(0.1)


@dataclass(frozen=True)
class Cluster:
    base: str  # through HAProxy
    instances: tuple[str, ...]  # each instance's own base URL, in the order of their X-Served-By names


def instance_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` for an instance behind the balancer: X-Forwarded-For believed from loopback, where HAProxy runs."""
    return {**env, "USERMGMT_TRUSTED_PROXIES": "127.0.0.1"}


@contextmanager
def cluster(env: Mapping[str, str], *, instances: int = 2, workers: int = 1, threads: int = 1) -> Iterator[Cluster]:
    """``instances`` services of ``workers`` workers each, all on ``env`` (one database, one signing-key folder,
    one Redis), behind HAProxy; stopped afterwards, also when one fails to start.

    The first starts alone: on a folder without a signing key it generates the development key, which the others
    then load. Started together, each would generate its own, and sign tokens that the others refuse.
    """
    with ExitStack() as stack:
        first = stack.enter_context(serve(instance_env(env), workers=workers))
        others = [serve(instance_env(env), workers=workers) for _ in range(instances - 1)]
        with ThreadPoolExecutor(max_workers=max(1, len(others))) as pool:
            started = [pool.submit(stack.enter_context, context) for context in others]
        bases = (first, *(future.result() for future in started))
        yield Cluster(base=stack.enter_context(balance(bases, threads=threads)), instances=bases)
