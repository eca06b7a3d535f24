"""Settings: sections built from the flat USERMGMT_* names (environment, .env, keyword arguments), the rate of every
rule, the production guard, and the README table that documents every variable."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from usermgmt.application.abuse import DEFAULT_RATES, RateRule
from usermgmt.application.ports import Rate
from usermgmt.config import (
    DatabaseSettings,
    Environment,
    HttpSettings,
    RateLimitSettings,
    Settings,
    SmtpSecurity,
    TokenSettings,
    format_rate,
    parse_rate,
)

README = Path(__file__).resolve().parents[2] / "README.md"
PRODUCTION_READY = {
    "environment": "production",
    "trusted_hosts": "auth.example.com",
    "hsts_max_age": "31536000",
    "smtp_host": "smtp.example.com",
    "data_encryption_keys": "qD4mB3oGx7T8mQ1a9Zr2n0c6Vw5YpLkEJHsUdF3tCiA",
}


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No USERMGMT_* variable of the developer's, and a working directory without a .env file."""
    for name in list(os.environ):
        if name.upper().startswith("USERMGMT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def from_env(monkeypatch: pytest.MonkeyPatch, **variables: str) -> Settings:
    for name, value in variables.items():
        monkeypatch.setenv(f"USERMGMT_{name.upper()}", value)
    return Settings()


# --- Every variable keeps its name and meaning ------------------------------------------------------------------

Read = Callable[[Settings], Any]

# (variable without the prefix, value as text, where it lands, what it reads as)
CASES: list[tuple[str, str, Read, Any]] = [
    ("ENVIRONMENT", "production", lambda s: s.environment, Environment.PRODUCTION),
    ("DATA_DIR", "/srv/usermgmt", lambda s: s.data_dir, Path("/srv/usermgmt")),
    ("DATABASE_URL", "postgresql+asyncpg://u@db/x", lambda s: s.database.url, "postgresql+asyncpg://u@db/x"),
    ("DATABASE_POOL_SIZE", "7", lambda s: s.database.pool_size, 7),
    ("DATABASE_MAX_OVERFLOW", "0", lambda s: s.database.max_overflow, 0),
    ("DATABASE_POOL_TIMEOUT", "2.5", lambda s: s.database.pool_timeout, 2.5),
    ("DATABASE_CONNECT_TIMEOUT", "1.5", lambda s: s.database.connect_timeout, 1.5),
    ("DATABASE_COMMAND_TIMEOUT", "4", lambda s: s.database.command_timeout, 4.0),
    ("DATABASE_STATEMENT_CACHE_SIZE", "0", lambda s: s.database.statement_cache_size, 0),
    ("DATABASE_PRINCIPAL_POOL_SIZE", "3", lambda s: s.database.principal_pool_size, 3),
    ("JWT_ISSUER", "https://auth.example.com", lambda s: s.tokens.issuer, "https://auth.example.com"),
    ("JWT_AUDIENCE", "api", lambda s: s.tokens.audience, "api"),
    ("ACCESS_TOKEN_TTL", "600", lambda s: s.tokens.access_ttl, timedelta(minutes=10)),
    ("REFRESH_TOKEN_TTL", "P7D", lambda s: s.tokens.refresh_ttl, timedelta(days=7)),
    ("SIGNING_KEYS_DIR", "/run/keys", lambda s: s.tokens.keys_dir, Path("/run/keys")),
    (
        "SIGNING_KEY",
        "-----PEM-----",
        lambda s: s.tokens.signing_key and s.tokens.signing_key.get_secret_value(),
        "-----PEM-----",
    ),
    ("SIGNING_KEY_AUTOGENERATE", "false", lambda s: s.tokens.autogenerate_key, False),
    ("BCRYPT_ROUNDS", "12", lambda s: s.passwords.bcrypt_rounds, 12),
    ("PASSWORD_MIN_LENGTH", "12", lambda s: s.passwords.min_length, 12),
    ("HASH_WORKERS", "3", lambda s: s.passwords.hash_workers, 3),
    ("HASH_THREAD_NICENESS", "10", lambda s: s.passwords.hash_thread_niceness, 10),
    ("HASH_MAX_WAIT", "1.5", lambda s: s.passwords.hash_max_wait, 1.5),
    ("PWNED_PASSWORDS_ENABLED", "true", lambda s: s.passwords.pwned_enabled, True),
    ("PWNED_PASSWORDS_URL", "http://hibp.internal", lambda s: s.passwords.pwned_url, "http://hibp.internal"),
    ("PWNED_PASSWORDS_TIMEOUT", "0.5", lambda s: s.passwords.pwned_timeout, 0.5),
    ("RATE_LIMITS_ENABLED", "false", lambda s: s.rate_limits.enabled, False),
    ("REDIS_URL", "redis://cache:6379/1", lambda s: s.rate_limits.redis_url, "redis://cache:6379/1"),
    ("RATE_LIMIT_IPV6_PREFIX", "56", lambda s: s.rate_limits.ipv6_prefix, 56),
    ("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.1", lambda s: s.http.trusted_proxies, ("10.0.0.0/8", "192.0.2.1")),
    (
        "TRUSTED_HOSTS",
        "auth.example.com,*.internal",
        lambda s: s.http.trusted_hosts,
        ("auth.example.com", "*.internal"),
    ),
    ("HSTS_MAX_AGE", "31536000", lambda s: s.http.hsts_max_age, 31536000),
    ("CORS_ORIGINS", "https://app.example.com", lambda s: s.http.cors_origins, ("https://app.example.com",)),
    ("MAX_BODY_BYTES", "2048", lambda s: s.http.max_body_bytes, 2048),
    ("SMTP_HOST", "mail.example.com", lambda s: s.email.smtp_host, "mail.example.com"),
    ("MFA_ISSUER", "Example Auth", lambda s: s.mfa.issuer, "Example Auth"),
    (
        "DATA_ENCRYPTION_KEYS",
        "qD4mB3oGx7T8mQ1a9Zr2n0c6Vw5YpLkEJHsUdF3tCiA,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        lambda s: [k.get_secret_value() for k in s.mfa.data_encryption_keys],
        ["qD4mB3oGx7T8mQ1a9Zr2n0c6Vw5YpLkEJHsUdF3tCiA", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
    ),
    ("DELETION_GRACE_PERIOD", "P14D", lambda s: s.privacy.deletion_grace_period, timedelta(days=14)),
    ("ANONYMOUS_EVENT_RETENTION", "P30D", lambda s: s.privacy.anonymous_event_retention, timedelta(days=30)),
    ("MAINTENANCE_INTERVAL", "PT1M", lambda s: s.privacy.maintenance_interval, timedelta(minutes=1)),
    (
        "INTROSPECTION_CLIENTS",
        '{"billing": "a-long-secret-of-the-billing-service"}',
        lambda s: {k: v.get_secret_value() for k, v in s.privacy.introspection_clients.items()},
        {"billing": "a-long-secret-of-the-billing-service"},
    ),
    ("METRICS_PORT", "9464", lambda s: s.observability.metrics_port, 9464),
    ("METRICS_HOST", "10.0.0.5", lambda s: s.observability.metrics_host, "10.0.0.5"),
    ("METRICS_DIR", "/run/usermgmt-metrics", lambda s: s.observability.metrics_dir, Path("/run/usermgmt-metrics")),
    ("KPI_REFRESH_INTERVAL", "PT30S", lambda s: s.observability.kpi_refresh_interval, timedelta(seconds=30)),
    ("PUBLIC_URL", "https://auth.example.com/", lambda s: s.oauth.public_url, "https://auth.example.com"),
    (
        "OAUTH_REDIRECT_URIS",
        "https://app.example.com/cb, https://m.example.com/cb",
        lambda s: s.oauth.redirect_uris,
        ("https://app.example.com/cb", "https://m.example.com/cb"),
    ),
    ("OAUTH_GOOGLE_CLIENT_ID", "g-id", lambda s: s.oauth.google_client_id, "g-id"),
    (
        "OAUTH_GOOGLE_CLIENT_SECRET",
        "g-secret",
        lambda s: s.oauth.google_client_secret and s.oauth.google_client_secret.get_secret_value(),
        "g-secret",
    ),
    ("OAUTH_GOOGLE_ISSUER", "http://127.0.0.1:9000", lambda s: s.oauth.google_issuer, "http://127.0.0.1:9000"),
    ("OAUTH_FACEBOOK_CLIENT_ID", "fb-id", lambda s: s.oauth.facebook_client_id, "fb-id"),
    (
        "OAUTH_FACEBOOK_CLIENT_SECRET",
        "fb-secret",
        lambda s: s.oauth.facebook_client_secret and s.oauth.facebook_client_secret.get_secret_value(),
        "fb-secret",
    ),
    (
        "OAUTH_FACEBOOK_DIALOG_URL",
        "http://127.0.0.1:9001/v21.0/dialog/oauth",
        lambda s: s.oauth.facebook_dialog_url,
        "http://127.0.0.1:9001/v21.0/dialog/oauth",
    ),
    (
        "OAUTH_FACEBOOK_GRAPH_URL",
        "http://127.0.0.1:9001/graph/v21.0",
        lambda s: s.oauth.facebook_graph_url,
        "http://127.0.0.1:9001/graph/v21.0",
    ),
    (
        "OIDC_PROVIDERS",
        '[{"name": "acme", "issuer": "https://id.acme.example", "client_id": "a", "client_secret": "b"}]',
        lambda s: [(p.name, p.issuer, p.client_id, p.scopes) for p in s.oauth.oidc_providers],
        [("acme", "https://id.acme.example", "a", ("openid", "email", "profile"))],
    ),
    ("SMTP_PORT", "465", lambda s: s.email.smtp_port, 465),
    ("SMTP_USERNAME", "mailer", lambda s: s.email.smtp_username, "mailer"),
    (
        "SMTP_PASSWORD",
        "hunter2",
        lambda s: s.email.smtp_password and s.email.smtp_password.get_secret_value(),
        "hunter2",
    ),
    ("SMTP_SECURITY", "tls", lambda s: s.email.smtp_security, SmtpSecurity.TLS),
    ("SMTP_TIMEOUT", "2.5", lambda s: s.email.smtp_timeout, 2.5),
    ("EMAIL_FROM", "Example <auth@example.com>", lambda s: s.email.email_from, "Example <auth@example.com>"),
    ("FRONTEND_URL", "https://app.example.com/", lambda s: s.email.frontend_url, "https://app.example.com"),
    ("EMAIL_TEMPLATES_DIR", "/srv/templates", lambda s: s.email.templates_dir, Path("/srv/templates")),
    ("EMAIL_TOKEN_TTL", "PT2H", lambda s: s.email.token_ttl, timedelta(hours=2)),
    ("PASSWORD_RESET_TTL", "600", lambda s: s.email.password_reset_ttl, timedelta(minutes=10)),
    ("REQUIRE_VERIFIED_EMAIL", "true", lambda s: s.email.require_verified_email, True),
    ("NOTIFY_NEW_DEVICE", "false", lambda s: s.email.notify_new_device, False),
] + [
    (f"RATE_LIMIT_{rule.name}", "3/7m", lambda s, rule=rule: s.rate_limits.rates[rule], Rate(3, timedelta(minutes=7)))
    for rule in RateRule
]
NEEDS = {"ENVIRONMENT": {k: v for k, v in PRODUCTION_READY.items() if k != "environment"}}


def test_the_cases_cover_every_variable_and_differ_from_the_defaults() -> None:
    assert sorted(f"USERMGMT_{name}" for name, *_ in CASES) == sorted(Settings.env_names())
    assert len(set(Settings.env_names())) == len(list(Settings.env_names()))
    defaults = Settings()
    for name, _, read, expected in CASES:
        assert read(defaults) != expected, name


@pytest.mark.parametrize(("name", "text", "read", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_variable_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, read: Read, expected: Any
) -> None:
    settings = from_env(monkeypatch, **{name: text}, **NEEDS.get(name, {}))

    assert read(settings) == expected


@pytest.mark.parametrize(("name", "text", "read", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_variable_from_the_dotenv_file(
    no_configuration: Path, name: str, text: str, read: Read, expected: Any
) -> None:
    extra = "".join(f"USERMGMT_{k.upper()}={v}\n" for k, v in NEEDS.get(name, {}).items())
    (no_configuration / ".env").write_text(f"USERMGMT_{name}={text}\n{extra}")

    assert read(Settings()) == expected


@pytest.mark.parametrize(("name", "text", "read", "expected"), CASES, ids=[case[0] for case in CASES])
def test_each_variable_as_a_flat_keyword_argument(name: str, text: str, read: Read, expected: Any) -> None:
    arguments = {name.lower(): text, **NEEDS.get(name, {})}
    assert read(Settings(_env_file=None, **arguments)) == expected  # type: ignore[arg-type]


def test_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch, no_configuration: Path) -> None:
    monkeypatch.setenv("usermgmt_jwt_issuer", "lower")
    (no_configuration / ".env").write_text("Usermgmt_Rate_Limit_Login_Per_Ip=4/1m\n")

    settings = Settings()

    assert settings.tokens.issuer == "lower"
    assert settings.rate_limits.rates[RateRule.LOGIN_PER_IP] == Rate(4, timedelta(minutes=1))


def test_keyword_arguments_beat_the_environment_which_beats_the_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, no_configuration: Path
) -> None:
    (no_configuration / ".env").write_text(
        "USERMGMT_JWT_ISSUER=dotenv\nUSERMGMT_JWT_AUDIENCE=dotenv\nUSERMGMT_DATABASE_POOL_SIZE=5\n"
        "USERMGMT_RATE_LIMIT_LOGIN_PER_IP=5/1m\nUSERMGMT_RATE_LIMIT_DELETIONS_PER_USER=5/1h\n"
    )
    monkeypatch.setenv("USERMGMT_JWT_ISSUER", "environment")
    monkeypatch.setenv("USERMGMT_RATE_LIMIT_LOGIN_PER_IP", "6/1m")

    settings = Settings(jwt_audience="argument", database_max_overflow=1)  # type: ignore[call-arg]

    assert (settings.tokens.issuer, settings.tokens.audience) == ("environment", "argument")
    assert (settings.database.pool_size, settings.database.max_overflow) == (5, 1)  # one section, three sources
    assert settings.rate_limits.rates[RateRule.LOGIN_PER_IP] == Rate(6, timedelta(minutes=1))
    assert settings.rate_limits.rates[RateRule.DELETIONS_PER_USER] == Rate(5, timedelta(hours=1))


def test_no_dotenv_file_when_told(no_configuration: Path) -> None:
    (no_configuration / ".env").write_text("USERMGMT_JWT_ISSUER=dotenv\n")

    assert Settings(_env_file=None).tokens.issuer == "usermgmt"


def test_other_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERMGMT_TEST_DATABASE_URL", "postgresql://elsewhere")
    monkeypatch.setenv("OTHER_DATABASE_URL", "postgresql://elsewhere")
    for section in Settings.sections():
        monkeypatch.setenv(f"USERMGMT_{section.upper()}", "not a section")

    assert Settings().database.url == "sqlite+aiosqlite:///var/usermgmt.db"


# --- Sections ---------------------------------------------------------------------------------------------------


def test_a_section_object_is_taken_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USERMGMT_DATABASE_URL", "postgresql+asyncpg://from-env/x")
    monkeypatch.setenv("USERMGMT_DATABASE_POOL_SIZE", "3")

    settings = Settings(database=DatabaseSettings(url="postgresql+asyncpg://given/x"))

    assert settings.database == DatabaseSettings(url="postgresql+asyncpg://given/x")


def test_flat_arguments_refine_a_section_object() -> None:
    settings = Settings(
        _env_file=None,
        database=DatabaseSettings(url="postgresql+asyncpg://given/x", pool_size=4),
        database_max_overflow=2,  # type: ignore[call-arg]
    )

    assert (settings.database.url, settings.database.pool_size, settings.database.max_overflow) == (
        "postgresql+asyncpg://given/x",
        4,
        2,
    )


def test_sections_take_their_field_names_and_their_flat_names() -> None:
    assert DatabaseSettings(pool_size=3) == DatabaseSettings(database_pool_size=3)  # type: ignore[call-arg]
    assert Settings(_env_file=None, tokens={"issuer": "a"}).tokens.issuer == "a"  # type: ignore[arg-type]


def test_sections_are_frozen() -> None:
    settings = Settings()

    with pytest.raises(ValidationError, match="frozen"):
        settings.database.url = "sqlite+aiosqlite:///elsewhere.db"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.http = HttpSettings()  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.rate_limits.rates[RateRule.LOGIN_PER_IP] = Rate(1, timedelta(days=1))  # type: ignore[index]


def test_a_section_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="pool"):
        DatabaseSettings(pool=3)  # type: ignore[call-arg]


def test_database_and_keys_follow_the_data_dir_unless_set(tmp_path: Path) -> None:
    derived = Settings(data_dir=tmp_path)
    explicit = Settings(data_dir=tmp_path, database_url="postgresql+asyncpg://db/x", signing_keys_dir="/run/keys")
    empty = Settings(data_dir=tmp_path, database_url="", signing_keys_dir="")  # an empty variable is unset
    given_section = Settings(data_dir=tmp_path, database=DatabaseSettings(pool_size=2))

    assert derived.database.url == f"sqlite+aiosqlite:///{tmp_path / 'usermgmt.db'}"
    assert derived.tokens.keys_dir == tmp_path / "keys"
    assert (explicit.database.url, explicit.tokens.keys_dir) == ("postgresql+asyncpg://db/x", Path("/run/keys"))
    assert (empty.database.url, empty.tokens.keys_dir) == (derived.database.url, derived.tokens.keys_dir)
    assert given_section.database.url == derived.database.url


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database_pool_size": "0"}, "pool_size"),
        ({"database_principal_pool_size": "0"}, "principal_pool_size"),
        ({"database_principal_pool_size": "201"}, "principal_pool_size"),
        ({"bcrypt_rounds": "9"}, "bcrypt_rounds"),
        ({"password_min_length": "7"}, "min_length"),
        ({"pwned_passwords_timeout": "11"}, "pwned_timeout"),
        ({"rate_limit_ipv6_prefix": "0"}, "ipv6_prefix"),
        ({"rate_limit_ipv6_prefix": "129"}, "ipv6_prefix"),
        ({"trusted_proxies": "not-an-ip"}, "trusted_proxies"),
        ({"max_body_bytes": "1023"}, "max_body_bytes"),
        ({"environment": "staging"}, "environment"),
        ({"access_token_ttl": "0"}, "ACCESS_TOKEN_TTL"),
        ({"access_token_ttl": "3600", "refresh_token_ttl": "3600"}, "REFRESH_TOKEN_TTL"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_the_principal_pool_defaults_to_the_pool_size() -> None:
    database = Settings().database

    assert database.principal_pool_size == database.pool_size == 10


# --- Rates ------------------------------------------------------------------------------------------------------


def test_every_rule_has_its_default_rate() -> None:
    assert dict(Settings().rate_limits.rates) == dict(DEFAULT_RATES)
    assert set(DEFAULT_RATES) == set(RateRule)


def test_a_rule_set_alone_leaves_the_others_at_their_default() -> None:
    rates = Settings(rate_limit_deletions_per_user="1/1d").rate_limits.rates  # type: ignore[call-arg]

    assert rates[RateRule.DELETIONS_PER_USER] == Rate(1, timedelta(days=1))
    assert {rule: rate for rule, rate in rates.items() if rule is not RateRule.DELETIONS_PER_USER} == {
        rule: rate for rule, rate in DEFAULT_RATES.items() if rule is not RateRule.DELETIONS_PER_USER
    }


def test_rates_given_as_a_section() -> None:
    section = RateLimitSettings(rates={RateRule.LOGIN_PER_IP: "2/1s"}, ipv6_prefix=48)  # type: ignore[dict-item]

    assert section.rates[RateRule.LOGIN_PER_IP] == Rate(2, timedelta(seconds=1))
    assert section.rates[RateRule.REGISTRATIONS_PER_IP] == DEFAULT_RATES[RateRule.REGISTRATIONS_PER_IP]


def test_an_unknown_rule_in_a_section_is_refused() -> None:
    with pytest.raises(ValidationError, match="rates"):
        RateLimitSettings(rates={"logins_per_planet": "1/1m"})  # type: ignore[dict-item]


@pytest.mark.parametrize("text", ["10", "10/", "/15m", "0/1m", "1/0m", "1/15w", "1.5/1m", "ten/1m"])
def test_a_malformed_rate_is_refused_with_its_syntax(text: str) -> None:
    with pytest.raises(ValidationError, match="COUNT/PERIOD"):
        Settings(rate_limit_login_per_ip=text)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("10/15m", Rate(10, timedelta(minutes=15))),
        (" 3 / 2 h ", Rate(3, timedelta(hours=2))),
        ("1/1d", Rate(1, timedelta(days=1))),
    ],
)
def test_parse_rate(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    ("rate", "text"),
    [
        (Rate(50, timedelta(minutes=1)), "50/1m"),
        (Rate(10, timedelta(minutes=15)), "10/15m"),
        (Rate(30, timedelta(hours=1)), "30/1h"),
        (Rate(1, timedelta(days=2)), "1/2d"),
        (Rate(5, timedelta(seconds=90)), "5/90s"),
    ],
)
def test_format_rate_uses_the_largest_whole_unit(rate: Rate, text: str) -> None:
    assert format_rate(rate) == text
    assert parse_rate(text) == rate


def test_rates_are_written_as_text() -> None:
    dumped = Settings().model_dump()["rate_limits"]["rates"]

    assert dumped == {rule.value: format_rate(rate) for rule, rate in DEFAULT_RATES.items()}


# --- Production -------------------------------------------------------------------------------------------------


def test_development_starts_with_no_configuration() -> None:
    settings = Settings()

    assert settings.environment is Environment.DEVELOPMENT
    assert settings.http.trusted_hosts == ("*",)
    assert settings.http.hsts_max_age == 0


def test_production_starts_with_named_hosts_and_hsts() -> None:
    settings = Settings(_env_file=None, **PRODUCTION_READY)  # type: ignore[arg-type]

    assert settings.environment is Environment.PRODUCTION


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"trusted_hosts": "*"}, "USERMGMT_TRUSTED_HOSTS"),
        ({"trusted_hosts": "auth.example.com,*"}, "USERMGMT_TRUSTED_HOSTS"),
        ({"trusted_hosts": ""}, "USERMGMT_TRUSTED_HOSTS"),
        ({"hsts_max_age": "0"}, "USERMGMT_HSTS_MAX_AGE"),
        ({"smtp_host": ""}, "USERMGMT_SMTP_HOST"),
        ({"data_encryption_keys": ""}, "USERMGMT_DATA_ENCRYPTION_KEYS"),
    ],
)
def test_production_refuses_development_settings(
    monkeypatch: pytest.MonkeyPatch, override: dict[str, str], variable: str
) -> None:
    with pytest.raises(ValidationError, match=f"USERMGMT_ENVIRONMENT=production.*{variable}"):
        from_env(monkeypatch, **{**PRODUCTION_READY, **override})


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Settings(_env_file=None, environment="production")  # type: ignore[arg-type]

    assert "USERMGMT_TRUSTED_HOSTS" in str(excinfo.value)
    assert "USERMGMT_HSTS_MAX_AGE" in str(excinfo.value)
    assert "USERMGMT_SMTP_HOST" in str(excinfo.value)
    assert "USERMGMT_DATA_ENCRYPTION_KEYS" in str(excinfo.value)


