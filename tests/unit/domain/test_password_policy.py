"""The NIST-style password policy: length only (in code points after NFKC), and not the user's own identifiers."""

from __future__ import annotations

import pytest

from usermgmt.domain.errors import WeakPassword
from usermgmt.domain.password_policy import MAX_LENGTH, MIN_LENGTH_FLOOR, PasswordPolicy
from usermgmt.domain.value_objects import Email, FullName, PlainPassword, Username

EMAIL = Email("alice@example.com")
USERNAME = Username("alice.smith")


def check(password: str, *, policy: PasswordPolicy | None = None, username: Username | None = USERNAME) -> None:
    (policy or PasswordPolicy()).check(PlainPassword(password), email=EMAIL, username=username)


def test_defaults_are_8_and_128() -> None:
    assert (MIN_LENGTH_FLOOR, MAX_LENGTH) == (8, 128)
    assert PasswordPolicy().min_length == 8
    assert PasswordPolicy().max_length == 128


@pytest.mark.parametrize("length", [8, 9, 64, 127, 128])
def test_lengths_within_bounds_are_accepted(length: int) -> None:
    check("x" * length)


@pytest.mark.parametrize("length", [0, 1, 7])
def test_too_short_is_rejected(length: int) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check("x" * length)
    assert excinfo.value.code == "weak_password"
    assert "at least 8" in excinfo.value.detail


@pytest.mark.parametrize("length", [129, 1000])
def test_too_long_is_rejected(length: int) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check("x" * length)
    assert "at most 128" in excinfo.value.detail


@pytest.mark.parametrize("password", ["aaaaaaaa", "12345678", "        ", "password", "ABCDEFGH"])
def test_no_composition_rules(password: str) -> None:
    check(password)


def test_length_counts_code_points_not_bytes() -> None:
    check("é" * 8)  # 16 UTF-8 bytes
    check("😀" * 8)  # 32 UTF-8 bytes
    check("😀" * 128)  # 512 UTF-8 bytes, still 128 characters
    with pytest.raises(WeakPassword):
        check("😀" * 7)
    with pytest.raises(WeakPassword):
        check("😀" * 129)


def test_length_is_counted_after_nfkc() -> None:
    # Seven characters as typed, eight after the ligature expands...
    check("ﬀabcdef")
    # ...while seven plain characters stay seven.
    with pytest.raises(WeakPassword):
        check("fabcdef")
    # Sixteen code points as typed (e + combining acute) compose to eight; fourteen compose to seven.
    check("e\u0301" * 8)
    with pytest.raises(WeakPassword):
        check("e\u0301" * 7)
    # 65 ligatures as typed become 130 characters: too long.
    with pytest.raises(WeakPassword):
        check("ﬀ" * 65)
    check("ﬀ" * 64)


@pytest.mark.parametrize("password", ["alice@example.com", "ALICE@EXAMPLE.COM", "Alice@Example.Com"])
def test_password_equal_to_email_is_rejected_case_insensitively(password: str) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check(password)
    assert "email" in excinfo.value.detail


def test_password_equal_to_email_under_nfkc_is_rejected() -> None:
    with pytest.raises(WeakPassword):
        check("ａｌｉｃｅ@example.com")


@pytest.mark.parametrize("password", ["alice.smith", "ALICE.SMITH", "Alice.Smith"])
def test_password_equal_to_username_is_rejected_case_insensitively(password: str) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check(password)
    assert "username" in excinfo.value.detail


@pytest.mark.parametrize(
    "password",
    [
        "alice.smith2",  # the username plus a digit
        "Alice.Smith!!!",
        "alice1234",  # the email's local part plus digits
        "1234smith5678",  # a part of the username
        "example2024!",  # the email's domain
        "ALICE-alice-ALICE",
    ],
)
def test_password_built_from_own_identifiers_is_rejected(password: str) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check(password)
    assert "built from" in excinfo.value.detail
    assert password not in excinfo.value.detail


@pytest.mark.parametrize(
    "password",
    ["alice loves wonderland", "smith and wesson", "wonderland alice", "hunter2hunter2", "exemplary kites"],
)
def test_identifier_plus_enough_letters_of_its_own_is_accepted(password: str) -> None:
    check(password)


