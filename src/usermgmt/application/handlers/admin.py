"""Administration: find and change accounts, end their sessions, grant roles, read the audit trail.

Every use case here starts with ``AdminGate.authorize``: the actor must hold the permission it names (read fresh on
each request by the principal query), and pays one hit of ``admin_requests_per_actor``. Each change records a
security event with the actor (``actor_id``) in the target's history, where its owner sees "by an administrator",
and in the admin trail (``GET /admin/events``).

The invariant: some active account holds ``admin``. Whatever would take it from the last one (removing the role,
disabling, deleting) fails with ``LastAdmin``; such units of work lock the ``admin`` role first, so two of them
cannot each remove a different "other" administrator.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateRule
from usermgmt.application.audit import erasure_lag_seconds, security_event
from usermgmt.application.commands import Actor, ClientInfo
from usermgmt.application.email import Postman, Template, notice_context
from usermgmt.application.errors import (
    ConcurrentUpdate,
    EmailTaken,
    InsufficientPermission,
    InvalidCursor,
    LastAdmin,
    RateLimited,
    RoleExists,
    RoleNotFound,
    ServiceUnavailable,
    UnknownRole,
    UsernameTaken,
    UserNotFound,
)
from usermgmt.application.handlers.mfa import mfa_status
from usermgmt.application.ports import Clock, IdGenerator, PasswordHasher, UnitOfWork, UserPageKey
from usermgmt.application.results import (
    AdminUserView,
    DeletionReceipt,
    Erased,
    EventPage,
    SessionView,
    UserPage,
)
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import (
    DomainError,
    InvalidEmail,
    InvalidFullName,
    InvalidUsername,
    UserInactive,
    WeakPassword,
)
from usermgmt.domain.events import EventType, SecurityEvent
from usermgmt.domain.model import User
from usermgmt.domain.roles import ADMIN, InvalidRoleName, Permission, Role, RoleProtected, UnknownPermission
from usermgmt.domain.value_objects import Email, EmailTokenPurpose, FullName, PlainPassword, UserId, Username, canonical

# What every administrator's use case can raise before it starts.
GATE_ERRORS: tuple[type[DomainError], ...] = (InsufficientPermission, RateLimited, ServiceUnavailable)


class AdminGate:
    """The permission check of every administrator's use case, and their rate limit per actor."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def authorize(self, actor: Actor, permission: Permission) -> None:
        """Raises: InsufficientPermission (naming ``permission``), RateLimited."""
        if permission not in actor.permissions:
            raise InsufficientPermission(permission.value)
        if actor.user_id is not None:  # the operator at the command line is not throttled
            await self._guard.hit_per_user(RateRule.ADMIN_REQUESTS_PER_ACTOR, actor.user_id, actor.client)


def admin_event(
    kind: EventType, actor: Actor, *, at: datetime, user_id: UserId | None = None, **details: Any
) -> SecurityEvent:
    """An administrator's action: the actor named (``actor_id``), or ``by: operator`` for the command line."""
    if actor.user_id is None:
        details = {"by": "operator", **details}
    return security_event(kind, at=at, client=actor.client, user_id=user_id, actor_id=actor.user_id, **details)


async def target_user(uow: UnitOfWork, user_id: UserId, *, for_update: bool = False) -> User:
    """Raises: UserNotFound."""
    user = await uow.users.get(user_id, for_update=for_update)
    if user is None:
        raise UserNotFound()
    return user


async def ensure_admin_remains(uow: UnitOfWork, user: User) -> None:
    """Inside the unit of work that would take ``admin`` from ``user`` (or disable or delete them): refuse when
    ``user`` is the last active account holding it. Locks the ``admin`` role first. Raises: LastAdmin."""
    await uow.roles.get(ADMIN, for_update=True)
    if not user.is_active or ADMIN not in await uow.roles.roles_of(user.id):
        return
    if await uow.roles.active_holders(ADMIN) <= 1:
        raise LastAdmin()


