"""Small steps several use cases share."""

from __future__ import annotations

import unicodedata
from datetime import timedelta

from usermgmt.application.audit import security_event
from usermgmt.application.commands import ClientInfo
from usermgmt.application.errors import InvalidAccessToken, InvalidPassword, ReauthenticationRequired
from usermgmt.application.ports import Clock, PasswordHasher, UnitOfWork
from usermgmt.domain.errors import InvalidEmail, InvalidUsername
from usermgmt.domain.events import EventType
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email, PlainPassword, SessionId, UserId, Username, canonical


async def load_user(uow: UnitOfWork, user_id: UserId, *, for_update: bool = False) -> User:
    """The caller's user inside an open unit of work; a vanished user makes the caller's token worthless."""
    user = await uow.users.get(user_id, for_update=for_update)
    if user is None:
        raise InvalidAccessToken()
    return user


def parse_login(text: str) -> Email | Username | None:
    """What a login names, in the form accounts are found by: an email address (with ``@``) or a username, after
    NFKC normalisation (so full-width or compatibility spellings find the same account); None if it is neither."""
    normalized = unicodedata.normalize("NFKC", text).strip()
    try:
        return Email(normalized) if "@" in normalized else Username(normalized)
    except (InvalidEmail, InvalidUsername):
        return None


def login_key(login: Email | Username | None, text: str) -> str:
    """The key of a login's account limits: the canonical form of what was typed (the form that finds accounts),
    for every attempt, whether or not an account answers to it. Throttling then says nothing about accounts: not
    whether one exists, nor which email address and username belong together."""
    return f"login:{login.canonical if login is not None else canonical(text.strip())}"


RECENT_SIGN_IN = timedelta(minutes=10)


async def confirm_password(
    uow: UnitOfWork,
    hasher: PasswordHasher,
    clock: Clock,
    *,
    user_id: UserId,
    password: str | None,
    client: ClientInfo,
    purpose: str,
    session_id: SessionId | None = None,
) -> User:
    """Re-authenticate the caller with their current password. The hash check runs with no transaction open.

    A wrong (or missing) password is recorded in the owner's security history, naming the session it came from: it
    may be a thief holding that session's token, and the owner can end it. An account without a password (made
    through an identity provider) proves the owner is present by a sign-in of the calling session within the last
    ``RECENT_SIGN_IN`` instead; ``password`` is then ignored.

    Raises: InvalidPassword, ReauthenticationRequired, InvalidAccessToken.
    """
    async with uow:
        user = await load_user(uow, user_id)
        session = await uow.sessions.get(session_id) if user.password_hash is None and session_id else None
    if user.password_hash is None:
        if session is None or session.user_id != user_id:
            raise InvalidAccessToken()
        if clock.now() - session.authenticated_at > RECENT_SIGN_IN:
            raise ReauthenticationRequired(max_age=int(RECENT_SIGN_IN.total_seconds()))
        return user
    matches = False
    if password is not None:
        matches, _ = await hasher.verify_and_update(PlainPassword(password), user.password_hash)
    if not matches:
        async with uow:
            await uow.record(
                security_event(
                    EventType.PASSWORD_CONFIRMATION_FAILED,
                    at=clock.now(),
                    client=client,
                    user_id=user_id,
                    session_id=session_id,
                    purpose=purpose,
                )
            )
            await uow.commit()
        raise InvalidPassword()
    return user
