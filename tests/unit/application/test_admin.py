"""Administration on the in-memory fakes: the permission each use case asks for, the last-admin invariant, roles
read fresh by the principal and named in tokens, the audit records, the user search and the command line's use
cases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest

from tests.unit.application._support import (
    ALICE_EMAIL,
    ALICE_PASSWORD,
    BOB_EMAIL,
    RecordingUnitOfWork,
    SignIn,
    client,
    login_cmd,
    make_guard,
)
from usermgmt.adapters.memory import (
    FakeAccessTokenService,
    FakePasswordHasher,
    FrozenClock,
    SequentialIdGenerator,
)
from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateLimitPolicy, RateRule
from usermgmt.application.commands import Actor
from usermgmt.application.email import Postman
from usermgmt.application.errors import (
    EmailTaken,
    InsufficientPermission,
    InvalidAccessToken,
    InvalidCursor,
    LastAdmin,
    RateLimited,
    RoleExists,
    RoleNotFound,
    UnknownRole,
    UserNotFound,
)
from usermgmt.application.handlers import admin
from usermgmt.application.handlers.authenticate import AuthenticateHandler
from usermgmt.application.handlers.delete_account import DeleteAccountHandler
from usermgmt.application.handlers.refresh_session import RefreshSessionHandler
from usermgmt.application.ports import Rate
from usermgmt.application.screening import PasswordScreen
from usermgmt.domain.errors import UserInactive, WeakPassword
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.roles import ADMIN, ALL_PERMISSIONS, InvalidRoleName, Permission, RoleProtected, UnknownPermission
from usermgmt.domain.value_objects import Email, UserId


class Admin:
    """Every administrator's use case wired to the fakes, and the actors that call them."""

    def __init__(self, uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman) -> None:
        gate = admin.AdminGate(guard)
        self.uow, self.clock = uow, clock
        self.list_users = admin.ListUsersHandler(uow, gate)
        self.get_user = admin.GetUserHandler(uow, gate)
        self.update_user = admin.AdministerUserHandler(uow, clock, gate, postman)
        self.disable = admin.DisableUserHandler(uow, clock, gate)
        self.enable = admin.EnableUserHandler(uow, clock, gate)
        self.delete = admin.DeleteUserHandler(uow, clock, gate, postman)
        self.sessions = admin.ListUserSessionsHandler(uow, clock, gate)
        self.revoke_sessions = admin.RevokeUserSessionsHandler(uow, clock, gate)
        self.events = admin.ListUserEventsHandler(uow, gate)
        self.set_roles = admin.SetUserRolesHandler(uow, clock, gate)
        self.reset_mfa = admin.ResetUserMfaHandler(uow, clock, gate, postman)
        self.password_reset = admin.SendPasswordResetHandler(uow, clock, gate, postman)
        self.list_roles = admin.ListRolesHandler(uow, gate)
        self.create_role = admin.CreateRoleHandler(uow, clock, gate)
        self.update_role = admin.UpdateRoleHandler(uow, clock, gate)
        self.delete_role = admin.DeleteRoleHandler(uow, clock, gate)
        self.trail = admin.ListAuditTrailHandler(uow, gate)
        self.change_role = admin.ChangeRoleByEmailHandler(uow, clock)

    async def grant(self, user: User, *roles: str) -> None:
        await self.change_role_many(user, roles)

    async def change_role_many(self, user: User, roles: tuple[str, ...]) -> None:
        for role in roles:
            await self.change_role(commands.ChangeRoleByEmail(email=user.email.value, role=role, grant=True))

    def actor(self, user: User, *permissions: Permission) -> Actor:
        return Actor(user_id=user.id, permissions=frozenset(permissions), client=client())


@pytest.fixture
def adm(uow: RecordingUnitOfWork, clock: FrozenClock, guard: Guard, postman: Postman) -> Admin:
    return Admin(uow, clock, guard, postman)


