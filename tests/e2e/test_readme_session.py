"""The README's "Example session" is docs/examples/session.sh, replayed against the real service.

Two checks keep the README, the script and the service from drifting apart:

- the console blocks of the README's "Example session" section hold exactly the script's commands, in order;
- replaying the script's commands with bash, curl and jq against ``usermgmt serve`` on a fresh database (the
  embedded SQLite of ``make run``, and PostgreSQL) gives, command by command, the outputs the README shows.

How a shown output is compared with the real one (`matches`):
- Values that change from run to run are replaced in both by a placeholder: UUIDs, timestamps, request ids, the
  curl version, and the seconds of a rate-limit answer (checked on their own instead).
- A value shortened with ``…`` (``"onMxAYnNqMDx…"``) stands for any value without quotes or spaces.
- For ``curl -i`` outputs, the status line and the body must match; the headers shown must be some of the real
  ones, in their real order (the README trims the rest). Any other output must match line for line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.database import create_database, drop_database
from tests.support.server import ROOT, migrate, serve, service_env

SCRIPT = ROOT / "docs" / "examples" / "session.sh"
README = ROOT / "README.md"
SECTION = "### Example session"
API_LINE = "API=http://127.0.0.1:8000/api/v1"  # the script's first command; the replay points it at the test server
MARK = "@@ next command @@"


@dataclass(frozen=True)
class Step:
    command: str
    output: tuple[str, ...]


def _join_continued(lines: list[str], start: int) -> tuple[str, int]:
    """The command starting at ``lines[start]``, with its backslash-continued lines; and the index after it."""
    end = start
    while lines[end].endswith("\\") and end + 1 < len(lines):
        end += 1
    return "\n".join(lines[start : end + 1]), end + 1


def script_parts(text: str) -> tuple[str, list[str]]:
    """The script's header (up to its first blank line) and its commands, one entry per command."""
    header, _, body = text.partition("\n\n")
    lines = body.splitlines()
    commands: list[str] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        command, i = _join_continued(lines, i)
        commands.append(command)
    return header, commands


def readme_steps(text: str) -> list[Step]:
    """Every ``$ command`` of the console blocks in the README's example section, with the output shown after it."""
    start = text.index(f"\n{SECTION}\n")
    following = re.search(r"^#{1,3} ", text[start + len(SECTION) + 2 :], flags=re.MULTILINE)
    section = text[start : start + len(SECTION) + 2 + following.start()] if following else text[start:]
    steps: list[Step] = []
    for block in re.findall(r"^```console\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            assert lines[i].startswith("$ "), f"output before any command in the README: {lines[i]!r}"
            lines[i] = lines[i][2:]
            command, i = _join_continued(lines, i)
            output: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            while output and not output[-1].strip():
                output.pop()
            steps.append(Step(command, tuple(output)))
    return steps


def replay(header: str, commands: Sequence[str], api: str, home: Path) -> list[str]:
    """Run the commands in one bash process, as the script would run them; return each command's output.

    ``home`` stands in for the developer's home folder, so no ~/.curlrc or ~/.jq changes what the commands print.
    """
    assert commands[0] == API_LINE
    driver = [header, f"API={api}"]
    for command in commands[1:]:
        driver += [f"printf '\\n%s\\n' '{MARK}'", command]
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, "-c", "\n".join(driver)],
        env={**os.environ, "HOME": str(home), "CURL_HOME": str(home), "XDG_CONFIG_HOME": str(home), "NO_PROXY": "*"},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=home,
        check=False,
    )
    assert done.returncode == 0 and not done.stderr, f"the script failed ({done.returncode}):\n{done.stderr}"
    chunks = done.stdout.replace("\r\n", "\n").split(f"\n{MARK}\n")
    assert chunks[0] == ""
    return ["", *(chunk.rstrip("\n") for chunk in chunks[1:])]


VOLATILE = [
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z"), "<time>"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "<request id>"),
    (re.compile(r"\bcurl/[0-9.]+"), "curl/<version>"),
    (re.compile(r"^(retry-after|ratelimit-reset): \d+$"), r"\1: <seconds>"),
    (re.compile(r"try again in \d+ seconds"), "try again in <seconds> seconds"),
]
SHORTENED = re.compile(r'[^"\s…]*…')


def _normal(line: str) -> str:
    for pattern, placeholder in VOLATILE:
        line = pattern.sub(placeholder, line)
    return line


def _line_matches(shown: str, real: str) -> bool:
    pieces = SHORTENED.split(_normal(shown))
    return re.fullmatch(r'[^"\s]+'.join(map(re.escape, pieces)), _normal(real)) is not None


