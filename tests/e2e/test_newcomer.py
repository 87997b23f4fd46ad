"""The first hour through the real CLI: moves said out loud, `down` by profile, JSON errors,
progress on a terminal, completion and colour that keeps tables aligned."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli
from tests.helpers import listening

pytestmark = pytest.mark.e2e

WriteProfile = Callable[[dict[str, Any]], Path]


@pytest.fixture
def held(spare_loopback: Any) -> Iterator[socket.socket]:
    """A listener of ours on a spare address, in the way of a profile's literal address:port."""
    (address,) = spare_loopback(1)
    sock = socket.socket()
    try:
        sock.bind((str(address), 0))
        sock.listen()
        yield sock
    finally:
        sock.close()


def _blocked_profile(held: socket.socket, name: str) -> dict[str, Any]:
    address, port = held.getsockname()[:2]
    return {"name": name, "services": {"api": {"kind": "http", "address": address, "port": port}}}


def test_up_d_says_what_moved_in_text_and_json(
    cli: Cli, write_profile: WriteProfile, held: socket.socket
) -> None:
    address, port = held.getsockname()[:2]
    path = write_profile(_blocked_profile(held, "moved-d"))
    up = cli("up", str(path), "-d", "--on-conflict", "next-port")
    assert up.returncode == 0, up.stderr
    (api,) = cli.json("status")["sandboxes"][0]["services"]
    assert api["port"] != port
    assert (
        f"api moved from {address}:{port} to {address}:{api['port']} (--on-conflict next-port): "
        f"{address}:{port} is taken by pid {os.getpid()}"
    ) in up.stderr
    assert f"clients must use {address}:{api['port']}" in up.stderr
    assert cli("down", "moved-d").returncode == 0

    status = cli.json("up", str(path), "-d", "--on-conflict", "next-port")
    (move,) = status["moves"]
    assert move["service"] == "api"
    assert move["from"] == {"address": address, "port": port}
    assert move["to"]["port"] == status["services"][0]["port"] != port
    assert f"pid {os.getpid()}" in move["because"]


def test_up_d_without_a_move_says_nothing_of_moves(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    (address,) = spare_loopback(1)
    api = {"kind": "http", "address": str(address)}
    path = write_profile({"name": "still", "services": {"api": api}})
    up = cli("up", str(path), "-d")
    assert up.returncode == 0, up.stderr
    assert "moved" not in up.stderr
    assert cli.json("status")["sandboxes"][0]["name"] == "still"


def test_foreground_up_says_what_moved(
    cli: Cli, write_profile: WriteProfile, held: socket.socket
) -> None:
    address, port = held.getsockname()[:2]
    path = write_profile(_blocked_profile(held, "moved-fg"))
    proc = cli.popen("up", str(path), "--on-conflict", "next-port")
    try:
        assert proc.stderr is not None
        seen, deadline = "", time.monotonic() + 20
        while "Ctrl-C stops them" not in seen:
            assert time.monotonic() < deadline, seen
            line = proc.stderr.readline()
            assert line, f"up exited early: {seen}"
            seen += line
        assert re.search(
            rf"api moved from {re.escape(address)}:{port} to {re.escape(address)}:\d+ "
            r"\(--on-conflict next-port\)",
            seen,
        ), seen
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()


def test_down_takes_the_path_or_the_profile_name_up_took(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    (address,) = spare_loopback(1)
    profiles = cli.cwd / "profiles"
    profiles.mkdir()
    # The file's name and the profile's name differ: `down` must find the profile's.
    path = profiles / "shop.yaml"
    path.write_text(f"name: shop-dev\nservices:\n  api: {{kind: http, address: '{address}'}}\n")
    for ref in (str(path), "shop"):
        up = cli("up", ref, "-d", "--json")
        assert up.returncode == 0, up.stderr
        port = json.loads(up.stdout)["services"][0]["port"]
        assert port in listening(str(address))
        down = cli("down", ref)
        assert down.returncode == 0, down.stderr
        assert "shop-dev: stopped 1 services" in down.stdout
        assert listening(str(address)) == []

    again = cli("down", str(path))
    assert again.returncode == 0
    assert 'sandbox "shop-dev" is not running' in again.stdout
    assert cli.json("down", "shop") == {"sandboxes": [], "not_running": "shop-dev"}
    missing = cli("down", "profiles/nope.yaml")
    assert missing.returncode == 2
    assert "no profile file at profiles/nope.yaml" in missing.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("up", "no-such-profile"),
        ("up", "no-such-profile", "-d"),
        ("down", "profiles/no-such.yaml"),
        ("status",),
        ("plan", "no-such-profile"),
        ("validate", "no-such-profile"),
    ],
)
def test_errors_under_json_are_json(cli: Cli, args: tuple[str, ...]) -> None:
    cli.state.mkdir(mode=0o700)
    if args == ("status",):
        cli.state.chmod(0o777)  # a state folder others may write is refused
    done = cli(*args, "--json")
    cli.state.chmod(0o700)
    assert done.returncode != 0
    document = json.loads(done.stdout)
    if args[0] == "validate":  # a report per profile, each with its own exit code
        (document,) = document["results"]
        assert document["valid"] is False
        assert document["problems"]
    else:
        assert document["message"]
    assert document["exit_code"] == done.returncode


