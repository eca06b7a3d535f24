"""What the make targets install, read from `make -n -B` (print every command, run none)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make")

pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def syncs(target: str) -> list[str]:
    """The `uv sync` commands `make <target>` runs when nothing is installed yet."""
    assert MAKE is not None
    done = subprocess.run([MAKE, "-n", "-B", target], cwd=ROOT, capture_output=True, text=True, check=True)
    return [line.split(" sync ", 1)[1] for line in done.stdout.splitlines() if " sync " in line]


def test_make_run_installs_only_what_serving_needs() -> None:
    assert syncs("run") == ["--frozen --no-dev --inexact"]


@pytest.mark.parametrize("target", ["install", "test-unit", "lint"])
def test_the_development_targets_install_everything(target: str) -> None:
    """The dev tools and every optional extra (the tracing tests need the OpenTelemetry packages)."""
    assert syncs(target) == ["--frozen --all-extras"]
