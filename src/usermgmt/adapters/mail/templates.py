"""The Jinja2 renderer of the messages: the built-in templates in ``templates/``, overridable file by file from a
folder of the deployer's (``USERMGMT_EMAIL_TEMPLATES_DIR``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from usermgmt.application.email import Template
from usermgmt.application.ports import RenderedEmail

BUILT_IN: Final = Path(__file__).parent / "templates"

_AT = "2026-12-02T15:46:22+00:00"
_DEVICE = {"at": _AT, "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"}
_LINK = {"expires_at": "2026-12-03T15:46:22+00:00"}

# The context each template is rendered with, as the use cases pass it (besides ``to`` and ``frontend_url``, which
# every template gets). The renderer's start-up check renders every template with these.
EXAMPLE_CONTEXTS: Final[Mapping[Template, Mapping[str, Any]]] = {
    Template.VERIFY_EMAIL: {"link": "http://localhost:3000/verify-email?token=EXAMPLE", **_LINK},
    Template.CONFIRM_EMAIL_CHANGE: {
        "link": "http://localhost:3000/confirm-email?token=EXAMPLE",
        "new_email": "ada@example.org",
        **_LINK,
    },
    Template.RESET_PASSWORD: {"link": "http://localhost:3000/reset-password?token=EXAMPLE", **_LINK},
    Template.EMAIL_CHANGE_REQUESTED: {"new_email": "ada@example.org", **_DEVICE},
    Template.EMAIL_CHANGED: {"new_email": "ada@example.org", **_DEVICE},
    Template.PASSWORD_CHANGED: {"reset": False, **_DEVICE},
    Template.ACCOUNT_DELETED: {"deleted_at": _AT, **_DEVICE},
    Template.NEW_DEVICE: _DEVICE,
    Template.MFA_ENABLED: _DEVICE,
    Template.MFA_DISABLED: _DEVICE,
    Template.RECOVERY_CODES_REGENERATED: _DEVICE,
    Template.RECOVERY_CODE_USED: {"codes_left": 9, **_DEVICE},
    Template.ACCOUNT_DELETION_SCHEDULED: {
        "link": "http://localhost:3000/restore-account?token=EXAMPLE",
        "erasure_at": "2026-12-16T15:46:22+00:00",
        **_LINK,
        **_DEVICE,
    },
    Template.IDENTITY_LINKED: {
        "provider_label": "Google",
        "provider_email": "ada@gmail.com",
        "automatic": True,
        **_DEVICE,
    },
    Template.IDENTITY_UNLINKED: {"provider_label": "Google", "provider_email": "ada@gmail.com", **_DEVICE},
    Template.TEST: {"at": _AT},
}


def when(value: object) -> str:
    """An ISO 8601 time as people read it, in UTC: ``2 December 2026, 15:46 UTC``; anything else as it is."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        return f"{moment.day} {moment:%B %Y, %H:%M} UTC"
    return str(value)


class JinjaEmailRenderer:
    """Renders ``<name>.subject.txt``, ``<name>.txt`` and ``<name>.html`` of a ``Template``.

    - Each file is looked up in ``override_dir`` first, then among the built-in templates: a deployer overrides
      one file (or the HTML layout ``_layout.html``) and keeps the rest.
    - Undefined variables are errors (``StrictUndefined``), not blanks; HTML files are autoescaped, text is not.
    - Every template gets ``frontend_url`` and the ``when`` filter; the subject is made one line.
    - ``render`` raises ``ValueError`` naming the template (an unknown one, or one that does not render).
    """

    def __init__(self, *, frontend_url: str, override_dir: Path | None = None) -> None:
        loaders = [FileSystemLoader(override_dir)] if override_dir is not None else []
        self._env = Environment(
            loader=ChoiceLoader([*loaders, FileSystemLoader(BUILT_IN)]),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._env.globals["frontend_url"] = frontend_url
        self._env.filters["when"] = when

    def render(self, template: str, context: Mapping[str, Any]) -> RenderedEmail:
        if template not in {member.value for member in Template}:
            raise ValueError(f"no such email template: {template!r}")
        try:
            subject = self._env.get_template(f"{template}.subject.txt").render(context)
            text = self._env.get_template(f"{template}.txt").render(context)
            html = self._env.get_template(f"{template}.html").render(context)
        except TemplateError as error:
            raise ValueError(f"the email template {template!r} does not render: {error}") from error
        return RenderedEmail(subject=" ".join(subject.split()), text=text, html=html)

    def check(self) -> None:
        """Render every ``Template`` with its example context: a missing or broken file (an override's, say) stops
        the start here rather than failing each message later. Raises ``ValueError`` naming the template."""
        for template in Template:
            self.render(template.value, {"to": "ada@example.com", **EXAMPLE_CONTEXTS[template]})
