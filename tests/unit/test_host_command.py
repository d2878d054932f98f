"""The one runner of host commands: outputs, timeouts, missing binaries, another user."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from mailctl.host import command, health, install


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_both_outputs_and_the_status_come_back() -> None:
    """Standard output and error are kept apart, and a non-zero exit is not ok."""
    ran = command.run(
        python("import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"), timeout=10
    )
    assert (ran.status, ran.stdout, ran.stderr) == (3, "out\n", "err")
    assert ran.output == "out\nerr"
    assert not ran.ok
    assert command.run(python("pass"), timeout=10).ok


def test_a_command_that_hangs_is_stopped_and_says_so() -> None:
    """A command past its timeout is killed; the result names the timeout, nothing raises."""
    started = time.monotonic()
    ran = command.run(python("import time; time.sleep(30)"), timeout=0.3)
    assert time.monotonic() - started < 10
    assert ran.timed_out
    assert not ran.ok
    assert ran.status == command.TIMED_OUT_STATUS
    assert ran.stderr.endswith("no answer within 0.3 s")


def test_a_missing_binary_is_a_result_not_a_crash(tmp_path: Path) -> None:
    """A program that does not exist comes back as not started, with the reason."""
    ran = command.run([str(tmp_path / "no-such-program"), "reload"], timeout=5)
    assert not ran.started
    assert ran.status == command.NOT_RUNNABLE_STATUS
    assert "no-such-program" in ran.stderr


def test_output_that_is_not_utf8_is_decoded_without_raising() -> None:
    """A daemon printing Latin-1 bytes still yields a readable result."""
    ran = command.run(python("import sys; sys.stdout.buffer.write(b'caf\\xe9 ok')"), timeout=10)
    assert ran.ok
    assert ran.stdout == "caf\ufffd ok"


def test_the_command_gets_no_input() -> None:
    """Nothing is read from mailctl's own standard input: a read sees end of file at once."""
    ran = command.run(python("import sys; print(repr(sys.stdin.read()))"), timeout=10)
    assert ran.stdout == "''\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can run a command as another user")
def test_root_runs_a_probe_as_the_daemons_user() -> None:
    """With a user, the command runs as that user, from /."""
    ran = health.run_as(["id", "-un"], "nobody", timeout=10)
    assert (ran.status, ran.stdout) == (0, "nobody\n")
    where = health.run_as(["pwd"], "nobody", timeout=10)
    assert where.stdout == "/\n"


def test_probe_and_setup_outputs_are_cut_to_their_tails() -> None:
    """Long outputs are cut to their last characters, where the error usually is."""
    code = "print('x' * 5000 + 'END')"
    probe = health.run_as(python(code), None, timeout=10)
    assert len(probe.stdout) == health.OUTPUT_TAIL_CHARS
    assert probe.stdout.endswith("END\n")
    status, output = install.SystemRunner().run(python(code), timeout=10)
    assert status == 0
    assert len(output) == install.OUTPUT_TAIL_CHARS
    assert output.endswith("END\n")


def test_setup_runner_reports_a_timeout_like_a_failed_check() -> None:
    """Setup sees a hanging check as a failure with a message, not as an exception."""
    status, output = install.SystemRunner().run(python("import time; time.sleep(30)"), 0.3)
    assert status == command.TIMED_OUT_STATUS
    assert output == "no answer within 0.3 s"
