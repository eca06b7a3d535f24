"""Roles, who holds them, and the administrators' read models (the user search), over the unit of work's connection."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from usermgmt.adapters.sqlalchemy.repositories import execute_translated, user_from_row
from usermgmt.adapters.sqlalchemy.tables import roles, user_roles, users
from usermgmt.application.ports import UserPageKey
from usermgmt.domain.model import User
from usermgmt.domain.roles import ADMIN, ALL_PERMISSIONS, Role, parse_granted
from usermgmt.domain.value_objects import UserId


def role_from_row(row: Row[Any]) -> Role:
    granted = ALL_PERMISSIONS if row.name == ADMIN else parse_granted(row.permissions)
    return Role(
        name=row.name,
        description=row.description,
        permissions=granted,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _stored_permissions(role: Role) -> str:
    return " ".join(sorted(role.permissions))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SqlAlchemyRoleRepository:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def list(self) -> Sequence[Role]:
        rows = await self._connection.execute(select(roles).order_by(roles.c.name))
        return [role_from_row(row) for row in rows]

    async def get(self, name: str, *, for_update: bool = False) -> Role | None:
        statement = select(roles).where(roles.c.name == name)
        if for_update:
            if self._connection.dialect.name == "sqlite":  # no row locks: take the database's write lock now
                await self._connection.execute(update(roles).where(roles.c.name == name).values(name=roles.c.name))
            statement = statement.with_for_update()
        row = (await self._connection.execute(statement)).first()
        return role_from_row(row) if row is not None else None

    async def add(self, role: Role) -> None:
        """Raises: RoleExists (here, or at commit when a concurrent transaction added the name first)."""
        await execute_translated(
            self._connection,
            insert(roles).values(
                name=role.name,
                description=role.description,
                permissions=_stored_permissions(role),
                created_at=role.created_at,
                updated_at=role.updated_at,
            ),
        )

    async def update(self, role: Role) -> None:
        await self._connection.execute(
            update(roles)
            .where(roles.c.name == role.name)
            .values(description=role.description, permissions=_stored_permissions(role), updated_at=role.updated_at)
        )

    async def delete(self, name: str) -> bool:
        await self._connection.execute(delete(user_roles).where(user_roles.c.role_name == name))  # SQLite: no cascade
        result = await self._connection.execute(delete(roles).where(roles.c.name == name))
        return bool(result.rowcount)

    async def roles_of(self, user_id: UserId) -> tuple[str, ...]:
        return (await self.roles_of_many([user_id])).get(user_id, ())

    async def roles_of_many(self, user_ids: Iterable[UserId]) -> Mapping[UserId, tuple[str, ...]]:
        ids = list(user_ids)
        if not ids:
            return {}
        rows = await self._connection.execute(
            select(user_roles.c.user_id, user_roles.c.role_name)
            .where(user_roles.c.user_id.in_(ids))
            .order_by(user_roles.c.user_id, user_roles.c.role_name)
        )
        found: dict[UserId, list[str]] = {}
        for row in rows:
            found.setdefault(UserId(row.user_id), []).append(row.role_name)
        return {user_id: tuple(names) for user_id, names in found.items()}

    async def set_roles(self, user_id: UserId, names: Iterable[str], now: datetime) -> None:
        wanted = set(names)
        held = set(await self.roles_of(user_id))
        gone, new = held - wanted, wanted - held
        if gone:
            await self._connection.execute(
                delete(user_roles).where(user_roles.c.user_id == user_id, user_roles.c.role_name.in_(gone))
            )
        if new:
            await execute_translated(
                self._connection,
                insert(user_roles).values(
                    [{"user_id": user_id, "role_name": name, "granted_at": now} for name in sorted(new)]
                ),
            )

    async def active_holders(self, name: str) -> int:
        statement = (
            select(func.count())
            .select_from(user_roles.join(users, users.c.id == user_roles.c.user_id))
            .where(user_roles.c.role_name == name, users.c.is_active.is_(True))
        )
        return int((await self._connection.execute(statement)).scalar_one())

    async def search_users(
        self,
        *,
        query: str | None,
        role: str | None,
        active: bool | None,
        limit: int,
        after: UserPageKey | None,
    ) -> Sequence[User]:
        statement = select(users)
        if query:
            pattern = _escape_like(query) + "%"
            statement = statement.where(
                or_(
                    users.c.email_canonical.like(pattern, escape="\\"),
                    users.c.username_canonical.like(pattern, escape="\\"),
                )
            )
        if role is not None:
            statement = statement.where(
                exists().where(user_roles.c.user_id == users.c.id, user_roles.c.role_name == role)
            )
        if active is not None:
            statement = statement.where(users.c.is_active.is_(active))
        if after is not None:
            created_at, user_id = after
            statement = statement.where(
                or_(users.c.created_at < created_at, and_(users.c.created_at == created_at, users.c.id < user_id))
            )
        rows = await self._connection.execute(
            statement.order_by(users.c.created_at.desc(), users.c.id.desc()).limit(limit)
        )
        return [user_from_row(row) for row in rows]
