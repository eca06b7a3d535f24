"""The container health probe (`python -m usermgmt.entrypoints.healthcheck`) against `usermgmt serve`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.proxy import free_port
from tests.support.server import ROOT, migrate, serve, service_env

TRUSTED_HOSTS = "*.example.org,api.example.com"


def probe(url: str, trusted_hosts: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("USERMGMT_")}
    if trusted_hosts is not None:
        env["USERMGMT_TRUSTED_HOSTS"] = trusted_hosts
    return subprocess.run(
        [sys.executable, "-m", "usermgmt.entrypoints.healthcheck", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def served(tmp_path: Path, *, host: str | None = None, **settings: str) -> Iterator[str]:
    env = service_env(tmp_path / "var", **settings)
    migrate(env)
    with serve(env, host=host) as base:
        yield base


@pytest.fixture(scope="module")
def restricted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from served(tmp_path_factory.mktemp("restricted"), host="api.example.com", trusted_hosts=TRUSTED_HOSTS)


@pytest.fixture(scope="module")
def open_to_any_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from served(tmp_path_factory.mktemp("open"))


def test_with_trusted_hosts_set_a_plain_probe_is_refused_but_the_health_check_passes(restricted: str) -> None:
    assert httpx.get(f"{restricted}/healthz").json()["code"] == "invalid_host"  # what the old HEALTHCHECK got
    assert probe(f"{restricted}/healthz", TRUSTED_HOSTS).returncode == 0  # sends Host: healthcheck.example.org
    assert probe(f"{restricted}/healthz", "api.example.com").returncode == 0


def test_without_the_variable_it_sends_the_urls_host(restricted: str, open_to_any_host: str) -> None:
    assert probe(f"{open_to_any_host}/healthz", None).returncode == 0
    assert probe(f"{open_to_any_host}/healthz", "*").returncode == 0
    refused = probe(f"{restricted}/healthz", None)  # 127.0.0.1 is not trusted there
    assert refused.returncode == 1
    assert refused.stderr.strip().endswith(": 400")


def test_anything_but_200_is_unhealthy(open_to_any_host: str) -> None:
    missing = probe(f"{open_to_any_host}/no-such-path", None)
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith(": 404")
    down = probe(f"http://127.0.0.1:{free_port()}/healthz", None)  # nothing listens there
    assert down.returncode == 1
    assert "ConnectionRefusedError" in down.stderr


def test_the_image_health_check_runs_it() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    command = re.search(r"^HEALTHCHECK .*\\\n\s+CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert command is not None
    assert command.group(1) == '["python", "-m", "usermgmt.entrypoints.healthcheck", "http://127.0.0.1:8000/healthz"]'
