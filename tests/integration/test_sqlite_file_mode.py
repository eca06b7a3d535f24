"""The embedded SQLite database is private: file (and its -wal and -shm) 0600, folder 0700, when we create them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from usermgmt.adapters.sqlalchemy import migrations
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.config import Settings


def mode(path: Path) -> str:
    return oct(stat.S_IMODE(path.stat().st_mode))


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """022, the usual default, which lets files be created world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


async def test_the_engine_creates_the_database_its_journal_and_its_folder_private(tmp_path: Path) -> None:
    database = tmp_path / "var" / "usermgmt.db"
    engine = build_engine(Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{database}"))  # type: ignore[call-arg]
    try:
        async with engine.begin() as connection:  # a write in WAL mode: the -wal and -shm files appear
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
            await connection.execute(text("INSERT INTO t VALUES (1)"))
        wal, shm = Path(f"{database}-wal"), Path(f"{database}-shm")  # mode() fails if one is missing
        assert (mode(database.parent), mode(database), mode(wal), mode(shm)) == ("0o700", "0o600", "0o600", "0o600")
    finally:
        await engine.dispose()


def test_migrating_a_new_database_creates_it_private(tmp_path: Path) -> None:
    """`usermgmt migrate` (the first step of `make run`) is what creates the file in practice."""
    database = tmp_path / "var" / "usermgmt.db"
    migrations.upgrade(f"sqlite+aiosqlite:///{database}", configure_logging=False)
    assert (mode(database.parent), mode(database)) == ("0o700", "0o600")


async def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    database.touch(mode=0o640)
    engine = build_engine(Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{database}"))  # type: ignore[call-arg]
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT 1"))).scalar_one() == 1
    finally:
        await engine.dispose()
    assert mode(database) == "0o640"