# --- the user list and one user ----------------------------------------------------------------------------------


def encode_cursor(key: UserPageKey) -> str:
    created_at, user_id = key
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{user_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> UserPageKey:
    """Raises: InvalidCursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, user_id = text.split("|")
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("naive")
        return moment, UserId(UUID(user_id))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor() from None


class ListUsersHandler:
    """Users newest first, a page at a time: by email or username prefix, role and status."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, InvalidCursor)
    MAX_LIMIT = 100

    def __init__(self, uow: UnitOfWork, gate: AdminGate) -> None:
        self._uow, self._gate = uow, gate

    async def __call__(self, cmd: commands.ListUsers) -> UserPage:
        await self._gate.authorize(cmd.actor, Permission.USERS_READ)
        limit = max(1, min(cmd.limit, self.MAX_LIMIT))
        after = decode_cursor(cmd.cursor) if cmd.cursor else None
        query = canonical(cmd.query.strip()) if cmd.query and cmd.query.strip() else None
        async with self._uow:
            found = await self._uow.roles.search_users(
                query=query, role=cmd.role, active=cmd.active, limit=limit + 1, after=after
            )
            page = list(found[:limit])
            held = await self._uow.roles.roles_of_many(u.id for u in page)
        items = [AdminUserView(user=u, roles=held.get(u.id, ())) for u in page]
        last = page[-1] if len(found) > limit else None
        return UserPage(items=items, next_cursor=encode_cursor((last.created_at, last.id)) if last else None)


class GetUserHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)

    def __init__(self, uow: UnitOfWork, gate: AdminGate) -> None:
        self._uow, self._gate = uow, gate

    async def __call__(self, cmd: commands.TargetUser) -> AdminUserView:
        await self._gate.authorize(cmd.actor, Permission.USERS_READ)
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id)
            return await user_view(self._uow, user)


async def user_view(uow: UnitOfWork, user: User) -> AdminUserView:
    """``user`` with their roles, last sign-in and second-factor status, inside an open unit of work."""
    return AdminUserView(
        user=user,
        roles=await uow.roles.roles_of(user.id),
        last_sign_in_at=await uow.events.last_at(user.id, EventType.LOGIN_SUCCEEDED),
        mfa=await mfa_status(uow, user.id),
    )


class AdministerUserHandler:
    """Change a user's username, full name, address (set as verified: the administrator vouches for it; the old
    address is told) or the address's verified flag, also of a disabled account."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        *GATE_ERRORS,
        UserNotFound,
        InvalidUsername,
        InvalidFullName,
        InvalidEmail,
        EmailTaken,
        UsernameTaken,
        ConcurrentUpdate,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate, postman: Postman) -> None:
        self._uow, self._clock, self._gate, self._postman = uow, clock, gate, postman

    async def __call__(self, cmd: commands.AdministerUser) -> AdminUserView:
        await self._gate.authorize(cmd.actor, Permission.USERS_WRITE)
        username = Username(cmd.username) if cmd.username is not None else None
        full_name = FullName(cmd.full_name) if cmd.full_name is not None else None
        email = Email(cmd.email) if cmd.email is not None else None
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            changed, old = user.administer(
                now=now,
                username=username,
                full_name=full_name,
                clear_username="username" in cmd.clear,
                clear_full_name="full_name" in cmd.clear,
                email=email,
                email_verified=cmd.email_verified,
            )
            if changed:
                await self._uow.users.update(user)  # the unique constraints decide a race: EmailTaken, UsernameTaken
                details: dict[str, Any] = {"fields": changed}
                if old is not None:
                    await self._uow.email_tokens.delete_for_user(user.id)  # links to the old or a pending address
                    await self._postman.send(
                        self._uow,
                        to=old,
                        template=Template.EMAIL_CHANGED,
                        now=now,
                        user_id=user.id,
                        new_email=user.email.value,
                        **notice_context(ClientInfo(), now),  # the administrator's address is not the owner's business
                    )
                    details |= {"old_email": old.value, "new_email": user.email.value}
                await self._uow.record(
                    admin_event(EventType.PROFILE_UPDATED, cmd.actor, at=now, user_id=user.id, **details)
                )
            view = await user_view(self._uow, user)
            await self._uow.commit()
        return view


# --- disabling, deleting, sessions -------------------------------------------------------------------------------


class DisableUserHandler:
    """Disable sign-in and end every session at once: the account's access tokens stop working at their next use."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound, LastAdmin)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.TargetUser) -> None:
        await self._gate.authorize(cmd.actor, Permission.USERS_DISABLE)
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            await ensure_admin_remains(self._uow, user)
            if user.deactivate(now=now):
                await self._uow.users.update(user)
            ended = await self._uow.sessions.delete_for_user(user.id)
            await self._uow.mfa.delete_challenges_for_user(user.id)
            await self._uow.record(
                admin_event(EventType.ACCOUNT_DISABLED, cmd.actor, at=now, user_id=user.id, sessions_ended=ended)
            )
            await self._uow.commit()


class EnableUserHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.TargetUser) -> None:
        await self._gate.authorize(cmd.actor, Permission.USERS_DISABLE)
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            if user.reactivate(now=now):
                await self._uow.users.update(user)
            await self._uow.record(admin_event(EventType.ACCOUNT_ENABLED, cmd.actor, at=now, user_id=user.id))
            await self._uow.commit()


class DeleteUserHandler:
    """Erase an account as its owner's deletion does (the same receipt, the same notice); the admin trail keeps
    an anonymous ``account_deleted`` mark naming the administrator."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound, LastAdmin)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate, postman: Postman) -> None:
        self._uow, self._clock, self._gate, self._postman = uow, clock, gate, postman

    async def __call__(self, cmd: commands.TargetUser) -> DeletionReceipt:
        await self._gate.authorize(cmd.actor, Permission.USERS_DELETE)
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            await ensure_admin_remains(self._uow, user)
            counts = await self._uow.users.erase(user.id)
            await self._uow.record(
                admin_event(
                    EventType.ACCOUNT_DELETED,
                    cmd.actor,
                    at=now,
                    user_id=user.id,
                    lag_seconds=erasure_lag_seconds(user, now),
                )
            )
            await self._postman.send(
                self._uow,
                to=user.email,
                template=Template.ACCOUNT_DELETED,
                now=now,
                user_id=None,
                deleted_at=now.isoformat(),
                **notice_context(ClientInfo(), now),
            )
            await self._uow.commit()
        return DeletionReceipt(
            user_id=user.id, deleted_at=now, erased=tuple(Erased(what=w, count=c) for w, c in counts.items())
        )


class ListUserSessionsHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.TargetUser) -> list[SessionView]:
        await self._gate.authorize(cmd.actor, Permission.USERS_READ)
        now = self._clock.now()
        async with self._uow:
            await target_user(self._uow, cmd.user_id)
            sessions = await self._uow.sessions.list_for_user(cmd.user_id)
        return [SessionView(session=s, current=False) for s in sessions if not s.is_expired(now)]


class RevokeUserSessionsHandler:
    """Sign the user out everywhere: every session ends, and with it every refresh and access token."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.TargetUser) -> int:
        await self._gate.authorize(cmd.actor, Permission.SESSIONS_REVOKE)
        now = self._clock.now()
        async with self._uow:
            await target_user(self._uow, cmd.user_id)
            ended = await self._uow.sessions.delete_for_user(cmd.user_id)
            await self._uow.mfa.delete_challenges_for_user(cmd.user_id)
            await self._uow.record(
                admin_event(EventType.SESSIONS_REVOKED, cmd.actor, at=now, user_id=cmd.user_id, sessions_ended=ended)
            )
            await self._uow.commit()
        return ended


