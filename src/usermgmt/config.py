"""Settings from the environment (prefix ``USERMGMT_``) or a ``.env`` file. Read once, at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATA_DIR = Path("var")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(text: str) -> tuple[int, timedelta]:
    """``"10/15m"`` -> (10, 15 minutes). Units: s, m, h, d."""
    match = _RATE.fullmatch(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"a rate is COUNT/PERIOD with a unit s, m, h or d, e.g. 10/15m (got {text!r})")
    return int(match[1]), timedelta(seconds=int(match[2]) * _UNITS[match[3]])


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
    database_command_timeout: float = Field(
        10.0, gt=0, description="Seconds a query may take before the request fails with 503 (a hung database)."
    )
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
    hash_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        description="Password-hashing threads per process (default: the cores; they run at a lower priority).",
    )

    # Abuse prevention
    rate_limits_enabled: bool = Field(True, description="Switch every rate limit off (load tests, experiments).")
    redis_url: str | None = Field(
        None, description="redis://host:port/db shares rate-limit counters between instances; default: in memory."
    )
    rate_limit_login_per_ip: str = Field("50/1m", description="Login attempts per client IP.")
    rate_limit_login_failures_per_account_ip: str = Field(
        "10/15m", description="Failed logins per account from one client IP."
    )
    rate_limit_login_failures_per_account: str = Field(
        "100/15m", description="Failed logins per account from IPs without a live session of that account."
    )
    rate_limit_registrations_per_ip: str = Field("30/1h", description="Registrations per client IP.")
    rate_limit_refreshes_per_session: str = Field("30/1m", description="Token refreshes per session.")
    rate_limit_refresh_failures_per_ip: str = Field(
        "60/1m", description="Refused refresh tokens (unknown, expired or replayed) per client IP."
    )
    rate_limit_profile_updates_per_user: str = Field("20/15m", description="Profile updates per user.")
    rate_limit_password_changes_per_user: str = Field("5/15m", description="Password changes per user.")
    rate_limit_deletions_per_user: str = Field("5/15m", description="Account deletion attempts per user.")
    pwned_passwords_enabled: bool = Field(
        False, description="Also refuse passwords found by the Have I Been Pwned range API (k-anonymity)."
    )
    pwned_passwords_url: str = Field("https://api.pwnedpasswords.com", description="Base URL of the range API.")
    pwned_passwords_timeout: float = Field(1.5, gt=0, le=10, description="Seconds; on timeout the check passes.")

    # HTTP
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated IPs/CIDRs whose X-Forwarded-For is believed (none by default).",
    )
    trusted_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"], description="Comma-separated Host names answered (default any)."
    )
    hsts_max_age: int = Field(
        0, ge=0, description="Seconds for Strict-Transport-Security; set when served over HTTPS (0 = no header)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS (none by default)."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    @field_validator("access_token_ttl", "refresh_token_ttl", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return timedelta(seconds=int(value))
        return value

    @field_validator("cors_origins", "trusted_proxies", "trusted_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value

    @field_validator(
        "rate_limit_login_per_ip",
        "rate_limit_login_failures_per_account_ip",
        "rate_limit_login_failures_per_account",
        "rate_limit_registrations_per_ip",
        "rate_limit_refreshes_per_session",
        "rate_limit_refresh_failures_per_ip",
        "rate_limit_profile_updates_per_user",
        "rate_limit_password_changes_per_user",
        "rate_limit_deletions_per_user",
    )
    @classmethod
    def _check_rate(cls, value: str) -> str:
        parse_rate(value)
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
