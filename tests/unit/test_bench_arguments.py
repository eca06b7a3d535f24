"""bench/run.py refuses arguments that would measure something else than it reports (without running it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # An empty PATH: wrk and hey are never found, so an accepted command line stops at that check, before any
    # database or server is touched.
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *args],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("users", ["0", "210", "300"])
def test_too_few_users_for_the_login_scenario_are_refused(users: str, tmp_path: Path) -> None:
    """With 300 users or fewer, login.lua had no user of its own and sent empty logins, counted as req/s."""
    done = bench("--users", users, tmp_path=tmp_path)
    assert done.returncode == 2
    assert f"--users must be more than 300, not {users}" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seconds", "1"], "--seconds must be at least 2"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--rounds", "4"], "--rounds must be 10 to 16"),
    ],
)
def test_other_unusable_values_are_refused(args: list[str], message: str, tmp_path: Path) -> None:
    done = bench(*args, tmp_path=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr


def test_301_users_are_enough(tmp_path: Path) -> None:
    done = bench("--users", "301", tmp_path=tmp_path)
    assert "wrk is missing" in done.stderr  # past the argument checks
