"""The container health probe's choice of Host header."""

from __future__ import annotations

import pytest

from usermgmt.entrypoints.healthcheck import host_header


@pytest.mark.parametrize(
    ("trusted_hosts", "host"),
    [
        (None, None),  # unset: the URL's own host
        ("", None),
        ("*", None),
        ("api.example.com", "api.example.com"),
        (" api.example.com , other.example.com", "api.example.com"),
        ("*, api.example.com", "api.example.com"),
        ("*.example.com,api.example.org", "healthcheck.example.com"),
        ("*,*.svc.cluster.local", "healthcheck.svc.cluster.local"),
    ],
)
def test_the_host_is_the_first_trusted_host_that_is_not_a_lone_star(trusted_hosts: str | None, host: str) -> None:
    assert host_header(trusted_hosts) == host