def test_wildcard_subdomains_are_named_hosts() -> None:
    settings = Settings(_env_file=None, **{**PRODUCTION_READY, "trusted_hosts": "*.example.com"})  # type: ignore[arg-type]

    assert settings.http.trusted_hosts == ("*.example.com",)


# --- README -----------------------------------------------------------------------------------------------------


def readme_table() -> dict[str, tuple[str, str]]:
    """Variable -> (default, meaning), from the rows of README's Configuration table."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = re.fullmatch(r"\| `(USERMGMT_[A-Z0-9_]+)` \| (.+?) \| (.+?) \|", line)
        if match:
            assert match[1] not in rows, f"{match[1]} is listed twice"
            rows[match[1]] = (match[2], match[3])
    return rows


def test_readme_documents_every_setting_and_nothing_else() -> None:
    documented = readme_table()

    assert sorted(documented) == sorted(Settings.env_names())
    for name, (default, meaning) in documented.items():
        assert default.strip() and meaning.strip(), name


def test_readme_gives_the_default_rate_of_every_rule() -> None:
    documented = readme_table()

    for rule, rate in DEFAULT_RATES.items():
        assert documented[f"USERMGMT_RATE_LIMIT_{rule.name}"][0] == f"`{format_rate(rate)}`", rule


def test_token_settings_alone_check_lifetimes() -> None:
    with pytest.raises(ValidationError, match="ACCESS_TOKEN_TTL"):
        TokenSettings(access_ttl=timedelta(days=31))


@pytest.mark.parametrize(
    ("loc", "variable"),
    [
        (("database", "pool_size"), "USERMGMT_DATABASE_POOL_SIZE"),
        (("tokens", "access_ttl"), "USERMGMT_ACCESS_TOKEN_TTL"),
        (("rate_limits", "ipv6_prefix"), "USERMGMT_RATE_LIMIT_IPV6_PREFIX"),
        (("environment",), "USERMGMT_ENVIRONMENT"),
        (("http", "no_such_field"), "http.no_such_field"),
    ],
)
def test_a_validation_error_location_names_its_environment_variable(loc: tuple[str, ...], variable: str) -> None:
    assert Settings.variable_for(loc) == variable
