"""The composition root: which adapter plays which port. Constructs objects; does no I/O itself."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr
from functools import partial

from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from usermgmt.adapters.audit_log import log_committed
from usermgmt.adapters.common_passwords import load_common_passwords
from usermgmt.adapters.crypto import AesGcmSecretBox, load_data_keys
from usermgmt.adapters.hashing import PasslibPasswordHasher
from usermgmt.adapters.keys import KeyRing, load_keyring
from usermgmt.adapters.mail.files import FileMailer
from usermgmt.adapters.mail.smtp import SmtpMailer
from usermgmt.adapters.mail.templates import JinjaEmailRenderer
from usermgmt.adapters.metrics import Metrics, MetricsSampler, PoolStatus
from usermgmt.adapters.oauth import FacebookProvider, OidcProvider
from usermgmt.adapters.pwned_passwords import PwnedPasswordsChecker
from usermgmt.adapters.rate_limit import build_rate_limiter
from usermgmt.adapters.refresh_tokens import SecretsRefreshTokenFactory
from usermgmt.adapters.sqlalchemy.email import DEFAULT_MESSAGE_ID_DOMAIN
from usermgmt.adapters.sqlalchemy.engine import build_engine
from usermgmt.adapters.sqlalchemy.fast_principals import AsyncpgPrincipalReader
from usermgmt.adapters.sqlalchemy.health import SqlAlchemyHealthCheck
from usermgmt.adapters.sqlalchemy.observability import OutboxBacklog, orm_pool_status
from usermgmt.adapters.sqlalchemy.principals import SqlAlchemyPrincipalReader
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.adapters.system import SystemClock, UuidV7Generator
from usermgmt.adapters.tokens import JoseAccessTokenService
from usermgmt.adapters.totp import PyotpAuthenticator, SegnoQrCodes
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.devices import KnownDevices
from usermgmt.application.email import EmailPolicy, Postman
from usermgmt.application.handlers import admin
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.application.handlers.change_password import ChangePasswordHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.email_address import (
    ConfirmEmailChangeHandler,
    RequestEmailChangeHandler,
    ResendVerificationHandler,
    VerifyEmailHandler,
)
from usermgmt.application.handlers.federation import (
    FederationPolicy,
    FinishProviderSignInHandler,
    ListIdentitiesHandler,
    ListProvidersHandler,
    Providers,
    RedeemLoginCodeHandler,
    StartIdentityLinkHandler,
    StartProviderSignInHandler,
    UnlinkIdentityHandler,
)
from usermgmt.application.handlers.introspect import IntrospectionClients, IntrospectTokenHandler
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.handlers.logout import LogoutHandler
from usermgmt.application.handlers.mfa import (
    ConfirmTotpEnrolmentHandler,
    DisableTotpHandler,
    GetMfaStatusHandler,
    LoginMfaHandler,
    RegenerateRecoveryCodesHandler,
    StartTotpEnrolmentHandler,
)
from usermgmt.application.handlers.password_reset import ForgotPasswordHandler, ResetPasswordHandler
from usermgmt.application.handlers.privacy import ExportDataHandler, RestoreAccountHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.handlers.register_user import RegisterUserHandler
from usermgmt.application.handlers.session_issuer import SessionIssuer
from usermgmt.application.handlers.sessions import (
    ListEventsHandler,
    ListSessionsHandler,
    PurgeExpiredSessionsHandler,
    RevokeSessionHandler,
)
from usermgmt.application.handlers.stats import StatsHandler
from usermgmt.application.handlers.update_profile import UpdateProfileHandler
from usermgmt.application.maintenance import MaintenanceHandler, MaintenanceLoop
from usermgmt.application.mfa import Codes, MfaPolicy, TotpSecondFactor
from usermgmt.application.outbox import Doorbell, OutboxWorker
from usermgmt.application.ports import (
    Clock,
    EventDispatcher,
    EventHandler,
    IdentityProvider,
    Mailer,
    PrincipalReader,
)
from usermgmt.application.screening import PasswordScreen
from usermgmt.config import Environment, Settings
from usermgmt.domain.password_policy import PasswordPolicy


def rate_limit_policy_from(settings: Settings) -> RateLimitPolicy:
    """The rate of every rule, the switch and the IPv6 grouping, as configured."""
    limits = settings.rate_limits
    return RateLimitPolicy(enabled=limits.enabled, rates=limits.rates, ipv6_prefix=limits.ipv6_prefix)


def breached_checker_from(settings: Settings) -> PwnedPasswordsChecker | None:
    passwords = settings.passwords
    if not passwords.pwned_enabled:
        return None
    return PwnedPasswordsChecker(base_url=passwords.pwned_url, timeout=passwords.pwned_timeout)


def principal_reader_from(settings: Settings, engine: AsyncEngine) -> PrincipalReader:
    """PostgreSQL gets the asyncpg hot path; SQLite (and anything else) the SQLAlchemy reader.

    Behind a transaction-mode PgBouncer (statement cache 0) the hot path still works: asyncpg then sends the
    statement unnamed, and its parse and execute cannot be split across server connections (checked with
    PgBouncer 1.18, docs/performance.md).
    """
    if engine.dialect.name == "postgresql":
        database = settings.database
        return AsyncpgPrincipalReader(
            database.url,
            max_size=database.principal_pool_size,
            connect_timeout=database.connect_timeout,
            command_timeout=database.command_timeout,
            statement_cache_size=database.statement_cache_size,
        )
    return SqlAlchemyPrincipalReader(engine)


def email_policy_from(settings: Settings) -> EmailPolicy:
    email = settings.email
    return EmailPolicy(
        frontend_url=email.frontend_url,
        token_ttl=email.token_ttl,
        password_reset_ttl=email.password_reset_ttl,
        require_verified_email=email.require_verified_email,
        notify_new_device=email.notify_new_device,
        deletion_grace_period=settings.privacy.deletion_grace_period,
    )


def message_id_domain_from(settings: Settings) -> str:
    """The domain of the From address names the Message-IDs of what we send (RFC 5322 3.6.4)."""
    _, address = parseaddr(settings.email.email_from)
    domain = address.rpartition("@")[2].strip()
    return domain or DEFAULT_MESSAGE_ID_DOMAIN


def mailer_from(settings: Settings) -> Mailer:
    """SMTP when ``USERMGMT_SMTP_HOST`` is set; otherwise (development) ``.eml`` files in ``<DATA_DIR>/mail``."""
    email = settings.email
    if email.smtp_host is None:
        return FileMailer(settings.data_dir / "mail")
    return SmtpMailer(
        host=email.smtp_host,
        port=email.smtp_port,
        security=email.smtp_security,
        username=email.smtp_username,
        password=email.smtp_password.get_secret_value() if email.smtp_password is not None else None,
        timeout=email.smtp_timeout,
    )


def send_timeout_from(settings: Settings) -> float:
    """How long one message may take to send: a whole SMTP exchange is several round trips of the timeout each."""
    return max(30.0, 4 * settings.email.smtp_timeout)


def keyring_from(settings: Settings) -> KeyRing:
    """The signing keys; in production, only keys fit for it (``load_keyring``). Raises: KeyConfigurationError."""
    tokens = settings.tokens
    return load_keyring(
        tokens.keys_dir,
        inline_pem=tokens.signing_key.get_secret_value() if tokens.signing_key else None,
        autogenerate=tokens.autogenerate_key,
        production=settings.environment is Environment.PRODUCTION,
    )


def secret_box_from(settings: Settings) -> AesGcmSecretBox:
    """The data keys (``USERMGMT_DATA_ENCRYPTION_KEYS``, or the development key in ``data_dir/keys``).
    Raises: DataKeyError, OSError."""
    return AesGcmSecretBox(
        load_data_keys(
            [key.get_secret_value() for key in settings.mfa.data_encryption_keys],
            keys_dir=settings.data_dir / "keys",
            production=settings.environment is Environment.PRODUCTION,
        )
    )


def introspection_clients_from(settings: Settings) -> IntrospectionClients:
    return IntrospectionClients(
        {client_id: secret.get_secret_value() for client_id, secret in settings.privacy.introspection_clients.items()}
    )


KPI_DAY = timedelta(days=1)  # the window of the rate gauges (registrations, sign-in success and latency)
KPI_MONTH = timedelta(days=30)  # the window of the slow ones (retention, reset time, deletions)


def metrics_from(settings: Settings) -> Metrics | None:
    """The metric families when ``USERMGMT_METRICS_PORT`` is set; otherwise nothing is counted at all."""
    return Metrics() if settings.observability.metrics_enabled else None


def after_commit_from(metrics: Metrics | None) -> list[EventHandler]:
    """What follows a commit: the audit log line of each security event, and its count in the metrics."""
    return [log_committed] if metrics is None else [log_committed, metrics.count_committed]


def email_outcomes_to(metrics: Metrics | None) -> Callable[[str], None] | None:
    return metrics.email_outcome if metrics is not None else None


def metrics_sampler_from(
    settings: Settings,
    metrics: Metrics | None,
    engine: AsyncEngine,
    principals: PrincipalReader,
    access_tokens: JoseAccessTokenService,
    clock: Clock,
    stats: Callable[[], StatsHandler],
) -> MetricsSampler | None:
    """The background sampling of pools, caches and database-read gauges, when metrics are on."""
    if metrics is None:
        return None
    pools: dict[str, Callable[[], PoolStatus]] = {"orm": partial(orm_pool_status, engine)}
    if isinstance(principals, AsyncpgPrincipalReader):
        pools["principal"] = lambda: PoolStatus(*principals.pool_counts())
    backlog = OutboxBacklog(engine)

    async def refresh() -> None:
        count, oldest = await backlog()
        now = clock.now()
        metrics.outbox_backlog.set(count)
        metrics.outbox_oldest_age.set(max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        kpis = stats()
        metrics.show_stats(await kpis.compute(now - KPI_DAY, now), await kpis.compute(now - KPI_MONTH, now))

    return MetricsSampler(
        metrics,
        pools=pools,
        token_cache=access_tokens.cache_counts,
        refresh=refresh,
        refresh_interval=settings.observability.kpi_refresh_interval.total_seconds(),
    )


def identity_providers_from(settings: Settings) -> dict[str, IdentityProvider]:
    """The providers with credentials, by name: Google, Facebook, then the generic OpenID providers."""
    oauth = settings.oauth
    found: dict[str, IdentityProvider] = {}
    if oauth.google_client_id and oauth.google_client_secret:
        found["google"] = OidcProvider(
            "google",
            issuer=oauth.google_issuer,
            client_id=oauth.google_client_id,
            client_secret=oauth.google_client_secret.get_secret_value(),
        )
    if oauth.facebook_client_id and oauth.facebook_client_secret:
        found["facebook"] = FacebookProvider(
            client_id=oauth.facebook_client_id,
            client_secret=oauth.facebook_client_secret.get_secret_value(),
            dialog_url=oauth.facebook_dialog_url,
            graph_url=oauth.facebook_graph_url,
        )
    for provider in oauth.oidc_providers:
        found[provider.name] = OidcProvider(
            provider.name,
            issuer=provider.issuer,
            client_id=provider.client_id,
            client_secret=provider.client_secret.get_secret_value(),
            scopes=provider.scopes,
        )
    return found


def federation_policy_from(settings: Settings) -> FederationPolicy:
    return FederationPolicy(public_url=settings.oauth.public_url, redirect_uris=settings.oauth.redirect_uris)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    # Infrastructure
    engine = providers.Singleton(build_engine, settings)
    metrics = providers.Singleton(metrics_from, settings)
    keyring = providers.Singleton(keyring_from, settings)
    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidV7Generator)
    hasher = providers.Singleton(
        PasslibPasswordHasher,
        rounds=settings.provided.passwords.bcrypt_rounds,
        workers=settings.provided.passwords.hash_workers,
        metrics=metrics,
        niceness=settings.provided.passwords.hash_thread_niceness,
        max_wait=settings.provided.passwords.hash_max_wait,
    )
    access_tokens = providers.Singleton(
        JoseAccessTokenService,
        keyring=keyring,
        issuer=settings.provided.tokens.issuer,
        audience=settings.provided.tokens.audience,
        ttl=settings.provided.tokens.access_ttl,
        clock=clock,
    )
    refresh_tokens = providers.Singleton(SecretsRefreshTokenFactory)
    common_passwords = providers.Singleton(load_common_passwords)
    password_policy = providers.Singleton(
        PasswordPolicy, min_length=settings.provided.passwords.min_length, common=common_passwords
    )
    breached_passwords = providers.Singleton(breached_checker_from, settings)
    password_screen = providers.Singleton(PasswordScreen, policy=password_policy, breached=breached_passwords)
    rate_limiter = providers.Singleton(build_rate_limiter, settings.provided.rate_limits.redis_url)
    rate_limit_policy = providers.Singleton(rate_limit_policy_from, settings)
    throttle = providers.Singleton(Throttle, limiter=rate_limiter, policy=rate_limit_policy)
    # What follows a commit: the audit log line of each security event (and its count, with metrics on).
    dispatcher = providers.Singleton(EventDispatcher, after_commit=providers.Callable(after_commit_from, metrics))
    # Rung by a commit that queued mail: the outbox worker of this process delivers at once instead of at its poll.
    mail_doorbell = providers.Singleton(Doorbell)
    uow = providers.Factory(
        SqlAlchemyUnitOfWork,
        engine=engine,
        dispatcher=dispatcher,
        message_id_domain=providers.Callable(message_id_domain_from, settings),
        on_mail_queued=mail_doorbell.provided.ring,
    )
    email_policy = providers.Singleton(email_policy_from, settings)
    postman = providers.Singleton(Postman, policy=email_policy)
    # Email delivery: the outbox worker (started by the app's lifespan) renders and sends what the use cases queued.
    mailer = providers.Singleton(mailer_from, settings)
    email_renderer = providers.Singleton(
        JinjaEmailRenderer,
        frontend_url=settings.provided.email.frontend_url,
        override_dir=settings.provided.email.templates_dir,
    )
    outbox_worker = providers.Singleton(
        OutboxWorker,
        uow=uow.provider,
        mailer=mailer,
        renderer=email_renderer,
        clock=clock,
        sender=settings.provided.email.email_from,
        doorbell=mail_doorbell,
        send_timeout=providers.Callable(send_timeout_from, settings),
        on_outcome=providers.Callable(email_outcomes_to, metrics),
    )
    devices = providers.Singleton(
        KnownDevices,
        postman=postman,
        notify=email_policy.provided.notify_new_device,
        ipv6_prefix=rate_limit_policy.provided.ipv6_prefix,
    )
    guard = providers.Factory(Guard, throttle=throttle, uow=uow, clock=clock)
    # Two-factor authentication: sealed TOTP secrets, recovery codes, the second sign-in step.
    secret_box = providers.Singleton(secret_box_from, settings)
    mfa_policy = providers.Singleton(MfaPolicy, issuer=settings.provided.mfa.issuer)
    mfa_codes = providers.Singleton(
        Codes,
        policy=mfa_policy,
        box=secret_box,
        authenticator=providers.Singleton(PyotpAuthenticator),
        qr=providers.Singleton(SegnoQrCodes),
    )
    second_factors = providers.Singleton(TotpSecondFactor, policy=mfa_policy)
    principals = providers.Singleton(principal_reader_from, settings, engine)
    health = providers.Singleton(SqlAlchemyHealthCheck, engine=engine)

    # Use cases
    register_user = providers.Factory(
        RegisterUserHandler,
        uow=uow,
        hasher=hasher,
        screen=password_screen,
        clock=clock,
        ids=ids,
        guard=guard,
        devices=devices,
        postman=postman,
    )
    session_issuer = providers.Factory(
        SessionIssuer,
        uow=uow,
        access_tokens=access_tokens,
        refresh_tokens=refresh_tokens,
        clock=clock,
        ids=ids,
        session_lifetime=settings.provided.tokens.refresh_ttl,
        second_factors=second_factors,
        devices=devices,
        postman=postman,
    )
    login = providers.Factory(LoginHandler, uow=uow, hasher=hasher, issuer=session_issuer, clock=clock, guard=guard)
    refresh_session = providers.Factory(
        RefreshSessionHandler,
        uow=uow,
        refresh_tokens=refresh_tokens,
        issuer=session_issuer,
        clock=clock,
        guard=guard,
        session_lifetime=settings.provided.tokens.refresh_ttl,
    )
    logout = providers.Factory(LogoutHandler, uow=uow, clock=clock)
    authenticate = providers.Singleton(
        AuthenticateHandler, access_tokens=access_tokens, principals=principals, clock=clock
    )
    update_profile = providers.Factory(UpdateProfileHandler, uow=uow, clock=clock, guard=guard)
    change_password = providers.Factory(
        ChangePasswordHandler,
        uow=uow,
        hasher=hasher,
        screen=password_screen,
        clock=clock,
        guard=guard,
        postman=postman,
    )
    delete_account = providers.Factory(
        DeleteAccountHandler,
        uow=uow,
        hasher=hasher,
        clock=clock,
        guard=guard,
        postman=postman,
        grace_period=settings.provided.privacy.deletion_grace_period,
    )
    list_sessions = providers.Factory(ListSessionsHandler, uow=uow, clock=clock)
    revoke_session = providers.Factory(RevokeSessionHandler, uow=uow, clock=clock)
    list_events = providers.Factory(ListEventsHandler, uow=uow)
    purge_expired_sessions = providers.Factory(PurgeExpiredSessionsHandler, uow=uow, clock=clock)

    # Email flows: verification and email change.
    verify_email = providers.Factory(VerifyEmailHandler, uow=uow, clock=clock, postman=postman)
    resend_verification = providers.Factory(
        ResendVerificationHandler, uow=uow, clock=clock, guard=guard, postman=postman
    )
    request_email_change = providers.Factory(
        RequestEmailChangeHandler, uow=uow, hasher=hasher, clock=clock, guard=guard, postman=postman
    )
    confirm_email_change = providers.Factory(ConfirmEmailChangeHandler, uow=uow, clock=clock, postman=postman)

    # Email flows: password reset.
    forgot_password = providers.Factory(ForgotPasswordHandler, uow=uow, clock=clock, guard=guard, postman=postman)
    reset_password = providers.Factory(
        ResetPasswordHandler, uow=uow, hasher=hasher, screen=password_screen, clock=clock, postman=postman
    )

    # Two-factor authentication.
    get_mfa_status = providers.Factory(GetMfaStatusHandler, uow=uow)
    start_totp = providers.Factory(
        StartTotpEnrolmentHandler, uow=uow, hasher=hasher, clock=clock, guard=guard, codes=mfa_codes
    )
    confirm_totp = providers.Factory(
        ConfirmTotpEnrolmentHandler, uow=uow, clock=clock, guard=guard, codes=mfa_codes, postman=postman
    )
    disable_totp = providers.Factory(
        DisableTotpHandler, uow=uow, hasher=hasher, clock=clock, guard=guard, codes=mfa_codes, postman=postman
    )
    regenerate_recovery_codes = providers.Factory(
        RegenerateRecoveryCodesHandler,
        uow=uow,
        hasher=hasher,
        clock=clock,
        guard=guard,
        codes=mfa_codes,
        postman=postman,
    )
    login_mfa = providers.Factory(
        LoginMfaHandler, uow=uow, clock=clock, guard=guard, codes=mfa_codes, issuer=session_issuer, postman=postman
    )

    # Administration (each use case checks its permission through the gate).
    admin_gate = providers.Factory(admin.AdminGate, guard=guard)
    admin_list_users = providers.Factory(admin.ListUsersHandler, uow=uow, gate=admin_gate)
    admin_get_user = providers.Factory(admin.GetUserHandler, uow=uow, gate=admin_gate)
    admin_update_user = providers.Factory(
        admin.AdministerUserHandler, uow=uow, clock=clock, gate=admin_gate, postman=postman
    )
    admin_disable_user = providers.Factory(admin.DisableUserHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_enable_user = providers.Factory(admin.EnableUserHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_delete_user = providers.Factory(
        admin.DeleteUserHandler, uow=uow, clock=clock, gate=admin_gate, postman=postman
    )
    admin_list_user_sessions = providers.Factory(admin.ListUserSessionsHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_revoke_user_sessions = providers.Factory(
        admin.RevokeUserSessionsHandler, uow=uow, clock=clock, gate=admin_gate
    )
    admin_list_user_events = providers.Factory(admin.ListUserEventsHandler, uow=uow, gate=admin_gate)
    admin_set_user_roles = providers.Factory(admin.SetUserRolesHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_reset_user_mfa = providers.Factory(
        admin.ResetUserMfaHandler, uow=uow, clock=clock, gate=admin_gate, postman=postman
    )
    admin_send_password_reset = providers.Factory(
        admin.SendPasswordResetHandler, uow=uow, clock=clock, gate=admin_gate, postman=postman
    )
    admin_list_roles = providers.Factory(admin.ListRolesHandler, uow=uow, gate=admin_gate)
    admin_create_role = providers.Factory(admin.CreateRoleHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_update_role = providers.Factory(admin.UpdateRoleHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_delete_role = providers.Factory(admin.DeleteRoleHandler, uow=uow, clock=clock, gate=admin_gate)
    admin_list_events = providers.Factory(admin.ListAuditTrailHandler, uow=uow, gate=admin_gate)
    admin_stats = providers.Factory(StatsHandler, uow=uow, clock=clock, gate=admin_gate)
    # Metrics: the background sampling of pools and caches, and the outbox and KPI gauges (when metrics are on).
    metrics_sampler = providers.Singleton(
        metrics_sampler_from, settings, metrics, engine, principals, access_tokens, clock, admin_stats.provider
    )
    bootstrap_admin = providers.Factory(
        admin.BootstrapAdminHandler, uow=uow, hasher=hasher, screen=password_screen, clock=clock, ids=ids
    )
    change_role_by_email = providers.Factory(admin.ChangeRoleByEmailHandler, uow=uow, clock=clock)

    # Sign-in through identity providers, and the identities linked to an account.
    identity_providers = providers.Singleton(identity_providers_from, settings)
    federation_policy = providers.Singleton(federation_policy_from, settings)
    providers_ = providers.Factory(
        Providers, uow=uow, providers=identity_providers, policy=federation_policy, clock=clock, guard=guard
    )
    start_provider_sign_in = providers.Factory(StartProviderSignInHandler, providers=providers_, guard=guard)
    finish_provider_sign_in = providers.Factory(
        FinishProviderSignInHandler,
        uow=uow,
        providers=providers_,
        clock=clock,
        ids=ids,
        postman=postman,
        devices=devices,
    )
    redeem_login_code = providers.Factory(
        RedeemLoginCodeHandler, uow=uow, issuer=session_issuer, clock=clock, guard=guard
    )
    start_identity_link = providers.Factory(StartIdentityLinkHandler, uow=uow, providers=providers_, guard=guard)
    list_identities = providers.Factory(ListIdentitiesHandler, uow=uow)
    list_providers = providers.Factory(ListProvidersHandler, providers=providers_)
    unlink_identity = providers.Factory(UnlinkIdentityHandler, uow=uow, clock=clock, guard=guard, postman=postman)

    # Privacy and integration: export, restore, token introspection, the maintenance task.
    export_data = providers.Factory(ExportDataHandler, uow=uow, hasher=hasher, clock=clock, guard=guard)
    restore_account = providers.Factory(RestoreAccountHandler, uow=uow, clock=clock, postman=postman)
    introspection_clients = providers.Singleton(introspection_clients_from, settings)
    introspect = providers.Singleton(
        IntrospectTokenHandler,
        access_tokens=access_tokens,
        principals=principals,
        clock=clock,
        clients=introspection_clients,
        issuer=settings.provided.tokens.issuer,
        audience=settings.provided.tokens.audience,
    )
    maintenance = providers.Factory(
        MaintenanceHandler,
        uow=uow,
        clock=clock,
        postman=postman,
        anonymous_event_retention=settings.provided.privacy.anonymous_event_retention,
    )
    maintenance_loop = providers.Singleton(
        MaintenanceLoop, run=maintenance, interval=settings.provided.privacy.maintenance_interval
    )


def build_container(settings: Settings | None = None) -> Container:
    return Container(settings=settings or Settings())


async def close_resources(container: Container) -> None:
    """Release what the singletons hold open: the outbox worker (first: it uses the engine), pools, threads, HTTP
    clients."""
    await container.maintenance_loop().aclose()
    sampler = container.metrics_sampler()
    if sampler is not None:
        await sampler.aclose()
    await container.outbox_worker().aclose()
    principals = container.principals()
    if isinstance(principals, AsyncpgPrincipalReader):
        await principals.close()
    await container.engine().dispose()
    container.hasher().close()
    breached = container.breached_passwords()
    if breached is not None:
        await breached.aclose()
