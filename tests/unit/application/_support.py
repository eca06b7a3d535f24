"""Constants, small helpers and a recording unit of work shared by the application tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from usermgmt.adapters.memory import FrozenClock, InMemoryRateLimiter, InMemoryUnitOfWork, MemoryStore
from usermgmt.application import commands
from usermgmt.application.abuse import Guard, RateLimitPolicy, Throttle
from usermgmt.application.handlers.login import LoginHandler
from usermgmt.application.ports import EventDispatcher
from usermgmt.application.results import SignedIn, TokenPair
from usermgmt.domain.events import EventType, SecurityEvent

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
SESSION_LIFETIME = timedelta(days=30)
ACCESS_TTL = timedelta(minutes=15)
ALICE_EMAIL = "alice@example.com"
ALICE_PASSWORD = "correct horse battery staple"
BOB_EMAIL = "bob@example.com"
BOB_PASSWORD = "bob's long password"
IP = "192.0.2.10"
FRONTEND_URL = "https://app.example.com"


class RecordingUnitOfWork(InMemoryUnitOfWork):
    """The in-memory unit of work, also noting every security event whose transaction committed (in order).

    Events reach ``recorded`` through the dispatcher's after-commit phase, so what is recorded is exactly what a
    handler raised and committed; a rolled-back transaction records nothing.
    """

    def __init__(self, store: MemoryStore | None = None, recorded: list[SecurityEvent] | None = None) -> None:
        super().__init__(store, dispatcher=EventDispatcher(after_commit=[self._note]))
        self.recorded: list[SecurityEvent] = [] if recorded is None else recorded

    async def _note(self, events: Sequence[SecurityEvent]) -> None:
        self.recorded.extend(events)

    def kinds(self) -> list[EventType]:
        return [event.type for event in self.recorded]


def snapshot(store: MemoryStore) -> dict[str, Any]:
    """Users, sessions and tokens as plain data (``User``/``Session`` compare by id only, so compare this instead).

    Security events are left out: failures are recorded on purpose; tests check them through ``recorded``.
    """
    state = dataclasses.asdict(store)
    state.pop("events")
    return state


def untimed(details: Mapping[str, Any]) -> dict[str, Any]:
    """A sign-in event's details without its ``duration_ms`` (wall time: a test cannot know it)."""
    assert isinstance(details.get("duration_ms"), float), details
    return {k: v for k, v in details.items() if k != "duration_ms"}


def client(ip: str | None = IP, user_agent: str | None = "pytest") -> commands.ClientInfo:
    return commands.ClientInfo(user_agent=user_agent, ip=ip, request_id="req-1")


def login_cmd(
    login: str = ALICE_EMAIL, password: str = ALICE_PASSWORD, *, ip: str | None = IP, user_agent: str | None = "pytest"
) -> commands.Login:
    return commands.Login(login=login, password=password, client=client(ip, user_agent))


def make_guard(uow: RecordingUnitOfWork, clock: FrozenClock, policy: RateLimitPolicy | None = None) -> Guard:
    """A guard with its own limiter, writing through its own unit of work on ``uow``'s store."""
    throttle = Throttle(InMemoryRateLimiter(clock), policy or RateLimitPolicy())
    return Guard(throttle, RecordingUnitOfWork(uow.store, recorded=uow.recorded), clock)


class SignIn:
    """A password login that must end signed in (no account here requires a further step): its token pair."""

    def __init__(self, handler: LoginHandler) -> None:
        self.handler = handler

    async def __call__(self, cmd: commands.Login) -> TokenPair:
        result = await self.handler(cmd)
        assert isinstance(result, SignedIn), result
        return result.tokens
