"""``python -m usermgmt.entrypoints.healthcheck [URL]``: exit 0 when URL answers 200, else 1 (container probes).

URL defaults to ``http://127.0.0.1:8000/healthz``. The request carries a ``Host`` the service accepts: the first
entry of ``USERMGMT_TRUSTED_HOSTS`` that is not ``*`` (``*.example.com`` gives ``healthcheck.example.com``), or,
when there is none, the URL's own host. Otherwise, with ``USERMGMT_TRUSTED_HOSTS`` set, the service would answer
the probe 400 ``invalid_host``. Only the environment is read (not a ``.env`` file), and only the standard library
is imported: it runs every few seconds.
"""

from __future__ import annotations

import http.client
import os
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000/healthz"
TIMEOUT_SECONDS = 3.0


def host_header(trusted_hosts: str | None) -> str | None:
    """The Host to send for this ``USERMGMT_TRUSTED_HOSTS`` value; ``None`` for the connection's own host."""
    for entry in (trusted_hosts or "").split(","):
        name = entry.strip()
        if name and name != "*":
            return "healthcheck" + name[1:] if name.startswith("*.") else name
    return None


def check(url: str, host: str | None, *, timeout: float = TIMEOUT_SECONDS) -> tuple[bool, str]:
    """(whether ``url`` answered 200, what happened)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False, f"not an http(s) URL: {url}"
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return False, f"{url}: {type(error).__name__}: {error}"
    finally:
        connection.close()
    return status == 200, f"{url}: {status}"


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) > 1:
        print("usage: python -m usermgmt.entrypoints.healthcheck [URL]", file=sys.stderr)  # noqa: T201
        return 2
    healthy, outcome = check(args[0] if args else DEFAULT_URL, host_header(os.environ.get("USERMGMT_TRUSTED_HOSTS")))
    if not healthy:
        print(f"unhealthy: {outcome}", file=sys.stderr)  # noqa: T201 - shown by `docker inspect`
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
