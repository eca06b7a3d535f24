"""Reading what the use cases queued in the in-memory outbox, as the mail would carry it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.unit.application._support import RecordingUnitOfWork
from usermgmt.adapters.memory import MemoryStore
from usermgmt.application.ports import OutgoingEmail
from usermgmt.domain.value_objects import PasswordHash, PlainPassword


def queued(store: MemoryStore, template: str | None = None, *, to: str | None = None) -> list[OutgoingEmail]:
    """The committed outbox's messages, oldest first; of one template and one recipient when given."""
    return [
        row.message
        for row in store.outbox
        if (template is None or row.message.template == template) and (to is None or row.message.to == to)
    ]


def token_of(message: OutgoingEmail) -> str:
    """The one-time token in a message's link."""
    (token,) = parse_qs(urlsplit(message.context["link"]).query)["token"]
    return token


class CallLog(RecordingUnitOfWork):
    """The recording unit of work, also listing every repository call made through it, in order
    (``users.get_by_email``, ``events.add``, …), and every commit."""

    def __init__(self, store: MemoryStore | None = None) -> None:
        self.calls: list[str] = []
        super().__init__(store)

    def _open(self) -> None:
        super()._open()
        for name in ("users", "sessions", "events", "email_tokens", "outbox", "known_devices"):
            setattr(self, name, _Logged(getattr(self, name), name, self.calls))

    async def _commit(self) -> None:
        self.calls.append("commit")
        await super()._commit()


class _Logged:
    def __init__(self, target: Any, name: str, calls: list[str]) -> None:
        self._target, self._name, self._calls = target, name, calls

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not inspect.iscoroutinefunction(value):
            return value
        method: Callable[..., Any] = value

        async def logged(*args: Any, **kwargs: Any) -> Any:
            self._calls.append(f"{self._name}.{attr}")
            return await method(*args, **kwargs)

        return logged


class CountingHasher:
    """Wraps a hasher, counting the new hashes it makes."""

    def __init__(self, inner: Any) -> None:
        self._inner, self.hashes = inner, 0

    @property
    def dummy_hash(self) -> PasswordHash:
        return self._inner.dummy_hash  # type: ignore[no-any-return]

    async def hash(self, password: PlainPassword) -> PasswordHash:
        self.hashes += 1
        return await self._inner.hash(password)  # type: ignore[no-any-return]

    def admission(self) -> Any:
        return self._inner.admission()

    async def verify_and_update(
        self, password: PlainPassword, password_hash: PasswordHash
    ) -> tuple[bool, PasswordHash | None]:
        return await self._inner.verify_and_update(password, password_hash)  # type: ignore[no-any-return]
