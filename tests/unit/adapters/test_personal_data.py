"""The personal-data registry (``tables.PERSONAL_DATA``) lists every table that holds an account's rows.

Erasure walks it (both adapters), and so will a data export: a table missing from it would survive an account's
deletion. The check reads the schema itself, ``tables.metadata``: a table belongs to an account when a chain of
foreign keys leads from it to ``users.id`` (directly, or through sessions or any other such table), or when it has
a ``user_id`` column at all.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Column, ForeignKey, MetaData, String, Table, Uuid

from usermgmt.adapters.sqlalchemy.tables import (
    PERSONAL_DATA,
    PersonalData,
    metadata,
    retired_refresh_tokens,
    security_events,
    sessions,
    users,
)


def tables_holding_account_data(schema: MetaData) -> set[str]:
    """``users``, and every table with a foreign-key path to it or a ``user_id`` column."""
    owned = {"users"}
    grew = True
    while grew:
        grew = False
        for table in schema.tables.values():
            if table.name in owned:
                continue
            refers = {key.column.table.name for column in table.columns for key in column.foreign_keys}
            if refers & owned or "user_id" in table.columns:
                owned.add(table.name)
                grew = True
    return owned


def unregistered(schema: MetaData, registry: tuple[PersonalData, ...]) -> set[str]:
    return tables_holding_account_data(schema) - {entry.table.name for entry in registry}


def test_every_table_that_holds_account_data_is_registered() -> None:
    assert unregistered(metadata, PERSONAL_DATA) == set()
    assert {entry.table.name for entry in PERSONAL_DATA} <= set(metadata.tables)


def with_new_tables() -> MetaData:
    """A copy of the real schema, to add tables to."""
    scratch = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(scratch)
    return scratch


@pytest.mark.parametrize(
    "new_table",
    [
        ("mfa_devices", Column("user_id", Uuid, ForeignKey("users.id"))),  # names the user
        ("session_devices", Column("session_id", Uuid, ForeignKey("sessions.id"))),  # names one of their sessions
        ("token_audit", Column("token_hash", String(64), ForeignKey("retired_refresh_tokens.token_hash"))),  # deeper
        ("webhook_queue", Column("user_id", Uuid)),  # names the user without a foreign key
    ],
    ids=lambda new_table: new_table[0],
)
def test_a_new_table_that_holds_account_data_is_caught(new_table: tuple[str, Column[object]]) -> None:
    name, column = new_table
    schema = with_new_tables()
    Table(name, schema, Column("id", Uuid, primary_key=True), column)

    assert unregistered(schema, PERSONAL_DATA) == {name}


def test_a_new_table_that_holds_no_account_data_is_not() -> None:
    schema = with_new_tables()
    Table("feature_flags", schema, Column("name", String(40), primary_key=True))

    assert unregistered(schema, PERSONAL_DATA) == set()


def test_names_are_unique() -> None:
    names = [entry.name for entry in PERSONAL_DATA]
    assert len(names) == len(set(names))
    assert len({entry.table.name for entry in PERSONAL_DATA}) == len(PERSONAL_DATA)


def test_owners_come_before_what_they_own() -> None:
    """Erasure walks the registry backwards: every table on an entry's path must be listed before the entry."""
    seen: set[str] = set()
    for entry in PERSONAL_DATA:
        assert {column.table.name for column in entry.path[1:]} | ({"users"} if entry.path else set()) <= seen
        seen.add(entry.table.name)


@pytest.mark.parametrize(
    ("table", "path"),
    [
        (sessions, (sessions.c.ip,)),  # not a foreign key
        (retired_refresh_tokens, (retired_refresh_tokens.c.session_id,)),  # stops at sessions, short of users
        (security_events, (sessions.c.user_id,)),  # starts in another table
        (security_events, ()),  # only the users row needs no path
        (retired_refresh_tokens, (retired_refresh_tokens.c.session_id, security_events.c.user_id)),  # not a chain
    ],
)
def test_an_entry_whose_path_is_not_a_foreign_key_chain_to_users_is_refused(
    table: Table, path: tuple[Column[object], ...]
) -> None:
    with pytest.raises(ValueError, match=r"path|foreign key"):
        PersonalData("broken", table, path)


def test_the_users_row_itself_is_registered() -> None:
    assert [entry.table for entry in PERSONAL_DATA if not entry.path] == [users]