class ListUserEventsHandler:
    """A user's security history as the user sees it, but with the internal details (``EventPage.internal``)."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)
    MAX_LIMIT = 100

    def __init__(self, uow: UnitOfWork, gate: AdminGate) -> None:
        self._uow, self._gate = uow, gate

    async def __call__(self, cmd: commands.ListUserEvents) -> EventPage:
        await self._gate.authorize(cmd.actor, Permission.EVENTS_READ)
        limit = max(1, min(cmd.limit, self.MAX_LIMIT))
        async with self._uow:
            await target_user(self._uow, cmd.user_id)
            events = await self._uow.events.list_for_user(cmd.user_id, limit=limit + 1, before=cmd.before)
        page = list(events[:limit])
        return EventPage(items=page, next_before=page[-1].id if len(events) > limit else None)


class ListAuditTrailHandler:
    """Every account's events, administrators' actions included, newest first, narrowed by type, actor, user."""

    raises: ClassVar[tuple[type[DomainError], ...]] = GATE_ERRORS
    MAX_LIMIT = 100

    def __init__(self, uow: UnitOfWork, gate: AdminGate) -> None:
        self._uow, self._gate = uow, gate

    async def __call__(self, cmd: commands.ListAuditTrail) -> EventPage:
        await self._gate.authorize(cmd.actor, Permission.EVENTS_READ)
        limit = max(1, min(cmd.limit, self.MAX_LIMIT))
        async with self._uow:
            events = await self._uow.events.list_all(
                limit=limit + 1,
                before=cmd.before,
                type=cmd.type,
                actor_id=cmd.actor_id,
                user_id=cmd.user_id,
            )
        page = list(events[:limit])
        return EventPage(items=page, next_before=page[-1].id if len(events) > limit else None)


# --- second factor and password, on the owner's behalf -----------------------------------------------------------


class ResetUserMfaHandler:
    """Turn the user's second factor off (a lost phone and no recovery code left): TOTP, recovery codes and open
    sign-in steps go; the owner is told, and signs in with the password alone until they enrol again."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate, postman: Postman) -> None:
        self._uow, self._clock, self._gate, self._postman = uow, clock, gate, postman

    async def __call__(self, cmd: commands.TargetUser) -> None:
        await self._gate.authorize(cmd.actor, Permission.USERS_WRITE)
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            had = await self._uow.mfa.delete_totp(user.id)
            await self._uow.mfa.delete_recovery_codes(user.id)
            await self._uow.mfa.delete_challenges_for_user(user.id)
            await self._uow.record(
                admin_event(EventType.MFA_DISABLED, cmd.actor, at=now, user_id=user.id, method="totp", reset=True)
            )
            if had:
                await self._postman.send(
                    self._uow,
                    to=user.email,
                    template=Template.MFA_DISABLED,
                    now=now,
                    user_id=user.id,
                    **notice_context(ClientInfo(), now),
                )
            await self._uow.commit()


