"""The bundled lists of the most common breached passwords (Django's and zxcvbn's; see ``data/README.md``)."""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

from usermgmt.domain.value_objects import canonical

DATA = Path(__file__).resolve().parent / "data"
BUNDLED_LISTS = (DATA / "common-passwords.txt.gz", DATA / "zxcvbn-passwords.txt.gz")


def load_common_passwords(path: Path | None = None) -> frozenset[str]:
    """The passwords in a gzip-compressed UTF-8 list, one a line, each ``canonical()``-ised and stripped.

    Empty lines are skipped. Compare ``canonical(password.value)`` against the result. Without ``path`` this is
    the union of the bundled lists, read once per process and shared (it is immutable); a given ``path`` is read
    on every call.
    Raises ``OSError`` (or ``UnicodeDecodeError``) when the file is missing or is not gzip-compressed UTF-8.
    """
    if path is None:
        return _bundled()
    return _read(path)


@cache
def _bundled() -> frozenset[str]:
    return frozenset().union(*(_read(path) for path in BUNDLED_LISTS))


def _read(path: Path) -> frozenset[str]:
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    entries = (canonical(line).strip() for line in text.splitlines())
    return frozenset(entry for entry in entries if entry)
