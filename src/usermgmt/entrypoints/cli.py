"""The ``usermgmt`` command: ``serve`` and ``migrate``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from usermgmt.config import Settings
    from usermgmt.container import keyring_from
    from usermgmt.entrypoints.logging import logging_config

    keyring_from(Settings())  # load or generate the signing keys here, once, before any worker starts
    uvicorn.run(
        "usermgmt.entrypoints.http.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=False,
        server_header=False,
        log_level=args.log_level,
        log_config=logging_config(args.log_level),
        access_log=False,  # the app logs each request itself, with its request id
        timeout_graceful_shutdown=20,
    )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from usermgmt.adapters.sqlalchemy import migrations
    from usermgmt.config import Settings

    url = Settings().database.url
    if args.revision.startswith("-") or args.downgrade:
        migrations.downgrade(url, args.revision)
    else:
        migrations.upgrade(url, args.revision)
    return 0


def _purge_sessions(_: argparse.Namespace) -> int:
    import asyncio

    from usermgmt.container import build_container, close_resources

    async def purge() -> int:
        container = build_container()
        try:
            return int(await container.purge_expired_sessions()())
        finally:
            await close_resources(container)

    print(f"purged {asyncio.run(purge())} expired sessions")  # noqa: T201 - the command's output
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usermgmt", description="User-management backend.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations (default: upgrade to head)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION instead")
    migrate.set_defaults(func=_migrate)

    purge = sub.add_parser("purge-sessions", help="delete expired sessions and their retired refresh-token hashes")
    purge.set_defaults(func=_purge_sessions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
