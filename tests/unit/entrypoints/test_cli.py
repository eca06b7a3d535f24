"""The `usermgmt` command line: what it accepts and what it refuses (argparse's exit status 2)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from usermgmt.entrypoints.cli import main, parse_args


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No setting of the developer's, no .env: should a command run after all, it touches only ``tmp_path``."""
    for name in os.environ:
        if name.startswith("USERMGMT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("USERMGMT_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_migrate_downgrade_without_a_revision_is_refused(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["migrate", "--downgrade"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert "usage: usermgmt migrate" in error
    assert "--downgrade needs the REVISION to go down to, e.g. -1 or base" in error
    assert not (isolated / "var").exists()  # refused before anything ran


@pytest.mark.parametrize(
    ("argv", "revision", "downgrade"),
    [
        (["migrate"], "head", False),
        (["migrate", "ab12"], "ab12", False),
        (["migrate", "-1"], "-1", False),  # a relative revision below the current one: a downgrade
        (["migrate", "--downgrade", "base"], "base", True),
        (["migrate", "base", "--downgrade"], "base", True),
    ],
)
def test_migrate_arguments(argv: list[str], revision: str, downgrade: bool) -> None:
    args = parse_args(argv)
    assert (args.revision, args.downgrade) == (revision, downgrade)


def test_serve_request_deadlines_default_to_10_and_30_seconds() -> None:
    args = parse_args(["serve"])
    assert (args.header_timeout, args.body_timeout) == (10.0, 30.0)
    args = parse_args(["serve", "--header-timeout", "2.5", "--body-timeout", "7"])
    assert (args.header_timeout, args.body_timeout) == (2.5, 7.0)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", "3601"])
@pytest.mark.parametrize("option", ["--header-timeout", "--body-timeout"])
def test_serve_refuses_a_deadline_that_is_not_a_positive_number_of_seconds(
    option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(["serve", option, value])
    assert exited.value.code == 2
    assert f"argument {option}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command",
    [
        ["migrate"],
        ["migrate", "base"],
        ["purge-sessions"],
        ["send-test-email", "ada@example.com"],
        ["create-admin", "ada@example.com"],
        ["roles", "grant", "ada@example.com", "admin"],
        ["users", "list"],
    ],
)
def test_invalid_settings_stop_every_command_without_printing_a_value(
    command: list[str],
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review of issue 12: a rule across settings (the production guard) made pydantic print every setting's value
    in its traceback, the database URL's password included, from ``migrate``, which the image runs before ``serve``."""
    monkeypatch.setenv("USERMGMT_ENVIRONMENT", "production")
    monkeypatch.setenv("USERMGMT_DATABASE_URL", "postgresql+asyncpg://u:TopSecretPassword@db.invalid/x")

    assert main(command) == 1

    said = capsys.readouterr()
    assert "TopSecretPassword" not in said.out + said.err + caplog.text
    assert "invalid settings" in caplog.text
    assert "USERMGMT_TRUSTED_HOSTS" in caplog.text


def test_migrate_base_goes_down_to_base(isolated: Path) -> None:
    """Review of issue 12: ``migrate base`` was taken as an upgrade target and silently did nothing."""
    import sqlite3

    database = isolated / "var" / "usermgmt.db"
    assert main(["migrate"]) == 0
    assert main(["migrate", "base"]) == 0

    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "users" not in tables
