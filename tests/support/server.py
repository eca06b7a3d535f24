"""The real service in a subprocess (`usermgmt serve`), for tests that must talk to it over a socket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.proxy import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def service_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without any USERMGMT_ setting of the developer's, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERMGMT_")}
    env["USERMGMT_DATA_DIR"] = str(data_dir)
    env.update({f"USERMGMT_{name.upper()}": value for name, value in settings.items()})
    return env


def migrate(env: Mapping[str, str]) -> None:
    subprocess.run([BIN / "usermgmt", "migrate"], cwd=ROOT, env=dict(env), check=True, capture_output=True, timeout=60)


@contextmanager
def serve(
    env: Mapping[str, str], *, workers: int = 1, args: Sequence[str] = (), host: str | None = None
) -> Iterator[str]:
    """Start the service (with ``args`` added to `usermgmt serve`'s); yield its base URL once /readyz says ready
    (asked with ``Host: host``, if given); stop it afterwards."""
    port = free_port()
    process = subprocess.Popen(
        [BIN / "usermgmt", "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning", *args],
        cwd=ROOT,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/readyz", headers={"Host": host} if host else {}, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                errors = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"the server did not start:\n{errors[-4000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