def test_full_name_parts_count_as_identifiers() -> None:
    full_name = FullName("Alice Liddell")
    policy = PasswordPolicy()
    for weak in ("liddell2025", "aliceliddell", "Liddell!!!!"):
        with pytest.raises(WeakPassword):
            policy.check(PlainPassword(weak), email=Email("someone@example.com"), full_name=full_name)
    policy.check(PlainPassword("liddell2025"), email=Email("someone@example.com"))  # no name given: fine


def test_identifier_fragments_shorter_than_three_are_ignored() -> None:
    policy = PasswordPolicy()
    # "jo" and "li" are too common to forbid: "jo12345678" keeps only two letters yet is allowed.
    policy.check(PlainPassword("jo12345678"), email=Email("jo.li@example.com"), full_name=FullName("Jo Li"))
    with pytest.raises(WeakPassword):
        policy.check(PlainPassword("joli12345"), email=Email("x@example.com"), full_name=FullName("Jo Li"))


@pytest.mark.parametrize("password", ["Alice Liddell", "alice liddell 1", "alice@example.com1"])
def test_password_made_of_several_identifiers_is_rejected(password: str) -> None:
    # Regression: identifiers used to be taken out one at a time, so the other one counted as the password's own.
    with pytest.raises(WeakPassword, match="built from"):
        PasswordPolicy().check(PlainPassword(password), email=EMAIL, full_name=FullName("Alice Liddell"))


COMMON = frozenset({"password", "letmein", "abc", "qwertyuiop"})


@pytest.mark.parametrize(
    "password",
    ["password", "PASSWORD", "Password", "ｐａｓｓｗｏｒｄ", "password1", "password123!", "letmein!!", "qwertyuiop"],
)
def test_common_passwords_are_rejected(password: str) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check(password, policy=PasswordPolicy(common=COMMON))
    assert "common" in excinfo.value.detail
    with pytest.raises(WeakPassword) as other:
        check("letmein!!", policy=PasswordPolicy(common=COMMON))
    assert excinfo.value.detail == other.value.detail  # the reason never echoes the password


@pytest.mark.parametrize("password", ["passwordpassword", "123password", "my password is long", "abc12345"])
def test_uncommon_variants_are_accepted(password: str) -> None:
    # Only a trailing decoration is stripped, and only when at least four letters remain ("abc" is too short).
    check(password, policy=PasswordPolicy(common=COMMON))


def test_without_a_common_list_nothing_is_common() -> None:
    check("password")
    check("qwertyuiop")


def test_policy_repr_does_not_dump_the_common_list() -> None:
    assert "letmein" not in repr(PasswordPolicy(common=COMMON))


def test_username_rule_is_skipped_without_a_username() -> None:
    check("alice.smith", username=None)


@pytest.mark.parametrize(
    "password", ["short", "x" * 200, "alice@example.com", "Alice.Smith", "hunter2"], ids=lambda p: p[:12]
)
def test_error_message_never_contains_the_password(password: str) -> None:
    with pytest.raises(WeakPassword) as excinfo:
        check(password)
    assert password not in str(excinfo.value)
    assert password not in excinfo.value.detail
    assert password not in repr(excinfo.value)


def test_custom_minimum_is_enforced() -> None:
    policy = PasswordPolicy(min_length=12)
    check("x" * 12, policy=policy)
    with pytest.raises(WeakPassword) as excinfo:
        check("x" * 11, policy=policy)
    assert "at least 12" in excinfo.value.detail


def test_custom_maximum_is_enforced() -> None:
    policy = PasswordPolicy(max_length=64)
    check("x" * 64, policy=policy)
    with pytest.raises(WeakPassword):
        check("x" * 65, policy=policy)


@pytest.mark.parametrize(
    ("min_length", "max_length"),
    [(7, 128), (0, 128), (-1, 128), (8, 129), (20, 10), (8, 7)],
)
def test_constructor_refuses_unsafe_bounds(min_length: int, max_length: int) -> None:
    with pytest.raises(ValueError, match="password lengths"):
        PasswordPolicy(min_length=min_length, max_length=max_length)


def test_constructor_accepts_equal_bounds() -> None:
    assert PasswordPolicy(min_length=128, max_length=128).min_length == 128