def everything(user: User) -> Actor:
    return Actor(user_id=user.id, permissions=ALL_PERMISSIONS, client=client())


# --- the permission each use case asks for ----------------------------------------------------------------------

Call = Callable[[Admin, Actor, User], Awaitable[Any]]

CALLS: list[tuple[str, Permission, Call]] = [
    ("list users", Permission.USERS_READ, lambda a, actor, u: a.list_users(commands.ListUsers(actor=actor))),
    ("get user", Permission.USERS_READ, lambda a, actor, u: a.get_user(commands.TargetUser(actor=actor, user_id=u.id))),
    (
        "update user",
        Permission.USERS_WRITE,
        lambda a, actor, u: a.update_user(commands.AdministerUser(actor=actor, user_id=u.id, full_name="X")),
    ),
    (
        "disable",
        Permission.USERS_DISABLE,
        lambda a, actor, u: a.disable(commands.TargetUser(actor=actor, user_id=u.id)),
    ),
    ("enable", Permission.USERS_DISABLE, lambda a, actor, u: a.enable(commands.TargetUser(actor=actor, user_id=u.id))),
    ("delete", Permission.USERS_DELETE, lambda a, actor, u: a.delete(commands.TargetUser(actor=actor, user_id=u.id))),
    ("sessions", Permission.USERS_READ, lambda a, actor, u: a.sessions(commands.TargetUser(actor=actor, user_id=u.id))),
    (
        "revoke sessions",
        Permission.SESSIONS_REVOKE,
        lambda a, actor, u: a.revoke_sessions(commands.TargetUser(actor=actor, user_id=u.id)),
    ),
    (
        "events",
        Permission.EVENTS_READ,
        lambda a, actor, u: a.events(commands.ListUserEvents(actor=actor, user_id=u.id)),
    ),
    (
        "set roles",
        Permission.ROLES_MANAGE,
        lambda a, actor, u: a.set_roles(commands.SetUserRoles(actor=actor, user_id=u.id, roles=())),
    ),
    (
        "reset mfa",
        Permission.USERS_WRITE,
        lambda a, actor, u: a.reset_mfa(commands.TargetUser(actor=actor, user_id=u.id)),
    ),
    (
        "password reset",
        Permission.USERS_WRITE,
        lambda a, actor, u: a.password_reset(commands.TargetUser(actor=actor, user_id=u.id)),
    ),
    ("list roles", Permission.ROLES_MANAGE, lambda a, actor, u: a.list_roles(commands.ListRoles(actor=actor))),
    (
        "create role",
        Permission.ROLES_MANAGE,
        lambda a, actor, u: a.create_role(commands.CreateRole(actor=actor, name="support", permissions=())),
    ),
    (
        "update role",
        Permission.ROLES_MANAGE,
        lambda a, actor, u: a.update_role(commands.UpdateRole(actor=actor, name="support", description="d")),
    ),
    (
        "delete role",
        Permission.ROLES_MANAGE,
        lambda a, actor, u: a.delete_role(commands.DeleteRole(actor=actor, name="x")),
    ),
    ("audit trail", Permission.EVENTS_READ, lambda a, actor, u: a.trail(commands.ListAuditTrail(actor=actor))),
]


@pytest.mark.parametrize(("name", "permission", "call"), CALLS, ids=[c[0] for c in CALLS])
async def test_each_use_case_refuses_an_actor_without_its_permission_and_changes_nothing(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork, name: str, permission: Permission, call: Call
) -> None:
    others = frozenset(ALL_PERMISSIONS - {permission})
    before = len(uow.recorded)

    with pytest.raises(InsufficientPermission) as raised:
        await call(adm, Actor(user_id=alice.id, permissions=others, client=client()), bob)

    assert raised.value.members == {"permission": permission.value}
    assert permission.value in raised.value.detail
    assert len(uow.recorded) == before
    assert bob.id in uow.store.users and uow.store.users[bob.id].is_active


