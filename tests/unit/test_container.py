"""The composition root's settings-driven pieces: rate-limit policy, breached-password checker, signing keys."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from usermgmt.adapters.keys import KeyConfigurationError, SigningKey
from usermgmt.adapters.pwned_passwords import PwnedPasswordsChecker
from usermgmt.application.abuse import DEFAULT_RATES, RateRule
from usermgmt.application.commands import ClientInfo
from usermgmt.application.ports import Rate
from usermgmt.config import Settings
from usermgmt.container import breached_checker_from, keyring_from, rate_limit_policy_from

PRODUCTION = {
    "environment": "production",
    "trusted_hosts": "auth.example.com",
    "hsts_max_age": "31536000",
    "smtp_host": "smtp.example.com",
    "data_encryption_keys": "qD4mB3oGx7T8mQ1a9Zr2n0c6Vw5YpLkEJHsUdF3tCiA",
}


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("USERMGMT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_policy_takes_every_rate_the_switch_and_the_ipv6_prefix() -> None:
    policy = rate_limit_policy_from(
        settings(rate_limit_login_per_ip="2/1s", rate_limits_enabled="false", rate_limit_ipv6_prefix="48")
    )

    assert policy.rate(RateRule.LOGIN_PER_IP) == Rate(2, timedelta(seconds=1))
    assert {rule: policy.rate(rule) for rule in RateRule if rule is not RateRule.LOGIN_PER_IP} == {
        rule: rate for rule, rate in DEFAULT_RATES.items() if rule is not RateRule.LOGIN_PER_IP
    }
    assert policy.enabled is False
    assert policy.client_key(ClientInfo(ip="2001:db8:1:2:3::1")) == "2001:db8:1::/48"
    assert policy.client_key(ClientInfo(ip="192.0.2.7")) == "192.0.2.7"


def test_the_default_policy_keys_ipv6_clients_by_their_64() -> None:
    policy = rate_limit_policy_from(settings())

    assert policy.enabled is True
    assert policy.client_key(ClientInfo(ip="2001:db8:1:2:3::1")) == "2001:db8:1:2::/64"


async def test_the_breached_password_check_is_built_only_when_enabled() -> None:
    assert breached_checker_from(settings()) is None
    checker = breached_checker_from(settings(pwned_passwords_enabled="true", pwned_passwords_timeout="0.5"))
    assert isinstance(checker, PwnedPasswordsChecker)
    await checker.aclose()


def test_development_generates_its_key_with_no_configuration(tmp_path: Path) -> None:
    ring = keyring_from(settings(data_dir=tmp_path))

    files = list((tmp_path / "keys").glob("*.pem"))
    assert len(files) == 1
    assert files[0].name.endswith(f"-{ring.active.kid[:8]}.pem")


def test_production_refuses_to_generate_its_key(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="USERMGMT_SIGNING_KEY_AUTOGENERATE"):
        keyring_from(settings(data_dir=tmp_path, **PRODUCTION))

    assert not (tmp_path / "keys").exists()


def test_production_refuses_the_development_key(tmp_path: Path) -> None:
    keyring_from(settings(data_dir=tmp_path))  # a development start left its key behind

    with pytest.raises(KeyConfigurationError, match="generated"):
        keyring_from(settings(data_dir=tmp_path, signing_key_autogenerate="false", **PRODUCTION))


def test_production_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "2027-01.pem").write_bytes(SigningKey.generate().private_pem())
    (keys / "2027-01.pem").chmod(0o644)

    with pytest.raises(KeyConfigurationError, match="chmod 600"):
        keyring_from(settings(signing_keys_dir=str(keys), signing_key_autogenerate="false", **PRODUCTION))

    (keys / "2027-01.pem").chmod(0o600)
    assert keyring_from(settings(signing_keys_dir=str(keys), signing_key_autogenerate="false", **PRODUCTION))
