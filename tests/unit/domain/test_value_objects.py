"""Value objects validate themselves and expose the canonical form identifiers are compared in."""

from __future__ import annotations

import dataclasses

import pytest

from usermgmt.domain.errors import InvalidEmail, InvalidFullName, InvalidUsername
from usermgmt.domain.value_objects import (
    Email,
    FullName,
    PasswordHash,
    PlainPassword,
    RefreshTokenHash,
    Username,
    canonical,
)

# A syntactically valid address of exactly 254 characters: 64 + "@" + 189.
LOCAL_64 = "a" * 64
DOMAIN_189 = "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"
EMAIL_254 = f"{LOCAL_64}@{DOMAIN_189}"


# --- canonical() -----------------------------------------------------------------------------------------------


def test_canonical_folds_case_and_compatibility_characters() -> None:
    assert canonical("ALICE") == "alice"
    assert canonical("Straße") == "strasse"  # full case folding, not just lower()
    assert canonical("ﬀ") == "ff"  # NFKC ligature
    assert canonical("ＡＢＣ") == "abc"  # NFKC full-width


def test_canonical_keeps_dotless_i_distinct() -> None:
    assert canonical("mıke") != canonical("mike")


# --- Email -----------------------------------------------------------------------------------------------------


def test_email_keeps_local_part_case_but_compares_canonically() -> None:
    mixed = Email("Alice@Example.com")
    lower = Email("alice@example.com")

    assert mixed.value == "Alice@example.com"  # the domain is lower-cased by normalisation, the local part is kept
    assert mixed != lower
    assert mixed.canonical == lower.canonical == "alice@example.com"


def test_email_str_is_its_value() -> None:
    assert str(Email("bob@example.com")) == "bob@example.com"


def test_email_is_trimmed() -> None:
    assert Email("  carol@example.com \t").value == "carol@example.com"


def test_email_with_dotless_i_is_not_the_same_account_as_plain_i() -> None:
    dotless = Email("mıke@example.com")
    plain = Email("mike@example.com")

    assert dotless.canonical == "mıke@example.com"
    assert dotless.canonical != plain.canonical


@pytest.mark.parametrize(
    ("compat", "plain"),
    [
        ("ｍike@example.com", "mike@example.com"),  # full-width m
        ("Ａlice@Example.com", "alice@example.com"),  # full-width capital A
        ("oﬀice@example.com", "office@example.com"),  # 'ﬀ' ligature
    ],
)
def test_email_canonical_applies_nfkc(compat: str, plain: str) -> None:
    assert Email(compat).canonical == Email(plain).canonical


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "plainaddress",
        "@example.com",
        "alice@",
        "alice@@example.com",
        "alice@example",  # no dot in the domain
        "alice@localhost",
        "alice@example.invalid",  # reserved name
        "alice@[127.0.0.1]",  # IP literals are not allowed
        "al ice@example.com",
        "alice@exa mple.com",
        "alice@example.com\x00",
        "ali\x00ce@example.com",
    ],
)
def test_invalid_email_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidEmail) as excinfo:
        Email(raw)
    assert excinfo.value.code == "invalid_email"


def test_email_of_254_characters_is_accepted() -> None:
    assert len(EMAIL_254) == 254
    assert Email(EMAIL_254).value == EMAIL_254


def test_email_longer_than_254_characters_is_rejected() -> None:
    too_long = f"{LOCAL_64}@{'e' + DOMAIN_189}"
    assert len(too_long) == 255
    with pytest.raises(InvalidEmail):
        Email(too_long)


