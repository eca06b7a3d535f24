"""The bundled common-password list: present, large, canonical, and cheap to ask for."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from usermgmt.adapters.common_passwords import BUNDLED_LISTS, load_common_passwords
from usermgmt.domain.value_objects import canonical

# Django's list (Royce Williams' 20,000, "unhexed, lowercased and deduplicated": 19,640) and zxcvbn's 30,000
# (Xato corpus), which overlap (see adapters/data/README.md).
DJANGO_ENTRIES = 19_640
ZXCVBN_ENTRIES = 30_000
UNION_ENTRIES = 40_101


def test_the_bundled_lists_ship_inside_the_package() -> None:
    for path in BUNDLED_LISTS:
        assert path.is_file()
        assert path.read_bytes()[:2] == b"\x1f\x8b"  # still gzip
    assert (BUNDLED_LISTS[0].parent / "README.md").is_file()


def test_the_bundled_lists_load_in_full() -> None:
    passwords = load_common_passwords()
    assert len(passwords) == UNION_ENTRIES
    assert len(passwords) >= 20_000
    assert {"password", "123456", "qwerty", "iloveyou", "letmein", "trustno1"} <= passwords


def test_every_entry_is_canonical_stripped_and_non_empty() -> None:
    passwords = load_common_passwords()
    assert "" not in passwords
    assert all(entry == canonical(entry).strip() for entry in passwords)
    assert not any(entry != entry.lower() for entry in passwords)


def test_the_bundled_lists_are_read_once() -> None:
    assert load_common_passwords() is load_common_passwords()


def test_each_list_reads_in_full() -> None:
    django, zxcvbn = (load_common_passwords(path) for path in BUNDLED_LISTS)  # a path bypasses the cache
    assert (len(django), len(zxcvbn)) == (DJANGO_ENTRIES, ZXCVBN_ENTRIES)


def test_another_list_is_canonicalised_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "list.txt.gz"
    path.write_bytes(gzip.compress("  Tr0ub4dor&3 \r\n\r\nＰＡＳＳＷＯＲＤ\n\n   \nStraße\n".encode()))
    assert load_common_passwords(path) == frozenset({"tr0ub4dor&3", "password", "strasse"})


def test_a_missing_list_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(OSError, match=r"list\.txt\.gz"):
        load_common_passwords(tmp_path / "list.txt.gz")
