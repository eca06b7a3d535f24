"""Run the Alembic migrations programmatically (the CLI's ``migrate``, tests, the container's entrypoint)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config


def find_alembic_ini() -> Path:
    """``USERMGMT_ALEMBIC_INI``, else ``./alembic.ini``, else the one at the root of the source checkout."""
    candidates = [
        Path(os.environ["USERMGMT_ALEMBIC_INI"]) if os.environ.get("USERMGMT_ALEMBIC_INI") else None,
        Path.cwd() / "alembic.ini",
        Path(__file__).resolve().parents[4] / "alembic.ini",
    ]
    for candidate in candidates:
        if candidate is not None and candidate.is_file():
            return candidate
    raise FileNotFoundError("alembic.ini not found: run from the project folder or set USERMGMT_ALEMBIC_INI")


def alembic_config(database_url: str, *, configure_logging: bool = True) -> Config:
    config = Config(str(find_alembic_ini()))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = configure_logging
    return config


def upgrade(database_url: str, revision: str = "head", *, configure_logging: bool = True) -> None:
    command.upgrade(alembic_config(database_url, configure_logging=configure_logging), revision)


def downgrade(database_url: str, revision: str = "base", *, configure_logging: bool = True) -> None:
    command.downgrade(alembic_config(database_url, configure_logging=configure_logging), revision)
