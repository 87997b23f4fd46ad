"""The CLI's edges: errors as JSON, a closed output pipe, tables that stay aligned in colour."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.output import Printer
from sandbox.runtime.state import StateDir
from tests.e2e.conftest import Cli


def test_an_error_under_json_is_a_json_object(cli: Cli) -> None:
    done = cli("up", "no-such-profile", "--json")
    assert done.returncode == 2
    error = json.loads(done.stdout)
    assert error["error"] == "ProfileNotFound"
    assert "no-such-profile" in error["message"]
    assert error["exit_code"] == 2
    assert "hint" in error


def test_an_error_without_json_is_a_sentence(cli: Cli) -> None:
    done = cli("probe", "10.0.0.1:80")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: 10.0.0.1 is not a loopback address")


@pytest.fixture
def closed_pipe() -> Iterator[int]:
    """The write end of a pipe whose reader is already gone: every write gets EPIPE."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        yield write_end
    finally:
        os.close(write_end)


def _into(cli: Cli, fd: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox", *args],
        stdout=fd,
        stderr=subprocess.PIPE,
        text=True,
        env=cli.env,
        cwd=cli.cwd,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [("ports",), ("ports", "--json"), ("profiles",)])
def test_a_closed_pipe_ends_quietly(cli: Cli, closed_pipe: int, args: tuple[str, ...]) -> None:
    done = _into(cli, closed_pipe, *args)
    assert done.returncode == 141, done.stderr
    assert done.stderr == ""


def test_help_into_a_closed_pipe_is_quiet_too(cli: Cli, closed_pipe: int) -> None:
    # click handles EPIPE while printing help itself (exit 1), before any command runs
    done = _into(cli, closed_pipe, "--help")
    assert done.returncode in (1, 141)
    assert done.stderr == ""


def test_up_detached_into_a_closed_pipe_leaves_nothing_running(
    cli: Cli,
    closed_pipe: int,
    write_profile: Callable[[dict[str, Any]], Path],
    spare_loopback: Any,
) -> None:
    (address,) = spare_loopback(1)
    path = write_profile(
        {"name": "piped", "services": {"api": {"kind": "http", "address": str(address)}}}
    )
    done = _into(cli, closed_pipe, "up", str(path), "-d")
    assert done.returncode == 141, done.stderr
    assert cli.json("status") == {"sandboxes": []}


def test_logs_into_a_closed_pipe_ends_quietly(
    cli: Cli,
    closed_pipe: int,
    write_profile: Callable[[dict[str, Any]], Path],
    spare_loopback: Any,
) -> None:
    (address,) = spare_loopback(1)
    path = write_profile(
        {"name": "talky", "services": {"api": {"kind": "http", "address": str(address)}}}
    )
    assert cli("up", str(path), "-d").returncode == 0
    try:
        StateDir(cli.state, "talky").log_path("api").write_text("one\ntwo\n")
        done = _into(cli, closed_pipe, "logs", "talky")
        assert done.returncode == 141, done.stderr
        assert done.stderr == ""
    finally:
        assert cli("down", "talky").returncode == 0


def test_colour_does_not_break_table_alignment() -> None:
    buffer = io.StringIO()
    out = Printer(out=buffer, colour=True)
    out.table(["STATE", "NEXT"], [(out.paint("open", "green"), "a"), ("refused", "b")])
    plain = [line.replace("\x1b[32m", "").replace("\x1b[0m", "").replace("\x1b[1m", "")
             for line in buffer.getvalue().splitlines()]  # fmt: skip
    assert len(plain) == 3
    column = plain[0].index("NEXT")
    assert column == len("refused  ")
    assert (plain[1][column], plain[2][column]) == ("a", "b")


@pytest.mark.parametrize("command", ["probe", "explain"])
def test_a_name_other_than_localhost_is_refused_not_looked_up(cli: Cli, command: str) -> None:
    done = cli(command, "printer.example:631")
    assert done.returncode == 2, done.stderr
    assert "looks up no name but localhost" in done.stderr
