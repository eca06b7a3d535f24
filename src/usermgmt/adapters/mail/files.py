"""The development mailer: every message becomes an ``.eml`` file in a folder (``<DATA_DIR>/mail`` by default)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from datetime import UTC, datetime
from email.message import EmailMessage as MimeMessage
from pathlib import Path

from usermgmt.adapters.mail import mime_message
from usermgmt.application.ports import DeliveryFailed, EmailMessage

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")


class FileMailer:
    """Writes each message to ``<directory>/<UTC time>-<template>-<message id>.eml`` (a complete RFC 5322 message that
    any mail client opens), and logs one INFO line naming the file, never its content (the link is in the file).

    The folder is created private (0700) and each file readable by its owner only (0600): it holds one-time links.
    A file appears whole or not at all (written aside, then renamed). ``send`` raises ``DeliveryFailed`` (temporary)
    when the file cannot be written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> str:
        now = datetime.now(UTC)
        mime = mime_message(message, date=now)
        local_part = _UNSAFE.sub("", message.message_id.partition("@")[0])[:40] or "message"
        name = f"{now:%Y%m%dT%H%M%S%fZ}-{_UNSAFE.sub('-', message.template)}-{local_part}.eml"
        try:
            path = await asyncio.to_thread(self._write, name, mime)
        except OSError as error:
            raise DeliveryFailed(
                f"cannot write the message file ({type(error).__name__})", permanent=False, detail=str(error)
            ) from error
        logger.info("email %s (%s) written to %s", message.message_id, message.template, path)
        return str(path)

    def _write(self, name: str, mime: MimeMessage) -> Path:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / name
        partial = self.directory / f".{name}.partial"
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(mime.as_bytes())
        os.replace(partial, path)
        return path
