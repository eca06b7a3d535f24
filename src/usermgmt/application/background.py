"""Background work of a server process: one asyncio task, started once, cancelled and awaited on close."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundTask:
    """Subclasses give ``run`` (the loop, until cancelled) and ``name``; ``start`` and ``aclose`` are shared."""

    name = "usermgmt-background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name=self.name)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