def test_email_is_immutable() -> None:
    email = Email("dave@example.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        email.value = "eve@example.com"  # type: ignore[misc]


# --- Username --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["abc", "a" * 32, "Bob.Smith", "bob_smith-99", "...", "A-Z", "007"])
def test_valid_username(raw: str) -> None:
    assert Username(raw).value == raw
    assert str(Username(raw)) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ab",  # too short
        "a" * 33,  # too long
        "bob smith",
        "bob@example",
        "bøb",  # non-ASCII letter
        "ｂｏｂ",  # full-width
        "bob\n",
        "\nbob",
        "bob!",
        "b\x00b",
        "١٢٣",  # Arabic-Indic digits are not [0-9]
    ],
)
def test_invalid_username_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidUsername) as excinfo:
        Username(raw)
    assert excinfo.value.code == "invalid_username"


def test_username_canonical_is_case_insensitive() -> None:
    assert Username("Bob.Smith").canonical == Username("bob.smith").canonical == "bob.smith"
    assert Username("Bob.Smith") != Username("bob.smith")
    assert Username("bob1").canonical != Username("bob2").canonical


# --- FullName --------------------------------------------------------------------------------------------------


def test_full_name_is_trimmed_and_nfkc_normalised() -> None:
    assert FullName("  Ada Lovelace \t").value == "Ada Lovelace"
    assert FullName("Ｊｏｓé").value == "José"
    assert str(FullName("Grace")) == "Grace"


def test_full_name_max_length_is_128_after_trimming() -> None:
    assert len(FullName(" " + "x" * 128 + " ").value) == 128
    with pytest.raises(InvalidFullName):
        FullName("x" * 129)


def test_full_name_length_is_measured_after_nfkc() -> None:
    # 65 ligatures are 65 characters as typed but 130 after NFKC.
    with pytest.raises(InvalidFullName):
        FullName("ﬀ" * 65)
    assert FullName("ﬀ" * 64).value == "f" * 128


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_blank_full_name_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidFullName) as excinfo:
        FullName(raw)
    assert excinfo.value.code == "invalid_full_name"


@pytest.mark.parametrize(
    "raw",
    [
        "Ada\x00Lovelace",  # NUL
        "Ada\nLovelace",  # newline inside
        "Ada\x1bLovelace",  # escape
        "Ada\u200bLovelace",  # zero-width space (Cf)
        "Ada\u202eLovelace",  # right-to-left override (Cf)
        "Ada\ue000",  # private use (Co)
        "Ada\U000e0001",  # language tag (Cf)
    ],
)
def test_full_name_with_control_or_invisible_characters_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidFullName):
        FullName(raw)


# --- secrets ---------------------------------------------------------------------------------------------------


def test_plain_password_is_nfkc_normalised() -> None:
    assert PlainPassword("ｐａｓｓ").value == "pass"
    assert PlainPassword("ﬀ").value == "ff"
    assert PlainPassword("e\u0301").value == "é"  # composed


def test_plain_password_repr_and_str_never_show_the_value() -> None:
    password = PlainPassword("s3cret-Hunter2")
    assert "s3cret-Hunter2" not in repr(password)
    assert "s3cret-Hunter2" not in str(password)
    assert repr(password) == "PlainPassword()"


@pytest.mark.parametrize("cls", [PasswordHash, RefreshTokenHash])
def test_hash_reprs_hide_the_value(cls: type[PasswordHash] | type[RefreshTokenHash]) -> None:
    secret_value = "$2b$12$abcdefghijklmnopqrstuv"
    obj = cls(secret_value)
    assert obj.value == secret_value
    assert secret_value not in repr(obj)
    assert secret_value not in str(obj)
    assert cls(secret_value) == obj  # still compares by value


def test_email_whose_canonical_form_exceeds_254_characters_is_rejected() -> None:
    # Each U+FDFA becomes 18 characters under NFKC: 27 characters as typed, 282 canonically.
    expanding = "\ufdfa" * 15 + "@example.com"
    assert len(expanding) < 254 < len(canonical(expanding))

    with pytest.raises(InvalidEmail):
        Email(expanding)
    assert Email("\ufdfa" * 2 + "@example.com").canonical.endswith("@example.com")  # a little expansion is fine