@pytest.mark.parametrize(("name", "permission", "call"), CALLS, ids=[c[0] for c in CALLS])
async def test_the_permission_alone_is_enough(
    adm: Admin, alice: User, bob: User, name: str, permission: Permission, call: Call
) -> None:
    if name == "update role":  # it needs the role to exist
        await adm.create_role(commands.CreateRole(actor=everything(alice), name="support", permissions=()))
    if name == "delete role":  # past the gate: "x" is no role
        with pytest.raises(RoleNotFound):
            await call(adm, adm.actor(alice, permission), bob)
    else:
        await call(adm, adm.actor(alice, permission), bob)


async def test_a_support_role_reads_and_signs_out_but_cannot_disable(
    adm: Admin,
    alice: User,
    bob: User,
    login: SignIn,
    authenticate: AuthenticateHandler,
    access_tokens: FakeAccessTokenService,
) -> None:
    await adm.grant(alice, ADMIN)
    await adm.create_role(
        commands.CreateRole(
            actor=everything(alice),
            name="support",
            permissions=("users:read", "events:read", "sessions:revoke"),
            description="Helpdesk",
        )
    )
    carol = bob  # the support agent
    await adm.grant(carol, "support")
    tokens = await login(login_cmd(BOB_EMAIL, "bob's long password"))
    principal = await authenticate(commands.Authenticate(access_token=tokens.access_token))
    support = Actor(user_id=carol.id, permissions=principal.permissions, client=client())

    assert principal.permissions == {Permission.USERS_READ, Permission.EVENTS_READ, Permission.SESSIONS_REVOKE}
    assert access_tokens.roles == ("support",)
    page = await adm.list_users(commands.ListUsers(actor=support))
    assert {v.user.email.value for v in page.items} == {ALICE_EMAIL, BOB_EMAIL}
    with pytest.raises(InsufficientPermission):
        await adm.disable(commands.TargetUser(actor=support, user_id=alice.id))


# --- the principal and the tokens ----------------------------------------------------------------------------------


async def test_a_role_change_is_seen_at_the_next_request_and_named_in_the_next_tokens(
    adm: Admin,
    alice: User,
    bob: User,
    login: SignIn,
    authenticate: AuthenticateHandler,
    refresh: RefreshSessionHandler,
    access_tokens: FakeAccessTokenService,
) -> None:
    await adm.grant(alice, ADMIN)
    tokens = await login(login_cmd(BOB_EMAIL, "bob's long password"))
    assert access_tokens.roles == ()
    assert (await authenticate(commands.Authenticate(access_token=tokens.access_token))).permissions == frozenset()

    await adm.set_roles(commands.SetUserRoles(actor=everything(alice), user_id=bob.id, roles=(ADMIN,)))

    same_token = await authenticate(commands.Authenticate(access_token=tokens.access_token))
    assert same_token.permissions == ALL_PERMISSIONS  # the same token: the permissions are read, not carried
    await refresh(commands.RefreshSession(refresh_token=tokens.refresh_token, client=client()))
    assert access_tokens.roles == (ADMIN,)


async def test_deleting_a_role_takes_its_permissions_from_its_holders_at_once(
    adm: Admin, alice: User, bob: User, login: SignIn, authenticate: AuthenticateHandler
) -> None:
    root = everything(alice)
    await adm.create_role(commands.CreateRole(actor=root, name="support", permissions=("users:read",)))
    await adm.grant(bob, "support")
    tokens = await login(login_cmd(BOB_EMAIL, "bob's long password"))
    assert (await authenticate(commands.Authenticate(access_token=tokens.access_token))).permissions == {
        Permission.USERS_READ
    }

    await adm.update_role(commands.UpdateRole(actor=root, name="support", permissions=("events:read",)))
    assert (await authenticate(commands.Authenticate(access_token=tokens.access_token))).permissions == {
        Permission.EVENTS_READ
    }
    await adm.delete_role(commands.DeleteRole(actor=root, name="support"))

    assert (await authenticate(commands.Authenticate(access_token=tokens.access_token))).permissions == frozenset()
    assert adm.uow.store.user_roles.get(bob.id, {}) == {}


