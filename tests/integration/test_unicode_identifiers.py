"""Unicode email addresses: what counts as "the same address" (NFKC + case folding), on both backends.

The canonical form is computed in Python, so PostgreSQL's collation must play no part: the unique constraint and
the lookups compare the stored canonical strings byte for byte.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.integration.builders import new_user
from usermgmt.adapters.sqlalchemy.tables import users
from usermgmt.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from usermgmt.application.errors import EmailTaken
from usermgmt.application.ports import UnitOfWork
from usermgmt.domain.errors import InvalidEmail
from usermgmt.domain.model import User
from usermgmt.domain.value_objects import Email


async def add_committed(uow: UnitOfWork, *new: User) -> None:
    async with uow:
        for user in new:
            await uow.users.add(user)
        await uow.commit()


async def test_dotless_i_is_a_different_address(uow: UnitOfWork) -> None:
    """``ı`` (U+0131) does not case-fold to ``i``: ``mıke`` and ``mike`` are two people."""
    dotless, plain = new_user("mıke@example.com"), new_user("mike@example.com")
    await add_committed(uow, dotless, plain)

    async with uow:
        found_dotless = await uow.users.get_by_email(Email("MıKE@example.com"))
        found_plain = await uow.users.get_by_email(Email("MIKE@example.com"))

    assert found_dotless is not None
    assert found_dotless.id == dotless.id
    assert found_dotless.email.value == "mıke@example.com"
    assert found_plain is not None
    assert found_plain.id == plain.id


async def test_capitalised_address_collides(uow: UnitOfWork) -> None:
    await add_committed(uow, new_user("mike@example.com"))

    async with uow:
        with pytest.raises(EmailTaken):
            await uow.users.add(new_user("Mike@Example.com"))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param("strasse@example.com", "STRAßE@example.com", id="sharp-s-folds-to-ss"),
        pytest.param("mike@example.com", "ｍｉｋｅ@example.com", id="full-width-is-nfkc-equal"),
        pytest.param("file@example.com", "ﬁle@example.com", id="ligature-is-nfkc-equal"),
        pytest.param("josé@example.com", "jose\u0301@example.com", id="composed-equals-decomposed"),
    ],
)
async def test_canonically_equal_addresses_collide(uow: UnitOfWork, first: str, second: str) -> None:
    await add_committed(uow, new_user(first))

    async with uow:
        assert await uow.users.get_by_email(Email(second)) is not None
        with pytest.raises(EmailTaken):
            await uow.users.add(new_user(second))


async def test_unicode_address_is_stored_exactly_as_normalised(clean_database: AsyncEngine) -> None:
    """PostgreSQL-specific: the text reaches the columns unchanged (UTF-8 in, UTF-8 out, no collation folding)."""
    user = new_user("Mıke.Ünïcode@Example.com")
    await add_committed(SqlAlchemyUnitOfWork(clean_database), user)

    async with clean_database.connect() as connection:
        row = (await connection.execute(select(users.c.email, users.c.email_canonical))).one()

    assert row.email == "Mıke.Ünïcode@example.com"
    assert row.email_canonical == "mıke.ünïcode@example.com"


def test_an_address_whose_canonical_form_would_not_fit_is_refused() -> None:
    """An address is at most 254 characters, and so is its canonical form (NFKC + casefold), which is what the
    unique column holds. U+FDFA is one code point but NFKC-equivalent to an 18-character phrase: 14 of them make
    a 26-character address whose canonical form would be 264 characters. It is refused as invalid, not stored
    truncated and not a database error."""
    with pytest.raises(InvalidEmail, match="too long"):
        Email("\ufdfa" * 14 + "@example.com")
    Email("\ufdfa" * 13 + "@example.com")  # 246 characters canonically: fine
