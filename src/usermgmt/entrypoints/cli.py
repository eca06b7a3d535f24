"""The ``usermgmt`` command: ``serve``, ``migrate``, ``purge-sessions``, ``send-test-email``, and administration:
``create-admin``, ``roles grant|revoke``, ``users list`` and ``stats``."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from datetime import datetime

    from usermgmt.config import Settings

logger = logging.getLogger("usermgmt.cli")
T = TypeVar("T")

HEADER_TIMEOUT = 10.0  # seconds from the connection (or the request's first byte) to the end of the headers
BODY_TIMEOUT = 30.0  # seconds from the end of the headers to the end of the body


def _setting_error(variable: str, message: str) -> str:
    """One invalid setting, as the log says it: the variable to fix (none for a rule across settings) and why."""
    message = message.removeprefix("Value error, ")
    return f"{variable}: {message}" if variable else message


def load_settings() -> Settings | None:
    """The settings, or None after logging why they are invalid: the variables and rules only, never a value (it
    may be a secret, such as the database URL's password)."""
    from pydantic import ValidationError

    from usermgmt.config import Settings

    try:
        return Settings()
    except ValidationError as error:
        fields = [_setting_error(Settings.variable_for(e["loc"]), e["msg"]) for e in error.errors(include_input=False)]
        logger.error("invalid settings: %s", "; ".join(fields))
        return None


def _serve(args: argparse.Namespace) -> int:
    from usermgmt.entrypoints.logging import configure_logging

    configure_logging(args.log_level)  # first: every line on stderr is JSON, the key loading's included
    settings = load_settings()
    if settings is None:
        return 1
    observability = settings.observability
    folder = observability.metrics_dir or settings.data_dir / "metrics"
    if observability.metrics_port is not None:
        from usermgmt.entrypoints import metrics_server

        try:  # before prometheus-client is imported (it reads the variable then) and before any worker starts
            metrics_server.prepare(folder)
        except OSError as error:
            logger.error("cannot prepare the metrics folder: %s", error)
            return 1

    from usermgmt.adapters.crypto import DataKeyError
    from usermgmt.adapters.keys import KeyConfigurationError
    from usermgmt.container import keyring_from, secret_box_from

    try:
        keyring_from(settings)  # load or generate the signing keys here, once, before any worker starts
    except (KeyConfigurationError, OSError) as error:
        logger.error("cannot load the signing keys: %s", error)
        return 1
    except Exception:  # as JSON too, with its traceback, rather than Python's plain-text one
        logger.exception("cannot start")
        return 1
    try:
        secret_box_from(settings)  # and the data encryption keys (a development one is generated here, once)
    except (DataKeyError, OSError) as error:
        logger.error("cannot load the data encryption keys: %s", error)
        return 1
    except Exception:  # as JSON too, with its traceback, rather than Python's plain-text one
        logger.exception("cannot start")
        return 1
    with contextlib.ExitStack() as stack:
        if observability.metrics_port is not None:
            try:
                stack.enter_context(
                    metrics_server.serving(observability.metrics_host, observability.metrics_port, folder)
                )
            except OSError as error:
                logger.error("cannot serve the metrics on port %d: %s", observability.metrics_port, error)
                return 1
        _run_uvicorn(args)
    return 0


def _run_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    from usermgmt.entrypoints.http.server import deadline_protocol
    from usermgmt.entrypoints.logging import logging_config

    uvicorn.run(
        "usermgmt.entrypoints.http.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=deadline_protocol(header_timeout=args.header_timeout, body_timeout=args.body_timeout),
        proxy_headers=False,
        server_header=False,
        log_level=args.log_level,
        log_config=logging_config(args.log_level),
        access_log=False,  # the app logs each request itself, with its request id
        timeout_graceful_shutdown=20,
    )


def _migrate(args: argparse.Namespace) -> int:
    from usermgmt.adapters.sqlalchemy import migrations

    settings = load_settings()
    if settings is None:
        return 1
    url = settings.database.url
    if args.downgrade or args.revision.startswith("-") or args.revision == "base":
        migrations.downgrade(url, args.revision)
    else:
        migrations.upgrade(url, args.revision)
    return 0


def _purge_sessions(_: argparse.Namespace) -> int:
    import asyncio

    from usermgmt.container import build_container, close_resources

    settings = load_settings()
    if settings is None:
        return 1

    async def purge() -> int:
        container = build_container(settings)
        try:
            return int(await container.purge_expired_sessions()())
        finally:
            await close_resources(container)

    print(f"purged {asyncio.run(purge())} expired sessions")  # noqa: T201 - the command's output
    return 0


def _send_test_email(args: argparse.Namespace) -> int:
    """Render ``test_email`` for ADDRESS and hand it to the configured mailer now (not through the outbox); print
    where it went, or why it did not (exit status 1)."""
    import asyncio
    from datetime import UTC, datetime

    from usermgmt.adapters.mail.files import FileMailer
    from usermgmt.adapters.sqlalchemy.email import new_message_id
    from usermgmt.application.email import Template
    from usermgmt.application.ports import DeliveryFailed, EmailMessage
    from usermgmt.container import build_container, close_resources, message_id_domain_from

    settings = load_settings()
    if settings is None:
        return 1

    async def send() -> str:
        container = build_container(settings)
        try:
            now = datetime.now(UTC)
            rendered = container.email_renderer().render(
                Template.TEST.value, {"to": args.address, "at": now.isoformat(timespec="seconds")}
            )
            message = EmailMessage(
                message_id=new_message_id(message_id_domain_from(settings)),
                sender=settings.email.email_from,
                to=args.address,
                subject=rendered.subject,
                text=rendered.text,
                html=rendered.html,
                template=Template.TEST.value,
            )
            mailer = container.mailer()
            where = await mailer.send(message)
            if isinstance(mailer, FileMailer):
                return f"USERMGMT_SMTP_HOST is unset: wrote the test message for {args.address} to {where}"
            return f"sent the test message to {args.address} via {where} ({message.message_id})"
        finally:
            await close_resources(container)

    try:
        print(asyncio.run(send()))  # noqa: T201 - the command's output
    except DeliveryFailed as failed:
        detail = f": {failed.detail}" if failed.detail != failed.reason else ""
        kind = "permanent" if failed.permanent else "temporary"
        print(f"could not send the test message ({kind} failure): {failed.reason}{detail}", file=sys.stderr)  # noqa: T201
        return 1
    except ValueError as error:  # a template (an override) that does not render
        print(f"could not send the test message: {error}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


def _maintenance(args: argparse.Namespace) -> int:
    """One maintenance run now (``--once``), or one every ``USERMGMT_MAINTENANCE_INTERVAL`` until interrupted."""
    import asyncio

    from usermgmt.application.maintenance import MaintenanceHandler, MaintenanceReport
    from usermgmt.domain.errors import DomainError
    from usermgmt.entrypoints.logging import configure_logging

    configure_logging("info")
    settings = load_settings()
    if settings is None:
        return 1

    async def run(container: Any) -> MaintenanceReport:
        handler: MaintenanceHandler = container.maintenance()
        while True:
            report = await handler()
            if args.once:
                return report
            await asyncio.sleep(settings.privacy.maintenance_interval.total_seconds())

    try:
        report = _with_container(settings, run)
    except DomainError as error:
        return _fail(f"maintenance failed ({error.code}): {error.detail}")
    except CommandFailed as error:
        return _fail(f"maintenance failed: {error}")
    if not report.ran:
        print("maintenance skipped: another process holds the maintenance lock")  # noqa: T201 - the output
        return 0
    print("maintenance removed " + ", ".join(f"{n} {what}" for what, n in report.counts().items()))  # noqa: T201
    return 0


def _fail(message: str) -> int:
    print(message, file=sys.stderr)  # noqa: T201 - the command's output
    return 1


def _read_password(args: argparse.Namespace) -> str | None:
    """The new account's password: the first line of standard input with ``--password-stdin``, else typed twice
    at a prompt. None when they differ or none was given."""
    import getpass

    if args.password_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        return line or None
    first = getpass.getpass("Password for the new administrator: ")
    if first != getpass.getpass("Repeat it: "):
        print("the two passwords differ", file=sys.stderr)  # noqa: T201 - the command's output
        return None
    return first or None


class CommandFailed(Exception):
    """A command could not do its work for a reason that is not the operator's input (logged with its cause)."""


def _with_container(
    settings: Settings, work: Callable[[Any], Awaitable[T]], *, passes: tuple[type[Exception], ...] = ()
) -> T:
    """Run ``work(container)`` on a container of ``settings``, releasing its resources after. A failure that is
    not a ``DomainError`` or one of ``passes`` (a database without the schema, say) is logged and raised as
    ``CommandFailed``."""
    import asyncio

    from usermgmt.container import build_container, close_resources
    from usermgmt.domain.errors import DomainError

    async def run() -> T:
        container = build_container(settings)
        try:
            return await work(container)
        finally:
            await close_resources(container)

    try:
        return asyncio.run(run())
    except Exception as error:
        if isinstance(error, (DomainError, *passes)):
            raise
        logger.debug("command failed", exc_info=True)
        raise CommandFailed(
            f"{type(error).__name__}: is the database reachable and migrated? Run `usermgmt migrate` first."
        ) from error


def _create_admin(args: argparse.Namespace) -> int:
    """Create the account with admin, or grant admin to the existing one; exit 1 with the reason otherwise."""
    from usermgmt.application import commands
    from usermgmt.application.handlers.admin import BootstrapAdminHandler, PasswordRequired
    from usermgmt.domain.errors import DomainError
    from usermgmt.domain.model import User

    settings = load_settings()
    if settings is None:
        return 1

    async def create(container: Any) -> tuple[User, bool]:
        handler: BootstrapAdminHandler = container.bootstrap_admin()
        try:
            return await handler(commands.BootstrapAdmin(email=args.email, password=None))
        except PasswordRequired:
            password = _read_password(args)
            if password is None:
                raise
            return await handler(commands.BootstrapAdmin(email=args.email, password=password))

    try:
        user, created = _with_container(settings, create, passes=(PasswordRequired,))
    except PasswordRequired:
        return _fail("no password given: the new account needs one")
    except DomainError as error:
        return _fail(f"could not create the administrator ({error.code}): {error.detail}")
    except CommandFailed as error:
        return _fail(f"could not create the administrator: {error}")
    what = "created the account" if created else "granted admin to the existing account"
    print(f"{what} {user.email.value} ({user.id}); it holds the admin role")  # noqa: T201 - the command's output
    return 0


def _change_role(args: argparse.Namespace) -> int:
    from usermgmt.application import commands
    from usermgmt.application.handlers.admin import ChangeRoleByEmailHandler
    from usermgmt.domain.errors import DomainError

    settings = load_settings()
    if settings is None:
        return 1
    grant = args.action == "grant"

    async def change(container: Any) -> tuple[str, ...]:
        handler: ChangeRoleByEmailHandler = container.change_role_by_email()
        return await handler(commands.ChangeRoleByEmail(email=args.email, role=args.role, grant=grant))

    try:
        roles = _with_container(settings, change)
    except DomainError as error:
        return _fail(f"could not {args.action} {args.role!r} ({error.code}): {error.detail}")
    except CommandFailed as error:
        return _fail(f"could not {args.action} {args.role!r}: {error}")
    held = ", ".join(roles) or "none"
    print(f"{args.email} now holds: {held}")  # noqa: T201 - the command's output
    return 0


def _list_users(args: argparse.Namespace) -> int:
    from usermgmt.application import commands
    from usermgmt.application.handlers.admin import ListUsersHandler
    from usermgmt.application.results import UserPage
    from usermgmt.domain.errors import DomainError

    settings = load_settings()
    if settings is None:
        return 1

    async def page(container: Any) -> UserPage:
        handler: ListUsersHandler = container.admin_list_users()
        return await handler(commands.ListUsers(actor=commands.Actor.operator(), query=args.query, limit=args.limit))

    try:
        found = _with_container(settings, page)
    except DomainError as error:
        return _fail(f"could not list users ({error.code}): {error.detail}")
    except CommandFailed as error:
        return _fail(f"could not list users: {error}")
    for view in found.items:
        user = view.user
        state = "active" if user.is_active else "disabled"
        roles = ",".join(view.roles) or "-"
        name = user.username.value if user.username else "-"
        created = user.created_at.isoformat(timespec="seconds")
        print(f"{user.id}  {user.email.value}  {name}  {state}  {roles}  {created}")  # noqa: T201 - the output
    if found.next_cursor:
        print("(more: narrow with --query, or raise --limit up to 100)", file=sys.stderr)  # noqa: T201
    return 0


def _stats(args: argparse.Namespace) -> int:
    """Print the KPIs of the period as JSON, the body ``GET /api/v1/admin/stats`` answers."""
    import json

    from usermgmt.application import commands
    from usermgmt.application.handlers.stats import StatsHandler
    from usermgmt.application.results import Stats
    from usermgmt.domain.errors import DomainError
    from usermgmt.entrypoints.http.routers.presenters import stats_out

    settings = load_settings()
    if settings is None:
        return 1

    async def compute(container: Any) -> Stats:
        handler: StatsHandler = container.admin_stats()
        return await handler(commands.GetStats(actor=commands.Actor.operator(), from_=args.from_, to=args.to))

    try:
        stats = _with_container(settings, compute)
    except DomainError as error:
        return _fail(f"could not compute the stats ({error.code}): {error.detail}")
    except CommandFailed as error:
        return _fail(f"could not compute the stats: {error}")
    print(json.dumps(stats_out(stats).model_dump(mode="json", by_alias=True), indent=2))  # noqa: T201 - the output
    return 0


def _moment(value: str) -> datetime:
    from datetime import datetime

    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None


def _address(value: str) -> str:
    from usermgmt.domain.errors import DomainError
    from usermgmt.domain.value_objects import Email

    try:
        return Email(value).value
    except DomainError as error:
        raise argparse.ArgumentTypeError(f"not an email address: {error.detail}") from None


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 3600 seconds, not {value}")
    return seconds


def _check_migrate(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], None]:
    def check(args: argparse.Namespace) -> None:
        if args.revision is None and args.downgrade:
            parser.error("--downgrade needs the REVISION to go down to, e.g. -1 or base")
        if args.revision is None:
            args.revision = "head"

    return check


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="usermgmt", description="User-management backend.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--header-timeout",
        type=_seconds,
        default=HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request line and headers are not complete after this long (default %(default)s)",
    )
    serve.add_argument(
        "--body-timeout",
        type=_seconds,
        default=BODY_TIMEOUT,
        metavar="SECONDS",
        help="close a connection whose request body is not complete this long after its headers (default %(default)s)",
    )
    serve.set_defaults(func=_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations (default: upgrade to head)")
    migrate.add_argument("revision", nargs="?", help="target revision (default head; -N or base to go down)")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to REVISION (required) instead")
    migrate.set_defaults(func=_migrate, check=_check_migrate(migrate))

    purge = sub.add_parser("purge-sessions", help="delete expired sessions and their retired refresh-token hashes")
    purge.set_defaults(func=_purge_sessions)

    test_email = sub.add_parser(
        "send-test-email",
        help="send one test message through the configured mailer (SMTP, or a file when USERMGMT_SMTP_HOST is unset)",
    )
    test_email.add_argument("address", type=_address, metavar="ADDRESS", help="where to send it")
    test_email.set_defaults(func=_send_test_email)

    create_admin = sub.add_parser(
        "create-admin", help="create an administrator, or grant the admin role to an existing account"
    )
    create_admin.add_argument("email", metavar="EMAIL")
    create_admin.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a new account's password from the first line of standard input instead of a prompt",
    )
    create_admin.set_defaults(func=_create_admin)

    roles = sub.add_parser("roles", help="grant or revoke a role")
    roles.add_argument("action", choices=["grant", "revoke"])
    roles.add_argument("email", metavar="EMAIL")
    roles.add_argument("role", metavar="ROLE")
    roles.set_defaults(func=_change_role)

    maintenance = sub.add_parser(
        "maintenance",
        help="purge expired sessions, links and challenges, erase accounts whose grace period ended, drop old "
        "anonymous events (the server runs it every USERMGMT_MAINTENANCE_INTERVAL)",
    )
    maintenance.add_argument("--once", action="store_true", help="one run, then exit (default: run every interval)")
    maintenance.set_defaults(func=_maintenance)

    users = sub.add_parser("users", help="list accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    users_list = users_sub.add_parser("list", help="accounts, newest first")
    users_list.add_argument("--query", help="email or username prefix, any case")
    users_list.add_argument("--limit", type=int, default=100, choices=range(1, 101), metavar="1-100")
    users_list.set_defaults(func=_list_users)

    stats = sub.add_parser("stats", help="the KPIs of a period, from the audit trail, as JSON")
    stats.add_argument(
        "--from",
        dest="from_",
        type=_moment,
        metavar="ISO",
        help="start (default: 30 days before --to; UTC if no offset)",
    )
    stats.add_argument("--to", type=_moment, metavar="ISO", help="end, excluded (default: now)")
    stats.set_defaults(func=_stats)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; exits with status 2 and a usage message when it is not a valid one."""
    args = build_parser().parse_args(argv)
    if check := getattr(args, "check", None):  # what argparse cannot say about one subcommand's arguments
        check(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