async def test_disabling_ends_every_session_and_refuses_the_tokens_at_once(
    adm: Admin, alice: User, bob: User, login: SignIn, authenticate: AuthenticateHandler, uow: RecordingUnitOfWork
) -> None:
    tokens = await login(login_cmd(BOB_EMAIL, "bob's long password"))

    await adm.disable(commands.TargetUser(actor=everything(alice), user_id=bob.id))

    with pytest.raises(InvalidAccessToken):
        await authenticate(commands.Authenticate(access_token=tokens.access_token))
    assert not any(s.user_id == bob.id for s in uow.store.sessions.values())
    assert not uow.store.users[bob.id].is_active
    event = uow.recorded[-1]
    assert (event.type, event.user_id, event.actor_id) == (EventType.ACCOUNT_DISABLED, bob.id, alice.id)
    assert event.details == {"sessions_ended": 1}
    assert event.public_details() == {"sessions_ended": 1, "by": "administrator"}  # the owner's view: unnamed

    await adm.enable(commands.TargetUser(actor=everything(alice), user_id=bob.id))
    assert uow.store.users[bob.id].is_active
    await login(login_cmd(BOB_EMAIL, "bob's long password"))  # signs in again


# --- the last administrator ----------------------------------------------------------------------------------------


async def test_the_last_admin_cannot_lose_the_role_be_disabled_or_be_deleted(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    await adm.grant(alice, ADMIN)
    me = everything(alice)

    with pytest.raises(LastAdmin):
        await adm.set_roles(commands.SetUserRoles(actor=me, user_id=alice.id, roles=()))
    with pytest.raises(LastAdmin):
        await adm.disable(commands.TargetUser(actor=me, user_id=alice.id))
    with pytest.raises(LastAdmin):
        await adm.delete(commands.TargetUser(actor=me, user_id=alice.id))
    with pytest.raises(LastAdmin):
        await adm.change_role(commands.ChangeRoleByEmail(email=ALICE_EMAIL, role=ADMIN, grant=False))

    assert uow.store.user_roles[alice.id].keys() == {ADMIN}
    assert alice.id in uow.store.users and uow.store.users[alice.id].is_active


async def test_the_last_admin_cannot_delete_their_own_account_either(
    adm: Admin, alice: User, delete_account: DeleteAccountHandler, uow: RecordingUnitOfWork
) -> None:
    await adm.grant(alice, ADMIN)

    with pytest.raises(LastAdmin):
        await delete_account(commands.DeleteAccount(user_id=alice.id, password=ALICE_PASSWORD, client=client()))

    assert alice.id in uow.store.users


async def test_with_a_second_active_admin_either_may_go_but_a_disabled_one_does_not_count(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    await adm.grant(alice, ADMIN)
    await adm.grant(bob, ADMIN)
    me = everything(alice)

    await adm.disable(commands.TargetUser(actor=me, user_id=bob.id))  # alice remains
    with pytest.raises(LastAdmin):  # bob is disabled: alice is the last active one
        await adm.set_roles(commands.SetUserRoles(actor=me, user_id=alice.id, roles=()))

    await adm.enable(commands.TargetUser(actor=me, user_id=bob.id))
    await adm.set_roles(commands.SetUserRoles(actor=me, user_id=alice.id, roles=()))
    assert uow.store.user_roles.get(alice.id, {}) == {}
    await adm.set_roles(commands.SetUserRoles(actor=me, user_id=bob.id, roles=(ADMIN,)))  # unchanged: allowed


# --- roles ---------------------------------------------------------------------------------------------------------


async def test_the_builtin_admin_role_is_protected_and_names_are_checked(adm: Admin, alice: User) -> None:
    me = everything(alice)
    roles = await adm.list_roles(commands.ListRoles(actor=me))
    assert [(r.name, r.permissions, r.is_builtin) for r in roles] == [(ADMIN, ALL_PERMISSIONS, True)]

    with pytest.raises(RoleProtected):
        await adm.update_role(commands.UpdateRole(actor=me, name=ADMIN, permissions=()))
    with pytest.raises(RoleProtected):
        await adm.delete_role(commands.DeleteRole(actor=me, name=ADMIN))
    with pytest.raises(RoleExists):
        await adm.create_role(commands.CreateRole(actor=me, name=ADMIN, permissions=()))
    with pytest.raises(UnknownPermission, match="'users:fly'"):
        await adm.create_role(commands.CreateRole(actor=me, name="pilot", permissions=("users:fly",)))
    with pytest.raises(InvalidRoleName):
        await adm.create_role(commands.CreateRole(actor=me, name="Bad Name", permissions=()))
    with pytest.raises(RoleNotFound):
        await adm.update_role(commands.UpdateRole(actor=me, name="nobody", description="x"))
    await adm.create_role(commands.CreateRole(actor=me, name="support", permissions=("users:read",)))
    with pytest.raises(RoleExists):
        await adm.create_role(commands.CreateRole(actor=me, name="support", permissions=()))


async def test_unknown_role_names_are_refused_whole(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    with pytest.raises(UnknownRole, match="'ghost'"):
        await adm.set_roles(commands.SetUserRoles(actor=everything(alice), user_id=bob.id, roles=(ADMIN, "ghost")))
    assert bob.id not in uow.store.user_roles
    with pytest.raises(UserNotFound):
        await adm.set_roles(commands.SetUserRoles(actor=everything(alice), user_id=UserId(UUID(int=7)), roles=()))


async def test_role_changes_are_recorded_in_the_target_history_and_the_trail(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    me = everything(alice)
    await adm.create_role(commands.CreateRole(actor=me, name="support", permissions=("users:read",)))
    await adm.set_roles(commands.SetUserRoles(actor=me, user_id=bob.id, roles=("support", "support")))

    history = await adm.events(commands.ListUserEvents(actor=me, user_id=bob.id))
    changed = history.items[0].event
    assert (changed.type, changed.actor_id) == (EventType.ROLES_CHANGED, alice.id)
    assert changed.details == {"roles": ["support"], "added": ["support"], "removed": []}
    trail = await adm.trail(commands.ListAuditTrail(actor=me, actor_id=alice.id))
    assert [s.event.type for s in trail.items] == [EventType.ROLES_CHANGED, EventType.ROLE_CREATED]
    created = trail.items[1].event
    assert (created.user_id, created.details) == (None, {"role": "support", "permissions": ["users:read"]})
    only = await adm.trail(commands.ListAuditTrail(actor=me, type=EventType.ROLE_CREATED))
    assert [s.event.type for s in only.items] == [EventType.ROLE_CREATED]


# --- one user ------------------------------------------------------------------------------------------------------


async def test_an_administrator_sets_an_address_as_verified_and_the_old_one_is_told(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    view = await adm.update_user(
        commands.AdministerUser(
            actor=everything(alice), user_id=bob.id, email="robert@example.com", clear=frozenset({"username"})
        )
    )

    assert (view.user.email.value, view.user.email_verified, view.user.username) == ("robert@example.com", True, None)
    notices = [row.message for row in uow.store.outbox if row.message.template == "email_changed"]
    assert [(m.to, m.context["new_email"], m.context["ip"]) for m in notices] == [
        (BOB_EMAIL, "robert@example.com", None)  # the administrator's IP is not shown to the owner
    ]
    event = uow.recorded[-1]
    assert event.type is EventType.PROFILE_UPDATED and event.actor_id == alice.id
    assert event.details["fields"] == ["username", "email", "email_verified"]
    with pytest.raises(EmailTaken):
        await adm.update_user(commands.AdministerUser(actor=everything(alice), user_id=bob.id, email=ALICE_EMAIL))
    unverified = await adm.update_user(
        commands.AdministerUser(actor=everything(alice), user_id=bob.id, email_verified=False)
    )
    assert unverified.user.email_verified is False


async def test_the_detail_view_has_roles_last_sign_in_and_mfa(
    adm: Admin, alice: User, bob: User, login: SignIn, clock: FrozenClock
) -> None:
    await adm.grant(bob, ADMIN)
    before = await adm.get_user(commands.TargetUser(actor=everything(alice), user_id=bob.id))
    assert (before.roles, before.last_sign_in_at) == ((ADMIN,), None)
    await login(login_cmd(BOB_EMAIL, "bob's long password"))

    view = await adm.get_user(commands.TargetUser(actor=everything(alice), user_id=bob.id))

    assert view.last_sign_in_at == clock.now()
    assert view.mfa is not None and not view.mfa.totp_enabled
    with pytest.raises(UserNotFound):
        await adm.get_user(commands.TargetUser(actor=everything(alice), user_id=UserId(UUID(int=9))))


async def test_an_administrator_deletion_gives_the_receipt_and_keeps_an_anonymous_mark_naming_the_actor(
    adm: Admin, alice: User, bob: User, uow: RecordingUnitOfWork
) -> None:
    await adm.grant(alice, ADMIN)
    await adm.grant(bob, ADMIN)
    receipt = await adm.delete(commands.TargetUser(actor=everything(alice), user_id=bob.id))

    assert receipt.user_id == bob.id
    assert {e.what: e.count for e in receipt.erased}["user_roles"] == 1
    assert bob.id not in uow.store.users
    kept = [s.event for s in uow.store.events if s.event.type is EventType.ACCOUNT_DELETED]
    assert [(e.user_id, e.actor_id, dict(e.details)) for e in kept] == [(None, alice.id, {"lag_seconds": 0})]
    assert [row.message.to for row in uow.store.outbox if row.message.template == "account_deleted"] == [BOB_EMAIL]


async def test_password_reset_for_a_disabled_account_is_refused(adm: Admin, alice: User, bob: User) -> None:
    await adm.password_reset(commands.TargetUser(actor=everything(alice), user_id=bob.id))
    assert [row.message.template for row in adm.uow.store.outbox][-1] == "reset_password"

    await adm.disable(commands.TargetUser(actor=everything(alice), user_id=bob.id))
    with pytest.raises(UserInactive):
        await adm.password_reset(commands.TargetUser(actor=everything(alice), user_id=bob.id))


# --- the user search -----------------------------------------------------------------------------------------------


async def test_the_user_list_pages_newest_first_and_filters(
    adm: Admin, alice: User, uow: RecordingUnitOfWork, clock: FrozenClock, hasher: FakePasswordHasher
) -> None:
    for n in range(25):
        clock.advance(timedelta(seconds=1))
        user = User.register(
            id=UserId(UUID(int=1000 + n)),
            email=Email(f"user{n:02}@example.com"),
            password_hash=hasher.hash_sync("x"),
            now=clock.now(),
        )
        async with uow:
            await uow.users.add(user)
            await uow.commit()
    me = everything(alice)

    seen: list[str] = []
    cursor = None
    while True:
        page = await adm.list_users(commands.ListUsers(actor=me, limit=10, cursor=cursor))
        seen += [v.user.email.value for v in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"user{n:02}@example.com" for n in reversed(range(25))] + [ALICE_EMAIL]

    prefix = await adm.list_users(commands.ListUsers(actor=me, query="USER1"))
    assert [v.user.email.value for v in prefix.items] == [f"user{n}@example.com" for n in range(19, 9, -1)]
    assert [v.user.email.value for v in (await adm.list_users(commands.ListUsers(actor=me, query="alice"))).items] == [
        ALICE_EMAIL  # by username too
    ]
    await adm.grant(alice, ADMIN)
    admins = await adm.list_users(commands.ListUsers(actor=me, role=ADMIN))
    assert [(v.user.id, v.roles) for v in admins.items] == [(alice.id, (ADMIN,))]
    with pytest.raises(InvalidCursor):
        await adm.list_users(commands.ListUsers(actor=me, cursor="not-a-cursor"))


async def test_the_admin_routes_have_their_own_rate_limit_per_actor(
    uow: RecordingUnitOfWork, clock: FrozenClock, postman: Postman, alice: User, bob: User
) -> None:
    policy = RateLimitPolicy(rates={RateRule.ADMIN_REQUESTS_PER_ACTOR: Rate(3, timedelta(minutes=1))})
    limited = Admin(uow, clock, make_guard(uow, clock, policy), postman)
    for _ in range(3):
        await limited.list_roles(commands.ListRoles(actor=everything(alice)))

    with pytest.raises(RateLimited) as raised:
        await limited.list_users(commands.ListUsers(actor=everything(alice)))
    assert raised.value.rule == "admin_requests_per_actor"
    await limited.list_roles(commands.ListRoles(actor=everything(bob)))  # per actor
    await limited.list_roles(commands.ListRoles(actor=Actor.operator()))  # the command line is not throttled


# --- the command line's use cases ----------------------------------------------------------------------------------


@pytest.fixture
def bootstrap(
    uow: RecordingUnitOfWork,
    hasher: FakePasswordHasher,
    screen: PasswordScreen,
    clock: FrozenClock,
    ids: SequentialIdGenerator,
) -> admin.BootstrapAdminHandler:
    return admin.BootstrapAdminHandler(uow, hasher, screen, clock, ids)


async def test_create_admin_creates_a_verified_account_or_grants_an_existing_one(
    bootstrap: admin.BootstrapAdminHandler, alice: User, uow: RecordingUnitOfWork, login: SignIn
) -> None:
    with pytest.raises(admin.PasswordRequired):
        await bootstrap(commands.BootstrapAdmin(email="root@example.com"))
    with pytest.raises(WeakPassword):
        await bootstrap(commands.BootstrapAdmin(email="root@example.com", password="short"))
    assert len(uow.store.users) == 1

    root, created = await bootstrap(
        commands.BootstrapAdmin(email="root@example.com", password="a long admin passphrase")
    )
    existing, created_again = await bootstrap(commands.BootstrapAdmin(email="ALICE@example.com"))

    assert created and root.email_verified and uow.store.user_roles[root.id].keys() == {ADMIN}
    assert not created_again and existing.id == alice.id and uow.store.user_roles[alice.id].keys() == {ADMIN}
    await login(login_cmd("root@example.com", "a long admin passphrase"))
    by = [e.details.get("by") for e in uow.recorded if e.type is EventType.ROLES_CHANGED]
    assert by == ["operator", "operator"]


async def test_roles_grant_and_revoke_by_email(adm: Admin, alice: User, bob: User) -> None:
    with pytest.raises(UserNotFound):
        await adm.change_role(commands.ChangeRoleByEmail(email="nobody@example.com", role=ADMIN, grant=True))
    with pytest.raises(UnknownRole):
        await adm.change_role(commands.ChangeRoleByEmail(email=BOB_EMAIL, role="ghost", grant=True))
    await adm.grant(alice, ADMIN)
    await adm.grant(bob, ADMIN)

    assert await adm.change_role(commands.ChangeRoleByEmail(email=BOB_EMAIL, role=ADMIN, grant=False)) == ()
    assert await adm.change_role(commands.ChangeRoleByEmail(email=BOB_EMAIL, role=ADMIN, grant=False)) == ()
