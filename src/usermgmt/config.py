"""Settings from the environment (prefix ``USERMGMT_``) or a ``.env`` file. Read once, at start-up."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="USERMGMT_", env_file=".env", extra="ignore", frozen=True)

    # Storage
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Local data folder (embedded SQLite, development keys).")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db. Default: SQLite in data_dir.",
    )
    database_pool_size: int = Field(10, ge=1, le=200)
    database_max_overflow: int = Field(10, ge=0, le=200)
    database_pool_timeout: float = Field(5.0, gt=0, description="Seconds to wait for a pooled connection.")
    database_connect_timeout: float = Field(3.0, gt=0, description="Seconds to wait for a new connection.")
    database_statement_cache_size: int = Field(
        100, ge=0, description="asyncpg prepared-statement cache; 0 behind PgBouncer in transaction mode."
    )

    # Tokens
    jwt_issuer: str = Field("usermgmt", min_length=1)
    jwt_audience: str = Field("usermgmt", min_length=1)
    access_token_ttl: timedelta = Field(timedelta(minutes=15), description="Seconds or ISO 8601 duration.")
    refresh_token_ttl: timedelta = Field(timedelta(days=30), description="Seconds or ISO 8601 duration.")
    signing_keys_dir: Path | None = Field(
        None, description="Folder of ES256 private keys (*.pem); the last by name signs. Default: data_dir/keys."
    )
    signing_key: SecretStr | None = Field(None, description="One ES256 private key (PEM) given inline; it signs.")
    signing_key_autogenerate: bool = Field(
        True, description="Generate a key into signing_keys_dir when there is none (development)."
    )

    # Passwords
    bcrypt_rounds: int = Field(11, ge=10, le=16)
    password_min_length: int = Field(8, ge=8, le=128)
    hash_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=64)

    # HTTP
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS (none by default)."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @model_validator(mode="after")
    def _check_lifetimes(self) -> Self:
        if self.access_token_ttl <= timedelta(0) or self.refresh_token_ttl <= self.access_token_ttl:
            raise ValueError("token lifetimes must satisfy 0 < access_token_ttl < refresh_token_ttl")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'usermgmt.db'}"

    @property
    def resolved_signing_keys_dir(self) -> Path:
        return self.signing_keys_dir or self.data_dir / "keys"
