"""Settings from the environment (prefix ``USERMGMT_``) or a ``.env`` file, read once at start-up, in sections.

``Settings`` composes one frozen section per concern (``database``, ``tokens``, ``passwords``, ``rate_limits``,
``http``, ``email``, ``mfa``); each section is documented where it is defined. Every setting keeps its flat
environment name: a section field carries it as its ``validation_alias`` (``DatabaseSettings.url`` is
``USERMGMT_DATABASE_URL``), and ``Settings`` moves flat names into their section, whether they come from the
environment, the dotenv file (both case-insensitive) or keyword arguments. So ``Settings(database_url=...)`` and
``Settings(database=DatabaseSettings(url=...))`` both work. A section passed as an object is taken whole: the
environment fills none of its fields. Flat keyword arguments win over the environment, which wins over ``.env``.

``USERMGMT_ENVIRONMENT=production`` refuses settings fit for development only (see ``Settings``); the signing-key
checks of production happen where keys are loaded (``adapters/keys.py``).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Final, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from usermgmt.application.abuse import DEFAULT_IPV6_PREFIX, DEFAULT_RATES, RateRule
from usermgmt.application.ports import Rate

ENV_PREFIX: Final = "USERMGMT_"
DEFAULT_DATA_DIR: Final = Path("var")
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*([smhd])\s*")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(text: str) -> Rate:
    """``"10/15m"`` -> 10 per 15 minutes. Units: s, m, h, d. Raises ``ValueError`` naming the expected syntax."""
    match = _RATE.fullmatch(text)
    if not match or int(match[1]) < 1 or int(match[2]) < 1:
        raise ValueError(f"a rate is COUNT/PERIOD with a unit s, m, h or d, e.g. 10/15m (got {text!r})")
    return Rate(int(match[1]), timedelta(seconds=int(match[2]) * _UNITS[match[3]]))


def format_rate(rate: Rate) -> str:
    """The ``COUNT/PERIOD`` text of ``rate`` in its largest whole unit: ``parse_rate(format_rate(r)) == r``."""
    seconds = int(rate.period.total_seconds())
    if seconds != rate.period.total_seconds():
        raise ValueError("a rate's period must be whole seconds to be written COUNT/PERIOD")
    unit = next(unit for unit, size in reversed(_UNITS.items()) if seconds % size == 0)
    return f"{rate.limit}/{seconds // _UNITS[unit]}{unit}"


def comma_separated(value: object) -> object:
    """A setting's comma-separated text as a tuple of its non-empty items (anything else as it is)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Section(BaseModel):
    """A frozen group of settings. Each field's ``validation_alias`` is its flat name: ``USERMGMT_`` + that name in
    capitals is its environment variable. Fields are also accepted by their own name."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, hide_input_in_errors=True
    )
    # Fields that are a mapping with one flat name per key (``flat_names`` of the subclass names them).
    keyed_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def flat_names(cls) -> Mapping[str, tuple[str, str | None]]:
        """Flat name -> (field, key inside that field's mapping, or None for the field itself)."""
        names: dict[str, tuple[str, str | None]] = {}
        for name, field in cls.model_fields.items():
            if name in cls.keyed_fields:
                continue
            if not isinstance(field.validation_alias, str):
                raise TypeError(f"{cls.__name__}.{name} needs its flat name as validation_alias")
            names[field.validation_alias] = (name, None)
        return names


class DatabaseSettings(Section):
    """Where the data lives and how many connections one process may open to it.

    ``url`` is always set: unset, ``Settings`` makes it the embedded SQLite database in ``data_dir``. The pool
    settings apply to PostgreSQL only. One process opens at most ``pool_size + max_overflow`` connections through
    SQLAlchemy plus ``principal_pool_size`` for the hot path (``AsyncpgPrincipalReader``).
    """

    url: str = Field(
        f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'usermgmt.db'}",
        validation_alias="database_url",
        min_length=1,
        description="SQLAlchemy async URL, e.g. postgresql+asyncpg://user@host/db. Default: SQLite in data_dir.",
    )
    pool_size: int = Field(10, ge=1, le=200, validation_alias="database_pool_size")
    max_overflow: int = Field(10, ge=0, le=200, validation_alias="database_max_overflow")
    pool_timeout: float = Field(
        5.0, gt=0, validation_alias="database_pool_timeout", description="Seconds to wait for a pooled connection."
    )
    connect_timeout: float = Field(
        3.0, gt=0, validation_alias="database_connect_timeout", description="Seconds to wait for a new connection."
    )
    command_timeout: float = Field(
        10.0,
        gt=0,
        validation_alias="database_command_timeout",
        description="Seconds a query may take before the request fails with 503 (a hung database).",
    )
    statement_cache_size: int = Field(
        100,
        ge=0,
        validation_alias="database_statement_cache_size",
        description="asyncpg prepared-statement cache; 0 behind PgBouncer in transaction mode.",
    )
    principal_pool_size: int = Field(
        10,
        ge=1,
        le=200,
        validation_alias="database_principal_pool_size",
        description="Connections of the hot-path reader of sessions (PostgreSQL), besides the pool.",
    )


