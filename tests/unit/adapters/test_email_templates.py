"""The Jinja2 renderer: every template renders with the context its use case passes, HTML is escaped, undefined
variables fail, and a deployer's folder overrides the built-in templates file by file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from usermgmt.adapters.mail.templates import BUILT_IN, EXAMPLE_CONTEXTS, JinjaEmailRenderer, when
from usermgmt.application.email import Template

FRONTEND = "https://app.example.com"
NOTICES = {
    Template.EMAIL_CHANGE_REQUESTED,
    Template.EMAIL_CHANGED,
    Template.PASSWORD_CHANGED,
    Template.ACCOUNT_DELETED,
    Template.NEW_DEVICE,
}
LINKS = {Template.VERIFY_EMAIL, Template.CONFIRM_EMAIL_CHANGE, Template.RESET_PASSWORD}


def context(template: Template, **overrides: Any) -> dict[str, Any]:
    # The confirmation of an email change goes to the new address; everything else to the account's.
    to = EXAMPLE_CONTEXTS[template]["new_email"] if template is Template.CONFIRM_EMAIL_CHANGE else "ada@example.com"
    return {"to": to, **EXAMPLE_CONTEXTS[template], **overrides}


@pytest.fixture
def renderer() -> JinjaEmailRenderer:
    return JinjaEmailRenderer(frontend_url=FRONTEND)


def test_every_template_has_its_three_files_and_a_documented_context() -> None:
    assert set(EXAMPLE_CONTEXTS) == set(Template)
    for template in Template:
        for suffix in (".subject.txt", ".txt", ".html"):
            assert (BUILT_IN / f"{template.value}{suffix}").is_file(), (template, suffix)


@pytest.mark.parametrize("template", list(Template))
def test_every_template_renders_with_its_context(renderer: JinjaEmailRenderer, template: Template) -> None:
    rendered = renderer.render(template.value, context(template))

    assert rendered.subject and "\n" not in rendered.subject
    assert rendered.text.strip() and rendered.html.strip()
    assert context(template)["to"] in rendered.text
    assert "<img" not in rendered.html and "src=" not in rendered.html  # no remote images, nothing to load
    for value in EXAMPLE_CONTEXTS[template].values():
        if isinstance(value, str) and not value.startswith("20"):  # times are shown as people read them
            assert value in rendered.text, (template, value)
    if template in LINKS:
        link = EXAMPLE_CONTEXTS[template]["link"]
        assert rendered.text.index(link) == rendered.text.index("http")  # the link comes first
        assert f'href="{link}"' in rendered.html
        assert "3 December 2026, 15:46 UTC" in rendered.text  # expires_at
    if template in NOTICES:  # what happened, when, from where, and what to do if it was not you
        assert "2 December 2026, 15:46 UTC" in rendered.text
        assert "203.0.113.7" in rendered.text and "Firefox/133.0" in rendered.text
        assert "If this was not you" in rendered.text and "If this was not you" in rendered.html


def test_a_notice_without_ip_or_device_says_unknown(renderer: JinjaEmailRenderer) -> None:
    rendered = renderer.render("new_device", context(Template.NEW_DEVICE, ip=None, user_agent=None))

    assert "IP address: unknown" in rendered.text
    assert "Device:     unknown" in rendered.text


def test_password_changed_tells_a_reset_from_a_change(renderer: JinjaEmailRenderer) -> None:
    reset = renderer.render("password_changed", context(Template.PASSWORD_CHANGED, reset=True))
    changed = renderer.render("password_changed", context(Template.PASSWORD_CHANGED, reset=False))

    assert "reset with a link" in reset.text and "Every session" in reset.text
    assert "changed by someone signed in" in changed.text and "Every other session" in changed.text


def test_notices_point_at_the_frontend_reset_page(renderer: JinjaEmailRenderer) -> None:
    rendered = renderer.render("new_device", context(Template.NEW_DEVICE))

    assert f"{FRONTEND}/reset-password" in rendered.text
    assert f'href="{FRONTEND}/reset-password"' in rendered.html


def test_html_is_escaped_and_text_is_not(renderer: JinjaEmailRenderer) -> None:
    hostile = "<script>alert(1)</script>"

    rendered = renderer.render("new_device", context(Template.NEW_DEVICE, user_agent=hostile))

    assert hostile not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert hostile in rendered.text


def test_a_missing_variable_is_an_error_naming_the_template(renderer: JinjaEmailRenderer) -> None:
    incomplete = context(Template.VERIFY_EMAIL)
    del incomplete["link"]

    with pytest.raises(ValueError, match="'verify_email' does not render: 'link' is undefined"):
        renderer.render("verify_email", incomplete)


@pytest.mark.parametrize("name", ["no_such_template", "../verify_email", "_layout"])
def test_only_the_known_templates_render(renderer: JinjaEmailRenderer, name: str) -> None:
    with pytest.raises(ValueError, match="no such email template"):
        renderer.render(name, {"to": "ada@example.com"})


def test_the_override_folder_wins_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "verify_email.subject.txt").write_text("Welcome aboard, {{ to }}")
    (tmp_path / "_layout.html").write_text("<main>{% block body %}{% endblock %}</main><footer>ACME</footer>")
    renderer = JinjaEmailRenderer(frontend_url=FRONTEND, override_dir=tmp_path)

    rendered = renderer.render("verify_email", context(Template.VERIFY_EMAIL))
    built_in = JinjaEmailRenderer(frontend_url=FRONTEND).render("verify_email", context(Template.VERIFY_EMAIL))

    assert rendered.subject == "Welcome aboard, ada@example.com"  # overridden
    assert rendered.text == built_in.text  # not overridden: the built-in file
    assert rendered.html.startswith("<main>") and rendered.html.endswith("<footer>ACME</footer>")  # its layout
    assert "Confirm my address" in rendered.html  # the built-in body inside the deployer's layout
    renderer.check()


def test_the_start_up_check_refuses_an_override_that_does_not_render(tmp_path: Path) -> None:
    (tmp_path / "new_device.txt").write_text("Signed in from {{ city }}")
    renderer = JinjaEmailRenderer(frontend_url=FRONTEND, override_dir=tmp_path)

    with pytest.raises(ValueError, match="'new_device' does not render: 'city' is undefined"):
        renderer.check()


def test_the_start_up_check_refuses_an_override_with_a_syntax_error(tmp_path: Path) -> None:
    (tmp_path / "reset_password.html").write_text("{% if %}")

    with pytest.raises(ValueError, match="'reset_password' does not render"):
        JinjaEmailRenderer(frontend_url=FRONTEND, override_dir=tmp_path).check()


def test_the_built_in_templates_pass_the_start_up_check(renderer: JinjaEmailRenderer) -> None:
    renderer.check()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("2026-12-02T15:46:22+00:00", "2 December 2026, 15:46 UTC"),
        ("2026-12-02T16:46:22+01:00", "2 December 2026, 15:46 UTC"),
        ("not a time", "not a time"),
        (None, "None"),
    ],
)
def test_times_are_shown_in_utc_as_people_read_them(value: object, shown: str) -> None:
    assert when(value) == shown