def _run_on_a_tty(cli: Cli, *args: str) -> tuple[int, str, str]:
    """Run the CLI with stderr on a pseudo-terminal (stdout a pipe); return code, out, err."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox", *args],
            stdout=subprocess.PIPE,
            stderr=slave,
            env=cli.env,
            cwd=cli.cwd,
        )
        os.close(slave)
        slave = -1
        err = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the terminal's last writer is gone
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        out = proc.communicate(timeout=30)[0]
        return proc.returncode, out.decode(), err.decode()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def test_up_d_shows_progress_on_a_terminal_only(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    addresses = spare_loopback(3)
    services = {f"s{i}": {"kind": "http", "address": str(a)} for i, a in enumerate(addresses)}
    path = write_profile({"name": "slow", "services": services})
    code, out, err = _run_on_a_tty(cli, "up", str(path), "-d")
    assert code == 0, err
    assert "slow: starting: 3/3 ready" in err
    assert "\r\x1b[2K" in err  # rewritten in place, and cleared before the table
    assert "SERVICE" in out
    assert cli("down", "slow").returncode == 0

    piped = cli("up", str(path), "-d")
    assert piped.returncode == 0, piped.stderr
    assert "ready" not in piped.stderr.replace("running in the background", "")
    assert "\r" not in piped.stderr


def test_shell_completion_prints_a_bash_script(cli: Cli) -> None:
    env = {**cli.env, "SHELL": "/bin/bash"}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "complete -o default -F _sandbox_completion sandbox" in done.stdout
    words = subprocess.run(
        [sys.executable, "-m", "sandbox"],
        capture_output=True,
        text=True,
        env={**env, "_SANDBOX_COMPLETE": "complete_bash", "COMP_WORDS": "sandbox do",
             "COMP_CWORD": "1"},
        timeout=30,
        check=False,
    )  # fmt: skip
    assert words.stdout.split() == ["doctor", "down"]
    names = subprocess.run(
        [sys.executable, "-m", "sandbox"],
        capture_output=True,
        text=True,
        env={**env, "_SANDBOX_COMPLETE": "complete_bash", "COMP_WORDS": "sandbox up web-",
             "COMP_CWORD": "2"},
        cwd=cli.cwd,
        timeout=30,
        check=False,
    )  # fmt: skip
    assert names.stdout.split() == ["web-db-api"]


def test_colour_codes_do_not_break_table_alignment(
    cli: Cli, write_profile: WriteProfile, spare_loopback: Any
) -> None:
    addresses = spare_loopback(2)
    services = {
        "a": {"kind": "http", "address": str(addresses[0])},
        "longer-name": {"kind": "tcp", "address": str(addresses[1])},
    }
    write_profile({"name": "tint", "services": services})
    assert cli("up", str(cli.cwd / "tint.yaml"), "-d").returncode == 0
    env = {k: v for k, v in cli.env.items() if k != "NO_COLOR"}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "status", "tint"],
        capture_output=True,
        text=True,
        env={**env, "FORCE_COLOR": "1"},
        cwd=cli.cwd,
        timeout=30,
        check=False,
    )
    assert "\x1b[" in done.stdout, "FORCE_COLOR must colour the table"
    plain = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in done.stdout.splitlines()]
    header = next(line for line in plain if line.startswith("SERVICE"))
    rows = [line for line in plain if line.startswith(("a ", "longer-name "))]
    assert len(rows) == 2
    for column in ("KIND", "URL", "STATE", "LATENCY"):
        at = header.index(column)
        assert all(row[at - 1] == " " and row[at] != " " for row in rows), (column, plain)