class TokenSettings(Section):
    """Access tokens (ES256 JWTs), refresh tokens and the signing keys.

    ``keys_dir`` is always set: unset, ``Settings`` makes it ``data_dir/keys``. Guaranteed:
    ``0 < access_ttl < refresh_ttl``.
    """

    issuer: str = Field("usermgmt", min_length=1, validation_alias="jwt_issuer", description="iss of access tokens.")
    audience: str = Field(
        "usermgmt", min_length=1, validation_alias="jwt_audience", description="aud of access tokens."
    )
    access_ttl: timedelta = Field(
        timedelta(minutes=15), validation_alias="access_token_ttl", description="Seconds or ISO 8601 duration."
    )
    refresh_ttl: timedelta = Field(
        timedelta(days=30),
        validation_alias="refresh_token_ttl",
        description="Refresh token and session lifetime: seconds or ISO 8601 duration.",
    )
    keys_dir: Path = Field(
        DEFAULT_DATA_DIR / "keys",
        validation_alias="signing_keys_dir",
        description="Folder of ES256 private keys (*.pem); the last by name signs. Default: data_dir/keys.",
    )
    signing_key: SecretStr | None = Field(
        None, validation_alias="signing_key", description="One ES256 private key (PEM) given inline; it signs."
    )
    autogenerate_key: bool = Field(
        True,
        validation_alias="signing_key_autogenerate",
        description="Generate a key into keys_dir when there is none (development only).",
    )

    @field_validator("access_ttl", "refresh_ttl", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return timedelta(seconds=int(value))
        return value

    @model_validator(mode="after")
    def _check_lifetimes(self) -> Self:
        if self.access_ttl <= timedelta(0) or self.refresh_ttl <= self.access_ttl:
            raise ValueError("token lifetimes must satisfy 0 < USERMGMT_ACCESS_TOKEN_TTL < USERMGMT_REFRESH_TOKEN_TTL")
        return self


class PasswordSettings(Section):
    """Password hashing and the rules for new passwords, including the optional breached-password check."""

    bcrypt_rounds: int = Field(11, ge=10, le=16, validation_alias="bcrypt_rounds", description="bcrypt cost.")
    min_length: int = Field(
        8, ge=8, le=128, validation_alias="password_min_length", description="Minimum password length."
    )
    hash_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=64,
        validation_alias="hash_workers",
        description="Password-hashing threads per process (default: the cores; they run at a lower priority).",
    )
    hash_thread_niceness: int = Field(
        2,
        ge=0,
        le=19,
        validation_alias="hash_thread_niceness",
        description="How much lower the hashing threads' CPU priority is than the event loop's (Linux nice).",
    )
    hash_max_wait: float = Field(
        0.05,
        ge=0,
        le=60,
        validation_alias="hash_max_wait",
        description="Seconds a sign-in may wait for a hashing thread before it is shed with 503 (0: never shed).",
    )
    pwned_enabled: bool = Field(
        False,
        validation_alias="pwned_passwords_enabled",
        description="Also refuse passwords found by the Have I Been Pwned range API (k-anonymity).",
    )
    pwned_url: str = Field(
        "https://api.pwnedpasswords.com",
        min_length=1,
        validation_alias="pwned_passwords_url",
        description="Base URL of the range API.",
    )
    pwned_timeout: float = Field(
        1.5,
        gt=0,
        le=10,
        validation_alias="pwned_passwords_timeout",
        description="Seconds; on timeout the check passes.",
    )


