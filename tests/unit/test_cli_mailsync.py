"""crmctl's email-sync commands without the services: the IMAP password is never an
argument, never echoed, never printed; the reply's text comes from one place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli.common import CliError
from shared.cli.mailsync import PASSWORD_ENV, read_body, read_password
from shared.cli.main import app
from tests.infra import ROOT
from tests.terminal import run_at_terminal

CRMCTL = str(Path(sys.executable).parent / "crmctl")
SECRET = "s3cret-Hunter2"
UNREACHABLE = "amqp://guest:guest@127.0.0.1:1/"
CONNECT = (
    "mailbox", "connect", "--firm", "f", "--host", "imap.example.com",
    "--username", "u", "--address", "office@firm.example.com", "--url", UNREACHABLE,
)  # fmt: skip


def env_without_password() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(PASSWORD_ENV, None)
    return env


def test_no_option_takes_the_password_itself() -> None:
    done = CliRunner().invoke(app, [*CONNECT, "--password", SECRET])
    assert done.exit_code == 2  # a usage error: there is no such option
    assert "No such option" in done.output


def test_the_prompt_does_not_echo_the_password() -> None:
    session = run_at_terminal(
        [CRMCTL, *CONNECT],
        prompt="IMAP password: ",
        typed=SECRET,
        env=env_without_password(),
        cwd=ROOT,
    )
    # The password was read: the command went on to the (unreachable) broker.
    assert "broker_unreachable" in session.screen, session.screen
    assert SECRET not in session.screen
    assert session.returncode == 1


def test_without_a_terminal_the_password_is_refused_not_read_from_stdin() -> None:
    # getpass would fall back to reading standard input, echoing it: crmctl refuses.
    done = subprocess.run(
        [CRMCTL, *CONNECT],
        input=f"{SECRET}\n",
        env=env_without_password(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.startswith("error (validation_failed): password: no terminal")
    assert SECRET not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


class TestReadPassword:
    def test_from_a_file_without_its_line_ending(self, tmp_path: Path) -> None:
        file = tmp_path / "password"
        file.write_text(f"{SECRET}\r\n")
        assert read_password(file).get_secret_value() == SECRET

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(PASSWORD_ENV, SECRET)
        assert read_password(None).get_secret_value() == SECRET

    def test_the_file_comes_before_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(PASSWORD_ENV, "other")
        file = tmp_path / "password"
        file.write_text(SECRET)
        assert read_password(file).get_secret_value() == SECRET

    def test_an_empty_password_is_refused(self, tmp_path: Path) -> None:
        file = tmp_path / "password"
        file.write_text("\n")
        with pytest.raises(CliError, match="password: empty"):
            read_password(file)

    def test_it_never_shows_in_a_repr(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(PASSWORD_ENV, SECRET)
        assert SECRET not in repr(read_password(None))


class TestReadBody:
    def test_from_the_option_or_a_file(self, tmp_path: Path) -> None:
        file = tmp_path / "reply.txt"
        file.write_text("Thanks!\nAnna\n")
        assert read_body("Thanks!", None) == "Thanks!"
        assert read_body(None, file) == "Thanks!\nAnna\n"

    @pytest.mark.parametrize("given", [(None, None), ("Thanks!", Path("reply.txt"))])
    def test_exactly_one_of_them(self, given: tuple[str | None, Path | None]) -> None:
        with pytest.raises(CliError, match="--body or --body-file"):
            read_body(*given)