class SendPasswordResetHandler:
    """Send the user the password-reset email (as ``POST /auth/password/forgot`` would), for an active account."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, UserNotFound, UserInactive)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate, postman: Postman) -> None:
        self._uow, self._clock, self._gate, self._postman = uow, clock, gate, postman

    async def __call__(self, cmd: commands.TargetUser) -> None:
        await self._gate.authorize(cmd.actor, Permission.USERS_WRITE)
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id)
            user.ensure_active()  # a disabled account's reset link would not work
            await self._postman.send_link(
                self._uow,
                user_id=user.id,
                to=user.email,
                purpose=EmailTokenPurpose.RESET,
                template=Template.RESET_PASSWORD,
                now=now,
            )
            await self._uow.record(admin_event(EventType.PASSWORD_RESET_REQUESTED, cmd.actor, at=now, user_id=user.id))
            await self._uow.commit()


# --- roles -------------------------------------------------------------------------------------------------------


class SetUserRolesHandler:
    """Make ``roles`` the user's roles (unknown names: 422 ``unknown_role``); the last administrator keeps
    ``admin``. The user's next request sees the change; their access tokens' ``roles`` claim at the next refresh."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (
        *GATE_ERRORS,
        UserNotFound,
        UnknownRole,
        LastAdmin,
        ConcurrentUpdate,
    )

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.SetUserRoles) -> tuple[str, ...]:
        await self._gate.authorize(cmd.actor, Permission.ROLES_MANAGE)
        wanted = tuple(sorted(set(cmd.roles)))
        now = self._clock.now()
        async with self._uow:
            user = await target_user(self._uow, cmd.user_id, for_update=True)
            known = {role.name for role in await self._uow.roles.list()}
            unknown = [name for name in wanted if name not in known]
            if unknown:
                raise UnknownRole(f"Unknown role {unknown[0][:64]!r}; create it first with POST /api/v1/admin/roles.")
            held = await self._uow.roles.roles_of(user.id)
            if ADMIN in held and ADMIN not in wanted:
                await ensure_admin_remains(self._uow, user)
            if set(held) != set(wanted):
                await self._uow.roles.set_roles(user.id, wanted, now)
                await self._uow.record(
                    admin_event(
                        EventType.ROLES_CHANGED,
                        cmd.actor,
                        at=now,
                        user_id=user.id,
                        roles=list(wanted),
                        added=sorted(set(wanted) - set(held)),
                        removed=sorted(set(held) - set(wanted)),
                    )
                )
            await self._uow.commit()
        return wanted


class ListRolesHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = GATE_ERRORS

    def __init__(self, uow: UnitOfWork, gate: AdminGate) -> None:
        self._uow, self._gate = uow, gate

    async def __call__(self, cmd: commands.ListRoles) -> list[Role]:
        await self._gate.authorize(cmd.actor, Permission.ROLES_MANAGE)
        async with self._uow:
            return list(await self._uow.roles.list())


class CreateRoleHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, InvalidRoleName, UnknownPermission, RoleExists)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.CreateRole) -> Role:
        await self._gate.authorize(cmd.actor, Permission.ROLES_MANAGE)
        now = self._clock.now()
        role = Role.create(name=cmd.name, permissions=cmd.permissions, description=cmd.description, now=now)
        async with self._uow:
            await self._uow.roles.add(role)
            await self._uow.record(
                admin_event(
                    EventType.ROLE_CREATED, cmd.actor, at=now, role=role.name, permissions=sorted(role.permissions)
                )
            )
            await self._uow.commit()
        return role


class UpdateRoleHandler:
    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, RoleNotFound, RoleProtected, UnknownPermission)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.UpdateRole) -> Role:
        await self._gate.authorize(cmd.actor, Permission.ROLES_MANAGE)
        now = self._clock.now()
        async with self._uow:
            role = await self._uow.roles.get(cmd.name, for_update=True)
            if role is None:
                raise RoleNotFound()
            if role.change(now=now, permissions=cmd.permissions, description=cmd.description):
                await self._uow.roles.update(role)
                await self._uow.record(
                    admin_event(
                        EventType.ROLE_UPDATED, cmd.actor, at=now, role=role.name, permissions=sorted(role.permissions)
                    )
                )
            await self._uow.commit()
        return role