RATE_PREFIX: Final = "rate_limit_"


class RateLimitSettings(Section):
    """Rate limits: one rate per ``RateRule`` (``USERMGMT_RATE_LIMIT_<RULE>``, ``COUNT/PERIOD``; a rule not set
    keeps its default from ``DEFAULT_RATES``), where counters live, and how client addresses are grouped.

    ``rates`` always holds every rule. A new ``RateRule`` gets its setting here with no edit of this module.
    """

    enabled: bool = Field(
        True,
        validation_alias="rate_limits_enabled",
        description="Switch every rate limit off (load tests, experiments).",
    )
    redis_url: str | None = Field(
        None,
        validation_alias="redis_url",
        description="redis://host:port/db shares rate-limit counters between instances; default: in memory.",
    )
    rates: Mapping[RateRule, Rate] = Field(
        default_factory=lambda: DEFAULT_RATES,
        description="The rate of every rule; each is read from USERMGMT_RATE_LIMIT_<RULE>.",
    )
    ipv6_prefix: int = Field(
        DEFAULT_IPV6_PREFIX,
        ge=1,
        le=128,
        validation_alias="rate_limit_ipv6_prefix",
        description="IPv6 clients are counted per network of this prefix length; IPv4 clients per address.",
    )

    keyed_fields: ClassVar[frozenset[str]] = frozenset({"rates"})

    @classmethod
    def flat_names(cls) -> Mapping[str, tuple[str, str | None]]:
        return {**super().flat_names(), **{f"{RATE_PREFIX}{rule.value}": ("rates", rule.value) for rule in RateRule}}

    @field_validator("redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("rates", mode="before")
    @classmethod
    def _parse_rates(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {rule: parse_rate(rate) if isinstance(rate, str) else rate for rule, rate in value.items()}
        return value

    @field_validator("rates", mode="after")
    @classmethod
    def _every_rule(cls, value: Mapping[RateRule, Rate]) -> Mapping[RateRule, Rate]:
        return MappingProxyType({**DEFAULT_RATES, **value})

    @field_serializer("rates")
    def _rates_as_text(self, value: Mapping[RateRule, Rate]) -> dict[str, str]:
        return {rule.value: format_rate(rate) for rule, rate in value.items()}


class HttpSettings(Section):
    """What the HTTP entry point answers and whom it believes."""

    trusted_proxies: tuple[str, ...] = Field(
        (),
        validation_alias="trusted_proxies",
        description="Comma-separated IPs/CIDRs whose X-Forwarded-For is believed (none by default).",
    )
    trusted_hosts: tuple[str, ...] = Field(
        ("*",), validation_alias="trusted_hosts", description="Comma-separated Host names answered (default any)."
    )
    hsts_max_age: int = Field(
        0,
        ge=0,
        validation_alias="hsts_max_age",
        description="Seconds for Strict-Transport-Security; set when served over HTTPS (0 = no header).",
    )
    cors_origins: tuple[str, ...] = Field(
        (), validation_alias="cors_origins", description="Comma-separated origins allowed by CORS (none by default)."
    )
    max_body_bytes: int = Field(64 * 1024, ge=1024, validation_alias="max_body_bytes")

    @field_validator("cors_origins", "trusted_proxies", "trusted_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            ipaddress.ip_network(item, strict=False)
        return value


class SmtpSecurity(StrEnum):
    STARTTLS = "starttls"  # plain connection upgraded with STARTTLS (port 587)
    TLS = "tls"  # implicit TLS from the first byte (port 465)
    NONE = "none"  # no encryption: a relay on loopback or a private network only


class EmailSettings(Section):
    """Email: how messages leave (SMTP, or ``.eml`` files in ``data_dir/mail`` when ``smtp_host`` is unset), what
    they look like, where their links point, and the one-time tokens they carry.

    ``frontend_url`` is the only base of the links in messages (never the request's Host); it has no trailing slash.
    """

    smtp_host: str | None = Field(
        None, validation_alias="smtp_host", description="SMTP server; unset: messages go to files in data_dir/mail."
    )
    smtp_port: int = Field(587, ge=1, le=65535, validation_alias="smtp_port")
    smtp_username: str | None = Field(None, validation_alias="smtp_username", description="SMTP login, if any.")
    smtp_password: SecretStr | None = Field(None, validation_alias="smtp_password")
    smtp_security: SmtpSecurity = Field(
        SmtpSecurity.STARTTLS, validation_alias="smtp_security", description="starttls, tls (implicit) or none."
    )
    smtp_timeout: float = Field(
        10.0, gt=0, le=120, validation_alias="smtp_timeout", description="Seconds for each SMTP exchange."
    )
    email_from: str = Field(
        "usermgmt <no-reply@localhost>", min_length=3, validation_alias="email_from", description="From: header."
    )
    frontend_url: str = Field(
        "http://localhost:3000",
        validation_alias="frontend_url",
        description="Base URL of the frontend: every link in a message points there.",
    )
    templates_dir: Path | None = Field(
        None,
        validation_alias="email_templates_dir",
        description="Folder of Jinja2 templates overriding the built-in ones, file by file.",
    )
    token_ttl: timedelta = Field(
        timedelta(hours=24),
        validation_alias="email_token_ttl",
        description="Lifetime of verification and email-change links: seconds or ISO 8601 duration.",
    )
    password_reset_ttl: timedelta = Field(
        timedelta(minutes=30),
        validation_alias="password_reset_ttl",
        description="Lifetime of password-reset links: seconds or ISO 8601 duration.",
    )
    require_verified_email: bool = Field(
        False,
        validation_alias="require_verified_email",
        description="Refuse sign-in (403 email_not_verified) until the address is verified.",
    )
    notify_new_device: bool = Field(
        True,
        validation_alias="notify_new_device",
        description="Email the account when it signs in from a device not seen in 90 days.",
    )

    @field_validator("smtp_host", "smtp_username", "templates_dir", "smtp_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("token_ttl", "password_reset_ttl", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():
            return timedelta(seconds=int(value))
        return value

    @field_validator("token_ttl", "password_reset_ttl")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a token lifetime must be positive")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _check_frontend_url(cls, value: str) -> str:
        parsed = urlsplit(value.strip())
        if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.query or parsed.fragment:
            raise ValueError("the frontend URL is http(s)://host[:port][/path], with no query or fragment")
        return value.strip().rstrip("/")


class MfaSettings(Section):
    """Two-factor authentication, and the keys that seal secrets at rest (the TOTP secrets).

    ``data_encryption_keys``: comma-separated, newest first; each is 32 random bytes in base64url
    (``python -c "import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())"``). The newest
    seals; every one listed opens what it sealed, so a key is rotated by putting a new one first and keeping the
    old ones. Unset (development), a key is generated into ``data_dir/keys/data-encryption.key``; production
    refuses to start without them.
    """

    issuer: str = Field(
        "usermgmt",
        min_length=1,
        max_length=64,
        validation_alias="mfa_issuer",
        description="The service's name in authenticator apps.",
    )
    data_encryption_keys: tuple[SecretStr, ...] = Field(
        (),
        validation_alias="data_encryption_keys",
        description="Comma-separated base64url 32-byte keys, newest first; unset: one generated in data_dir/keys.",
    )

    @field_validator("data_encryption_keys", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("data_encryption_keys")
    @classmethod
    def _check_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for key in value:
            try:
                raw = base64.urlsafe_b64decode(key.get_secret_value() + "=" * (-len(key.get_secret_value()) % 4))
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError("each data encryption key is 32 bytes in base64url (44 characters, or 43 unpadded)")
        return value


class PrivacySettings(Section):
    """Deletion with a grace period, the retention of anonymous events, the maintenance task, and the internal
    services that may introspect tokens.

    ``introspection_clients`` is a JSON object ``{"client-id": "secret", ...}``: the HTTP Basic credentials of the
    callers of ``POST /api/v1/oauth/introspect`` (none: the endpoint answers 401 to everyone).
    """

    deletion_grace_period: timedelta = Field(
        timedelta(0),
        ge=timedelta(0),
        le=timedelta(days=90),
        validation_alias="deletion_grace_period",
        description="ISO 8601 duration a deletion waits, undoable (P0D: immediate erasure).",
    )
    anonymous_event_retention: timedelta = Field(
        timedelta(days=90),
        ge=timedelta(days=1),
        validation_alias="anonymous_event_retention",
        description="How long security events naming no account are kept (ISO 8601 duration).",
    )
    maintenance_interval: timedelta = Field(
        timedelta(minutes=5),
        ge=timedelta(seconds=1),
        le=timedelta(days=1),
        validation_alias="maintenance_interval",
        description="How often the in-process maintenance runs (ISO 8601 duration).",
    )
    introspection_clients: Mapping[str, SecretStr] = Field(
        default_factory=dict,
        validation_alias="introspection_clients",
        description='JSON object {"client-id": "secret"} of the callers allowed to introspect tokens.',
    )

    @field_validator("introspection_clients", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError('a JSON object {"client-id": "secret", ...}') from None
        if isinstance(value, Mapping):
            for client_id, secret in value.items():
                if not isinstance(client_id, str) or not client_id or ":" in client_id:
                    raise ValueError("each client id is a non-empty string without ':'")
                text = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
                if not isinstance(text, str) or len(text) < 16:
                    raise ValueError("each client secret is a string of at least 16 characters")
        return value


PROVIDER_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
BUILT_IN_PROVIDERS: Final = frozenset({"google", "facebook"})


class OidcProviderSettings(BaseModel):
    """One generic OpenID Connect provider of ``USERMGMT_OIDC_PROVIDERS``: its endpoints come from
    ``{issuer}/.well-known/openid-configuration``."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str
    issuer: str
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    scopes: tuple[str, ...] = ("openid", "email", "profile")

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not PROVIDER_NAME.fullmatch(value):
            raise ValueError("a provider name is 1 to 32 lowercase letters, digits or '-', starting with a letter")
        if value in BUILT_IN_PROVIDERS:
            raise ValueError(f"{value} is built in: configure it with its own USERMGMT_OAUTH_ settings")
        return value

    @field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        return _base_url(value, "an issuer")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if "openid" not in value:
            raise ValueError("the scopes of an OpenID Connect provider include openid")
        return value


def _base_url(value: str, what: str) -> str:
    parsed = urlsplit(value.strip())
    if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.query or parsed.fragment:
        raise ValueError(f"{what} is http(s)://host[:port][/path], with no query or fragment")
    return value.strip().rstrip("/")


class OAuthSettings(Section):
    """Sign-in through identity providers: Google (OpenID Connect), Facebook (OAuth 2 and the Graph API) and any
    number of OpenID Connect providers. A provider without a client id and secret is off.

    ``public_url`` is the service's own external base URL: each provider is registered with the callback
    ``{public_url}/api/v1/auth/oauth/{provider}/callback``. ``redirect_uris`` are the frontend addresses a browser
    may be sent back to (exact match). ``oidc_providers`` is a JSON list of
    ``{"name", "issuer", "client_id", "client_secret", "scopes"?}``.
    """

    public_url: str = Field(
        "http://127.0.0.1:8000",
        validation_alias="public_url",
        description="The service's external base URL: the providers' callbacks are built on it.",
    )
    redirect_uris: tuple[str, ...] = Field(
        (),
        validation_alias="oauth_redirect_uris",
        description="Comma-separated frontend URLs a provider sign-in may return to (exact match).",
    )
    google_client_id: str | None = Field(None, validation_alias="oauth_google_client_id")
    google_client_secret: SecretStr | None = Field(None, validation_alias="oauth_google_client_secret")
    google_issuer: str = Field(
        "https://accounts.google.com",
        validation_alias="oauth_google_issuer",
        description="Google's OpenID issuer (overridden by tests).",
    )
    facebook_client_id: str | None = Field(None, validation_alias="oauth_facebook_client_id")
    facebook_client_secret: SecretStr | None = Field(None, validation_alias="oauth_facebook_client_secret")
    facebook_dialog_url: str = Field(
        "https://www.facebook.com/v21.0/dialog/oauth",
        validation_alias="oauth_facebook_dialog_url",
        description="Facebook's login dialog.",
    )
    facebook_graph_url: str = Field(
        "https://graph.facebook.com/v21.0",
        validation_alias="oauth_facebook_graph_url",
        description="Facebook's Graph API base (token exchange and /me).",
    )
    oidc_providers: tuple[OidcProviderSettings, ...] = Field(
        (),
        validation_alias="oidc_providers",
        description='JSON list of {"name", "issuer", "client_id", "client_secret", "scopes"?}.',
    )

    @field_validator(
        "google_client_id", "google_client_secret", "facebook_client_id", "facebook_client_secret", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("redirect_uris", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        return comma_separated(value)

    @field_validator("redirect_uris")
    @classmethod
    def _check_redirect_uris(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for uri in value:
            parsed = urlsplit(uri)
            if parsed.scheme not in {"http", "https"} or not parsed.netloc or parsed.fragment:
                raise ValueError("each redirect URI is an absolute http(s) URL without a fragment")
        return value

    @field_validator("public_url", "google_issuer", "facebook_dialog_url", "facebook_graph_url")
    @classmethod
    def _check_urls(cls, value: str) -> str:
        return _base_url(value, "this URL")

    @field_validator("oidc_providers", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return ()
            try:
                value = json.loads(value)
            except ValueError:
                raise ValueError('a JSON list of {"name", "issuer", "client_id", "client_secret"}') from None
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_names(cls, value: tuple[OidcProviderSettings, ...]) -> tuple[OidcProviderSettings, ...]:
        names = [provider.name for provider in value]
        if len(names) != len(set(names)):
            raise ValueError("each OpenID provider needs its own name")
        return value

    @property
    def cookie_secure(self) -> bool:
        """The state cookie is Secure unless the service is reached over plain http on this machine."""
        parsed = urlsplit(self.public_url)
        return not (parsed.scheme == "http" and parsed.hostname in {"localhost", "127.0.0.1", "::1"})

    def callback_url(self, provider: str) -> str:
        return f"{self.public_url}/api/v1/auth/oauth/{provider}/callback"


class ObservabilitySettings(Section):
    """Prometheus metrics on a port of their own (never the API's), and how often the gauges read from the
    database (KPIs, outbox backlog) are refreshed. Traces follow the standard ``OTEL_*`` variables instead
    (``OTEL_EXPORTER_OTLP_ENDPOINT`` switches them on; see README)."""

    metrics_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        validation_alias="metrics_port",
        description="Port of GET /metrics (Prometheus); unset: no metrics endpoint.",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        validation_alias="metrics_host",
        description="Address the metrics port listens on (0.0.0.0 in a container).",
    )
    metrics_dir: Path | None = Field(
        None,
        validation_alias="metrics_dir",
        description="Folder shared by the workers' metric files (default data_dir/metrics); emptied at start.",
    )
    kpi_refresh_interval: timedelta = Field(
        timedelta(minutes=1),
        ge=timedelta(seconds=1),
        le=timedelta(hours=1),
        validation_alias="kpi_refresh_interval",
        description="How often the KPI and outbox gauges are recomputed (ISO 8601 duration).",
    )

    @property
    def metrics_enabled(self) -> bool:
        return self.metrics_port is not None


class Environment(StrEnum):
    """Where the service runs. Production refuses settings fit for development only."""

    DEVELOPMENT = "development"
    PRODUCTION = "production"


class _FlatVariables(PydanticBaseSettingsSource):
    """Every ``USERMGMT_*`` variable that ``source`` read (the environment or the dotenv file, case-insensitively,
    as pydantic-settings reads them), under its flat name and nested into its section."""

    def __init__(self, settings_cls: type[Settings], source: EnvSettingsSource) -> None:
        super().__init__(settings_cls)
        self._settings_cls, self._source = settings_cls, source

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        prefix = ENV_PREFIX.lower()
        sections = self._settings_cls.sections()
        flat = {
            name.lower().removeprefix(prefix): value
            for name, value in self._source.env_vars.items()
            if name.lower().startswith(prefix) and value is not None
        }
        # A section has no variable of its own (USERMGMT_DATABASE is nobody's): ignored, like any unknown name.
        return self._settings_cls.nest({name: value for name, value in flat.items() if name not in sections})


class Settings(BaseSettings):
    """Every setting, in sections. Built once at start-up; frozen.

    With ``environment=production`` it refuses (``ValueError``, naming the variable to fix) wildcard trusted hosts
    (``*`` or none), a missing HSTS header (``USERMGMT_HSTS_MAX_AGE=0``), no SMTP server (``USERMGMT_SMTP_HOST``
    unset: the file mailer is for development) and no data encryption keys (``USERMGMT_DATA_ENCRYPTION_KEYS``).

    A new section (``mail``, ``mfa``, ``oauth``, ...) is a ``Section`` subclass above, documented there, whose
    fields carry their flat names as ``validation_alias``, plus one field below; nothing else changes (the README
    table is checked against ``env_names()`` by tests/unit/test_config.py).
    """

    # Errors never echo input: a value may be a password (a database URL), and a rule across settings would
    # otherwise print all of them.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    environment: Environment = Field(
        Environment.DEVELOPMENT, description="development or production (refuses development-only settings)."
    )
    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Local data folder (embedded SQLite, development keys).")

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    tokens: TokenSettings = Field(default_factory=TokenSettings)
    passwords: PasswordSettings = Field(default_factory=PasswordSettings)
    rate_limits: RateLimitSettings = Field(default_factory=RateLimitSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    mfa: MfaSettings = Field(default_factory=MfaSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)

    @classmethod
    def sections(cls) -> Mapping[str, type[Section]]:
        """Field name -> section model, in declaration order."""
        found: dict[str, type[Section]] = {}
        for name, field in cls.model_fields.items():
            if isinstance(field.annotation, type) and issubclass(field.annotation, Section):
                found[name] = field.annotation
        return found

    @classmethod
    def env_names(cls) -> Iterator[str]:
        """Every environment variable of the settings, ``USERMGMT_...``, in declaration order."""
        sections = cls.sections()
        for name in cls.model_fields:
            flat_names = sections[name].flat_names() if name in sections else (name,)
            for flat in flat_names:
                yield f"{ENV_PREFIX}{flat.upper()}"

    @classmethod
    def variable_for(cls, loc: Sequence[str | int]) -> str:
        """The environment variable of a validation error's location, e.g. ``("database", "pool_size")`` ->
        ``USERMGMT_DATABASE_POOL_SIZE``; the dotted location itself when it names no single variable."""
        sections = cls.sections()
        if len(loc) == 1 and loc[0] in cls.model_fields and loc[0] not in sections:
            return f"{ENV_PREFIX}{str(loc[0]).upper()}"
        if len(loc) >= 2 and loc[0] in sections:
            for flat, (field, key) in sections[str(loc[0])].flat_names().items():
                if field == loc[1] and (key is None or (len(loc) > 2 and key == loc[2])):
                    return f"{ENV_PREFIX}{flat.upper()}"
        return ".".join(map(str, loc))

    @classmethod
    def nest(cls, data: Mapping[str, Any]) -> dict[str, Any]:
        """``data`` with each flat name moved into its section (a section given as an object keeps its fields;
        flat names override them). Other keys are left as they are."""
        nested = dict(data)
        for section_name, section in cls.sections().items():
            moved: dict[str, Any] = {}
            for flat, (field, key) in section.flat_names().items():
                if flat not in nested:
                    continue
                value = nested.pop(flat)
                if key is None:
                    moved[field] = value
                else:
                    moved.setdefault(field, {})[key] = value
            if moved:
                nested[section_name] = _merge(_as_dict(nested.get(section_name)), moved)
        return nested

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not (isinstance(env_settings, EnvSettingsSource) and isinstance(dotenv_settings, DotEnvSettingsSource)):
            raise TypeError("Settings reads the environment and the dotenv file through pydantic-settings' sources")
        return init_settings, _FlatVariables(cls, env_settings), _FlatVariables(cls, dotenv_settings)

    @model_validator(mode="before")
    @classmethod
    def _nest_and_derive(cls, data: Any) -> Any:
        """Flat names into sections; ``database.url`` and ``tokens.keys_dir`` from ``data_dir`` when unset."""
        if not isinstance(data, Mapping):
            return data
        nested = cls.nest(data)
        raw_dir = nested.get("data_dir")
        data_dir = Path(raw_dir) if isinstance(raw_dir, str | os.PathLike) and raw_dir != "" else DEFAULT_DATA_DIR
        _derive(nested, "database", DatabaseSettings, "url", f"sqlite+aiosqlite:///{data_dir / 'usermgmt.db'}")
        _derive(nested, "tokens", TokenSettings, "keys_dir", data_dir / "keys")
        return nested

    @model_validator(mode="after")
    def _refuse_development_settings_in_production(self) -> Self:
        if self.environment is not Environment.PRODUCTION:
            return self
        problems = []
        if not self.http.trusted_hosts or "*" in self.http.trusted_hosts:
            problems.append(
                "USERMGMT_TRUSTED_HOSTS is `*` or empty: list the host names this service is reached by, "
                "e.g. USERMGMT_TRUSTED_HOSTS=auth.example.com"
            )
        if self.http.hsts_max_age == 0:
            problems.append(
                "USERMGMT_HSTS_MAX_AGE is 0 (no Strict-Transport-Security): serve over HTTPS and set it, "
                "e.g. USERMGMT_HSTS_MAX_AGE=31536000"
            )
        if self.email.smtp_host is None:
            problems.append(
                "USERMGMT_SMTP_HOST is unset (messages would be written to files, for development): set your SMTP "
                "server, e.g. USERMGMT_SMTP_HOST=smtp.example.com"
            )
        if not self.mfa.data_encryption_keys:
            problems.append(
                "USERMGMT_DATA_ENCRYPTION_KEYS is unset (a key generated into data_dir would sit next to the data it "
                "protects): set one or more base64url 32-byte keys, newest first (README, Secrets at rest)"
            )
        if problems:
            raise ValueError("refusing to start with USERMGMT_ENVIRONMENT=production: " + "; ".join(problems))
        return self


def _as_dict(section: object) -> dict[str, Any]:
    """A section given as an object, a mapping or nothing, as a mapping of what was set."""
    if isinstance(section, BaseModel):
        return {name: getattr(section, name) for name in section.model_fields_set}
    if isinstance(section, Mapping):
        return dict(section)
    return {}


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        current = merged.get(key)
        merged[key] = {**current, **value} if isinstance(current, Mapping) and isinstance(value, Mapping) else value
    return merged


def _derive(nested: dict[str, Any], name: str, section: type[Section], field: str, default: object) -> None:
    """Set ``nested[name].field`` to ``default`` unless it was given, by its name or flat name, and not empty."""
    given = nested.get(name)
    if isinstance(given, BaseModel):
        if field not in given.model_fields_set:
            nested[name] = given.model_copy(update={field: default})
        return
    values = _as_dict(given)
    alias = section.model_fields[field].validation_alias
    keys = [key for key in (field, alias) if isinstance(key, str) and key in values]
    if not keys or values[keys[0]] in (None, ""):
        for key in keys:
            del values[key]
        values[field] = default
        nested[name] = values
