"""`usermgmt send-test-email ADDRESS`: the real command, against a real SMTP server on loopback and with the file
mailer; it says where the message went, or why it did not, with the exit status to match."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.proxy import free_port
from tests.support.server import BIN, ROOT, service_env
from tests.support.smtp import Mailbox


def send_test_email(env: dict[str, str], address: str = "ada@example.com") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIN / "usermgmt", "send-test-email", address],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_it_sends_through_smtp_and_says_so(tmp_path: Path) -> None:
    async with Mailbox() as box:
        env = service_env(tmp_path / "var", smtp_host=box.host, smtp_port=str(box.port), smtp_security="none")

        done = send_test_email(env)

        assert done.returncode == 0, done.stderr
        [received] = box.messages
    assert f"sent the test message to ada@example.com via 127.0.0.1:{box.port}" in done.stdout
    assert received.message_id in done.stdout
    assert received.template == "test_email"
    assert received.subject == "usermgmt test message"
    assert "ada@example.com" in received.text
    assert not (tmp_path / "var" / "mail").exists()


def test_without_an_smtp_host_it_writes_a_file_and_names_it(tmp_path: Path) -> None:
    done = send_test_email(service_env(tmp_path / "var"))

    assert done.returncode == 0, done.stderr
    [written] = list((tmp_path / "var" / "mail").glob("*-test_email-*.eml"))
    assert f"USERMGMT_SMTP_HOST is unset: wrote the test message for ada@example.com to {written}" in done.stdout


def test_a_server_that_is_down_is_an_error_with_exit_status_1(tmp_path: Path) -> None:
    env = service_env(
        tmp_path / "var", smtp_host="127.0.0.1", smtp_port=str(free_port()), smtp_security="none", smtp_timeout="2"
    )

    done = send_test_email(env)

    assert done.returncode == 1
    assert "could not send the test message (temporary failure): cannot connect to the SMTP server" in done.stderr
    assert done.stdout == ""


def test_a_malformed_address_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    done = send_test_email(service_env(tmp_path / "var"), "not-an-address")

    assert done.returncode == 2
    assert "not an email address" in done.stderr
    assert not (tmp_path / "var").exists()
