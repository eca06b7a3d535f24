"""Roles and permissions: what an administrator may do. No I/O; the checks themselves live in the application.

Permissions are fixed strings the code checks. A role is a named set of them, stored; the built-in ``admin``
holds every permission and can be neither changed nor deleted, and the last active user holding it keeps it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Final, Self

from usermgmt.domain.errors import DomainError


class Permission(StrEnum):
    USERS_READ = "users:read"
    USERS_WRITE = "users:write"
    USERS_DISABLE = "users:disable"
    USERS_DELETE = "users:delete"
    SESSIONS_REVOKE = "sessions:revoke"
    EVENTS_READ = "events:read"
    ROLES_MANAGE = "roles:manage"


ADMIN: Final = "admin"
ALL_PERMISSIONS: Final = frozenset(Permission)


class InvalidRoleName(DomainError):
    code = "invalid_role_name"
    default_detail = (
        "A role name is 1 to 32 characters of lowercase letters, digits, '_' or '-', starting with a letter."
    )


class UnknownPermission(DomainError):
    code = "unknown_permission"
    default_detail = "Unknown permission."


class RoleProtected(DomainError):
    code = "role_protected"
    default_detail = "The built-in admin role cannot be changed or deleted."


_ROLE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def role_name(text: str) -> str:
    """``text`` as a role name. Raises: InvalidRoleName."""
    if not _ROLE_NAME.fullmatch(text):
        raise InvalidRoleName()
    return text


def permissions_from(names: Iterable[str]) -> frozenset[Permission]:
    """The permissions ``names`` name. Raises: UnknownPermission (naming the first unknown one)."""
    known = {p.value: p for p in Permission}
    result: set[Permission] = set()
    for name in names:
        permission = known.get(name)
        if permission is None:
            raise UnknownPermission(f"Unknown permission {name[:64]!r}; known: {', '.join(sorted(known))}.")
        result.add(permission)
    return frozenset(result)


def parse_granted(text: str | None) -> frozenset[Permission]:
    """The permissions in a stored, space-separated list (the principal read's); names no release knows (a
    permission since removed) are skipped, never guessed."""
    if not text:
        return frozenset()
    known = {p.value: p for p in Permission}
    return frozenset(known[name] for name in text.split() if name in known)


@dataclass(eq=False, kw_only=True)
class Role:
    name: str
    description: str = ""
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    created_at: datetime
    updated_at: datetime

    @classmethod
    def create(cls, *, name: str, permissions: Iterable[str], description: str, now: datetime) -> Self:
        """Raises: InvalidRoleName, UnknownPermission, RoleProtected (the name ``admin``: it exists already)."""
        return cls(
            name=role_name(name),
            description=description,
            permissions=permissions_from(permissions),
            created_at=now,
            updated_at=now,
        )

    @classmethod
    def admin(cls, *, now: datetime) -> Self:
        return cls(
            name=ADMIN, description="Every permission.", permissions=ALL_PERMISSIONS, created_at=now, updated_at=now
        )

    @property
    def is_builtin(self) -> bool:
        return self.name == ADMIN

    def ensure_changeable(self) -> None:
        """Raises: RoleProtected."""
        if self.is_builtin:
            raise RoleProtected()

    def change(
        self, *, now: datetime, permissions: Iterable[str] | None = None, description: str | None = None
    ) -> bool:
        """Raises: RoleProtected, UnknownPermission. Returns whether anything changed."""
        self.ensure_changeable()
        changed = False
        if permissions is not None:
            new = permissions_from(permissions)
            changed |= new != self.permissions
            self.permissions = new
        if description is not None and description != self.description:
            self.description, changed = description, True
        if changed:
            self.updated_at = now
        return changed

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Role) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)