def matches(shown: Sequence[str], real: str) -> bool:
    """Whether the README's (abridged) output ``shown`` is true of the ``real`` output."""
    real_lines = real.split("\n") if real else []
    if not real_lines or not real_lines[0].startswith("HTTP/"):
        return len(shown) == len(real_lines) and all(map(_line_matches, shown, real_lines))
    real_head, real_body = _split_response(real_lines)
    shown_head, shown_body = _split_response(list(shown))
    if not shown_head or not _line_matches(shown_head[0], real_head[0]):
        return False
    if len(shown_body) != len(real_body) or not all(map(_line_matches, shown_body, real_body)):
        return False
    remaining = iter(real_head[1:])  # the headers shown: a subsequence of the real ones
    return all(any(_line_matches(header, candidate) for candidate in remaining) for header in shown_head[1:])


def _split_response(lines: list[str]) -> tuple[list[str], list[str]]:
    blank = lines.index("") if "" in lines else len(lines)
    return lines[:blank], lines[blank + 1 :]


def test_the_readme_shows_exactly_the_scripts_commands() -> None:
    _, commands = script_parts(SCRIPT.read_text())
    shown = [step.command for step in readme_steps(README.read_text())]

    assert shown == commands, "README.md's Example session and docs/examples/session.sh differ: keep them in step"


@pytest.fixture(params=["sqlite", "postgresql"])
async def api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """``usermgmt serve`` on a fresh database, as a newcomer starts it (only the bcrypt cost is lowered)."""
    settings = {"bcrypt_rounds": "10"}
    database_url = await create_database() if request.param == "postgresql" else None
    if database_url:
        settings["database_url"] = database_url
    env = service_env(tmp_path / "var", **settings)
    try:
        migrate(env)
        with serve(env) as base:
            yield f"{base}/api/v1"
    finally:
        if database_url:
            await drop_database(database_url)


def test_the_script_gives_the_outputs_the_readme_shows(api: str, tmp_path: Path) -> None:
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    assert not missing, f"the README example test needs {', '.join(missing)} on PATH (apt-get install curl jq)"
    header, commands = script_parts(SCRIPT.read_text())
    steps = readme_steps(README.read_text())
    assert [step.command for step in steps] == commands

    outputs = replay(header, commands, api, home=tmp_path)

    wrong = [
        "\n".join([f"$ {step.command}", "--- the README shows:", *step.output, "--- the service answered:", real])
        for step, real in zip(steps, outputs, strict=True)
        if not matches(step.output, real)
    ]
    assert not wrong, "outputs differ from README.md's Example session:\n\n" + "\n\n".join(wrong)
    retry_after = re.search(r"^retry-after: (\d+)$", outputs[-1], flags=re.MULTILINE)
    assert retry_after and 0 < int(retry_after.group(1)) <= 900  # 15 minutes from the first failure


BODY = '{"id":"01a2376f-7a70-7264-b7e4-6a080e6604de","token":"fEmatESOHlrPujyjLK5_-qQ3B","count":8}'
RESPONSE = "\n".join(
    [
        "HTTP/1.1 201 Created",
        "content-type: application/json",
        "location: /api/v1/users/me",
        "x-request-id: 0c3c70cd6e014aa0b08b1acda6865d32",
        "",
        BODY,
    ]
)
ABRIDGED = '{"id":"01a21d4d-f7e9-7652-bd95-2aaf5d0cd6d8","token":"onMxAYnN…","count":8}'  # another run's values


@pytest.mark.parametrize(
    ("shown", "true"),
    [
        pytest.param(RESPONSE.split("\n"), True, id="verbatim"),
        pytest.param(["HTTP/1.1 201 Created", "", ABRIDGED], True, id="another-run-shortened"),
        pytest.param(["HTTP/1.1 201 Created", "x-request-id: fa41", "", BODY], False, id="not-a-request-id"),
        pytest.param(["HTTP/1.1 201 Created", "", ABRIDGED.replace(":8", ":7")], False, id="wrong-count"),
        pytest.param(["HTTP/1.1 200 OK", "", BODY], False, id="wrong-status"),
        pytest.param(["HTTP/1.1 201 Created", "cache-control: no-store", "", BODY], False, id="header-not-sent"),
        pytest.param(
            ["HTTP/1.1 201 Created", "location: /api/v1/users/me", "content-type: application/json", "", BODY],
            False,
            id="headers-out-of-order",
        ),
        pytest.param(["HTTP/1.1 201 Created", "location: /api/v1/users/me"], False, id="no-body"),
        pytest.param([BODY], False, id="no-status-line"),
        pytest.param(["HTTP/1.1 201 Created", "", '{"id":"…","token":"…","count":8'], False, id="body-cut-short"),
    ],
)
def test_the_comparison_accepts_abridgements_only(shown: list[str], true: bool) -> None:
    assert matches(shown, RESPONSE) is true


def test_a_shortened_value_stays_inside_its_quotes() -> None:
    real = '{"access_token":"eyJhbGci.abc","token_type":"bearer"}'

    assert matches(['{"access_token":"eyJhbGci…","token_type":"bearer"}'], real)
    assert not matches(['{"access_token":"eyJhbGci…"}'], real)
    assert not matches(["…"], real)
    assert not matches([], real)
    assert matches([], "")
