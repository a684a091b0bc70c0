"""Running a program at a terminal of its own (a pseudo-terminal), as a person would.

What the program prints, and what the terminal itself echoes of what is typed, come
back as one text: a password typed at a prompt that did not turn echo off shows in it.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import termios
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Session:
    returncode: int
    screen: str
    """Everything that appeared at the terminal, echo included."""


def _take_the_terminal() -> None:
    # In the child, after start_new_session's setsid: standard input (the pty) becomes the
    # controlling terminal, which getpass opens as /dev/tty.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_at_terminal(
    argv: Sequence[str],
    *,
    prompt: str,
    typed: str,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float = 90.0,
) -> Session:
    """Run ``argv`` at a new terminal; once ``prompt`` shows, type ``typed`` and Enter."""
    master, slave = os.openpty()
    process = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, env=dict(env), cwd=cwd,
        start_new_session=True, preexec_fn=_take_the_terminal,  # noqa: PLW1509
    )  # fmt: skip
    os.close(slave)  # the child holds it: reading gets EIO once the child is gone
    screen = b""
    answered = False
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise AssertionError(f"{argv[0]} did not finish in {timeout}s: {screen!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if not answered and prompt.encode() in screen:
                os.write(master, typed.encode() + b"\n")
                answered = True
        returncode = process.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return Session(returncode, screen.decode(errors="replace"))
