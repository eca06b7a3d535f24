"""Small steps several use cases share."""

from __future__ import annotations

from usermgmt.application.errors import InvalidAccessToken, InvalidPassword
from usermgmt.application.ports import PasswordHasher, UnitOfWork
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import PlainPassword, UserId


async def load_user(uow: UnitOfWork, user_id: UserId) -> User:
    """The caller's user inside an open unit of work; a vanished user makes the caller's token worthless."""
    user = await uow.users.get(user_id)
    if user is None:
        raise InvalidAccessToken()
    return user


async def confirm_password(uow: UnitOfWork, hasher: PasswordHasher, user_id: UserId, password: str) -> User:
    """Re-authenticate the caller with their current password. The hash check runs with no transaction open.

    Raises: InvalidPassword, InvalidAccessToken.
    """
    async with uow:
        user = await load_user(uow, user_id)
    matches, _ = await hasher.verify_and_update(PlainPassword(password), user.password_hash)
    if not matches:
        raise InvalidPassword()
    return user