class DeleteRoleHandler:
    """Delete a custom role; whoever held it loses what it granted at their next request."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (*GATE_ERRORS, RoleNotFound, RoleProtected)

    def __init__(self, uow: UnitOfWork, clock: Clock, gate: AdminGate) -> None:
        self._uow, self._clock, self._gate = uow, clock, gate

    async def __call__(self, cmd: commands.DeleteRole) -> None:
        await self._gate.authorize(cmd.actor, Permission.ROLES_MANAGE)
        now = self._clock.now()
        async with self._uow:
            role = await self._uow.roles.get(cmd.name, for_update=True)
            if role is None:
                raise RoleNotFound()
            role.ensure_changeable()
            await self._uow.roles.delete(role.name)
            await self._uow.record(admin_event(EventType.ROLE_DELETED, cmd.actor, at=now, role=role.name))
            await self._uow.commit()


# --- the command line --------------------------------------------------------------------------------------------


class PasswordRequired(Exception):
    """``create-admin`` for an address without an account: the new account needs a password."""


class BootstrapAdminHandler:
    """``usermgmt create-admin EMAIL``: grant ``admin`` to the account with this address, or create it first (its
    address counted as verified: the operator vouches for it) with a password that passes the password policy.
    Returns the account and whether it was created."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmail, WeakPassword, EmailTaken, ServiceUnavailable)

    def __init__(
        self, uow: UnitOfWork, hasher: PasswordHasher, screen: PasswordScreen, clock: Clock, ids: IdGenerator
    ) -> None:
        self._uow, self._hasher, self._screen, self._clock, self._ids = uow, hasher, screen, clock, ids

    async def __call__(self, cmd: commands.BootstrapAdmin) -> tuple[User, bool]:
        """Raises: PasswordRequired (no account has the address, and no password was given), and ``raises``."""
        email = Email(cmd.email)
        actor = Actor.operator()
        async with self._uow:
            user = await self._uow.users.get_by_email(email)
        created = user is None
        if user is None:
            if cmd.password is None:
                raise PasswordRequired()
            password = PlainPassword(cmd.password)
            await self._screen.check(password, email=email, username=None, full_name=None)
            password_hash = await self._hasher.hash(password)
            now = self._clock.now()
            user = User.register(id=self._ids.new_user_id(), email=email, password_hash=password_hash, now=now)
            user.email_verified = True
            async with self._uow:
                await self._uow.users.add(user)
                await self._uow.record(admin_event(EventType.REGISTERED, actor, at=now, user_id=user.id))
                await self._uow.commit()
        await ChangeRoleByEmailHandler(self._uow, self._clock)(
            commands.ChangeRoleByEmail(email=user.email.value, role=ADMIN, grant=True)
        )
        return user, created


class ChangeRoleByEmailHandler:
    """``usermgmt roles grant|revoke EMAIL ROLE``, as the operator. Returns the account's roles after it."""

    raises: ClassVar[tuple[type[DomainError], ...]] = (InvalidEmail, UserNotFound, UnknownRole, LastAdmin)

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    async def __call__(self, cmd: commands.ChangeRoleByEmail) -> tuple[str, ...]:
        email = Email(cmd.email)
        now = self._clock.now()
        actor = Actor.operator()
        async with self._uow:
            user = await self._uow.users.get_by_email(email)
            if user is None:
                raise UserNotFound(f"No account has the address {email.value}.")
            user = await target_user(self._uow, user.id, for_update=True)
            if cmd.role == ADMIN and await self._uow.roles.get(ADMIN) is None:
                await self._uow.roles.add(Role.admin(now=now))  # the row migration 0006 made, deleted by hand since
            if await self._uow.roles.get(cmd.role) is None:
                raise UnknownRole(f"No role is named {cmd.role[:64]!r}.")
            held = await self._uow.roles.roles_of(user.id)
            wanted = tuple(sorted({*held, cmd.role} if cmd.grant else set(held) - {cmd.role}))
            if cmd.role == ADMIN and not cmd.grant:
                await ensure_admin_remains(self._uow, user)
            if wanted != held:
                await self._uow.roles.set_roles(user.id, wanted, now)
                await self._uow.record(
                    admin_event(
                        EventType.ROLES_CHANGED,
                        actor,
                        at=now,
                        user_id=user.id,
                        roles=list(wanted),
                        added=[cmd.role] if cmd.grant else [],
                        removed=[] if cmd.grant else [cmd.role],
                    )
                )
            await self._uow.commit()
        return wanted
