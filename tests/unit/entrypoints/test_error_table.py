"""ERROR_STATUS is complete: every DomainError of usermgmt has a status chosen for it, none falls through."""

from __future__ import annotations

import importlib
import pkgutil

import usermgmt
from usermgmt.domain.errors import DomainError
from usermgmt.entrypoints.http.errors import ERROR_STATUS


def all_domain_errors() -> set[type[DomainError]]:
    """Every subclass of DomainError defined in usermgmt, once all of its modules are imported."""
    for module in pkgutil.walk_packages(usermgmt.__path__, prefix="usermgmt."):
        importlib.import_module(module.name)
    found: set[type[DomainError]] = set()
    pending = list(DomainError.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__.startswith("usermgmt.") and cls not in found:
            found.add(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_domain_error_has_its_own_status() -> None:
    errors = all_domain_errors()

    assert len(errors) >= 16  # the walk found them (both the domain's and the application's)
    missing = sorted(cls.__qualname__ for cls in errors if cls not in ERROR_STATUS)
    assert missing == []


def test_every_status_is_an_error_status_and_every_code_is_distinct() -> None:
    assert all(400 <= status <= 599 for status in ERROR_STATUS.values())
    codes = [cls.code for cls in ERROR_STATUS]
    assert len(codes) == len(set(codes))
