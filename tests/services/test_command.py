"""Command services: placeholders, env, real programs started, watched, restarted, stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import BindError, ConflictError, ExitCode, NotReadyError
from sandbox.proc.marker import own_marker
from sandbox.profile.loader import load_profile_data
from sandbox.profile.models import CommandService
from sandbox.runtime.sandbox import Sandbox
from sandbox.services import command
from sandbox.services.command import (
    CommandConfigError,
    Program,
    render_command,
    render_env,
    start_command,
)
from sandbox.services.context import Peer, ServiceContext
from tests.helpers import gone
from tests.services.helpers import DEADLINE, Listen, connection, context, read_to_eof

SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"
SERVE = f"{shlex.quote(sys.executable)} {shlex.quote(str(SERVER))} {{address}} {{port}}"
RunProgram = Callable[..., Awaitable[Program]]


def spec(run: str, **fields: Any) -> CommandService:
    return CommandService.model_validate({"kind": "command", "run": run, **fields})


def ctx_with_peers(log: Callable[[str], None] | None = None) -> ServiceContext:
    db = Peer(name="db", address="127.0.0.3", port=5432, url="tcp://127.0.0.3:5432")
    return ServiceContext(
        name="api",
        address="127.0.0.2",
        port=8000,
        url="http://127.0.0.2:8000",
        profile_dir=None,
        peers={"db": db, "api": Peer("api", "127.0.0.2", 8000, "http://127.0.0.2:8000")},
        log=log or (lambda line: None),
    )


async def until(check: Callable[[], object], what: str, timeout: float = DEADLINE) -> None:
    """Poll `check` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def get(host: str, port: int, path: str) -> str:
    async with connection(host, port) as (reader, writer):
        writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        raw = await read_to_eof(reader)
    return raw.split(b"\r\n\r\n", 1)[1].decode()


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


@pytest.fixture
async def run_program() -> AsyncIterator[RunProgram]:
    """start_command, with every program closed afterwards (its groups SIGKILLed if that fails)."""
    started: list[Program] = []

    async def go(service: CommandService, ctx: ServiceContext, **options: Any) -> Program:
        options.setdefault("env", dict(os.environ))
        program = await start_command(service, ctx, **options)
        started.append(program)
        return program

    try:
        yield go
    finally:
        for program in reversed(started):
            try:
                await program.close()
            except Exception:
                for proc in program._processes:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(proc.pid, signal.SIGKILL)
                raise


# -- placeholders ----------------------------------------------------------------------------


def test_placeholders_are_filled_after_splitting() -> None:
    run = "prog --bind {address}:{port} 'two words {name}' --db={services.db.url} {url}"
    assert render_command(run, ctx_with_peers()) == [
        "prog",
        "--bind",
        "127.0.0.2:8000",
        "two words api",
        "--db=tcp://127.0.0.3:5432",
        "http://127.0.0.2:8000",
    ]


def test_every_peer_attribute_is_a_placeholder() -> None:
    run = "x {services.db.address} {services.db.port} {services.db.name} {services.api.port}"
    assert render_command(run, ctx_with_peers())[1:] == ["127.0.0.3", "5432", "db", "8000"]


def test_python_is_the_interpreter_sandbox_runs_on() -> None:
    assert render_command("{python} -m app", ctx_with_peers()) == [sys.executable, "-m", "app"]


def test_shell_variables_and_doubled_braces_are_left_alone() -> None:
    run = 'sh -c \'echo ${HOME} {{port}} {port} {"a": {"b": 1}}\''
    assert render_command(run, ctx_with_peers()) == [
        "sh",
        "-c",
        'echo ${HOME} {port} 8000 {"a": {"b": 1}}',
    ]


@pytest.mark.parametrize("typo", ["{adress}", "{services.cache.url}", "{services.db.host}"])
def test_an_unknown_placeholder_is_a_profile_error(typo: str) -> None:
    with pytest.raises(CommandConfigError) as caught:
        render_command(f"prog {typo}", ctx_with_peers())
    error = caught.value
    assert error.exit_code == ExitCode.INVALID_PROFILE
    assert typo in error.message
    assert "services.api.run" in error.message
    assert "{address}" in error.message
    assert "(services: api, db)" in error.message
    assert error.hint is not None
    assert "{" + typo + "}" in error.hint


@pytest.mark.parametrize(
    ("run", "says"), [("prog 'unclosed", "cannot be split"), ("   ", "is empty")]
)
def test_a_run_line_that_cannot_be_split_is_a_profile_error(run: str, says: str) -> None:
    with pytest.raises(CommandConfigError, match=says):
        render_command(run, ctx_with_peers())


def test_env_values_take_placeholders_and_override_the_base() -> None:
    service = spec("prog", env={"DB": "{services.db.url}/0", "MODE": "test"})
    env = render_env(service, ctx_with_peers(), {"MODE": "prod", "SANDBOX_DB_PORT": "5432"})
    assert env == {
        "MODE": "test",
        "SANDBOX_DB_PORT": "5432",
        "DB": "tcp://127.0.0.3:5432/0",
        "PYTHONUNBUFFERED": "1",
    }


def test_python_output_is_unbuffered_unless_the_profile_says_otherwise() -> None:
    assert render_env(spec("prog"), ctx_with_peers(), {})["PYTHONUNBUFFERED"] == "1"
    own = spec("prog", env={"PYTHONUNBUFFERED": ""})
    assert render_env(own, ctx_with_peers(), {})["PYTHONUNBUFFERED"] == ""


def test_an_unknown_placeholder_in_env_names_the_variable() -> None:
    with pytest.raises(CommandConfigError, match=r"services\.api\.env\.DB"):
        render_env(spec("prog", env={"DB": "{db_url}"}), ctx_with_peers(), {})


# -- a real program --------------------------------------------------------------------------


async def test_program_runs_in_its_own_group_with_env_and_cwd(
    listen: Listen, run_program: RunProgram, tmp_path: Path
) -> None:
    (tmp_path / "work").mkdir()
    lines: list[str] = []
    sock = listen("127.0.0.1")
    db = Peer(name="db", address="127.0.0.9", port=6379, url="tcp://127.0.0.9:6379")
    ctx = context("api", sock, peers={"db": db}, profile_dir=tmp_path, log=lines.append)
    service = spec(SERVE, cwd="work", env={"EXTRA": "{services.db.port}"})
    env = {"PATH": os.environ["PATH"], "SANDBOX_DB_HOST": "127.0.0.9"}
    program = await run_program(service, ctx, env=env, held=sock)
    assert sock.fileno() == -1, "the held socket must be closed before the start"
    await until(lambda: any(line.startswith("ready on") for line in lines), "the ready line")

    info = json.loads(await get(ctx.address, ctx.port, "/env"))
    assert info["pid"] == program.pid
    assert info["pgid"] == program.pgid == program.pid != os.getpgrp()
    # The mark names this process (the supervisor) so `down` finds unrecorded leftovers.
    assert info["env"] == {"SANDBOX_DB_HOST": "127.0.0.9", "SANDBOX_SUPERVISOR": own_marker()}
    assert info["extra"] == "6379"
    assert info["cwd"] == str(tmp_path / "work")
    assert program.start_time is not None
    assert abs(program.start_time - time.time()) < 30
    assert f"ready on {ctx.address}:{ctx.port}" in lines


async def test_cwd_defaults_to_the_profile_folder(run_program: RunProgram, tmp_path: Path) -> None:
    program = await run_program(spec("pwd"), context("api", profile_dir=tmp_path))
    await until(program.exited, "the exit")
    assert list(program.tail) == [str(tmp_path)]


async def test_a_missing_cwd_is_a_profile_error(run_program: RunProgram, tmp_path: Path) -> None:
    with pytest.raises(CommandConfigError, match="does not exist"):
        await run_program(spec("pwd", cwd="nope"), context("api", profile_dir=tmp_path))


async def test_a_missing_program_is_not_ready_naming_it(run_program: RunProgram) -> None:
    with pytest.raises(NotReadyError) as caught:
        await run_program(spec("no-such-program-here --flag"), context("api"))
    assert "'no-such-program-here'" in caught.value.message
    assert caught.value.exit_code == ExitCode.NOT_READY


async def test_a_taken_port_is_a_conflict_and_nothing_starts(
    listen: Listen, run_program: RunProgram, tmp_path: Path
) -> None:
    taken = listen("127.0.0.1")
    ctx = context("api", taken, profile_dir=tmp_path)
    with pytest.raises(BindError) as caught:
        await run_program(spec("touch started"), ctx)
    assert "already in use" in caught.value.message
    assert caught.value.exit_code == ExitCode.CONFLICT
    assert not (tmp_path / "started").exists()


async def test_an_exit_before_ready_quotes_the_code_and_the_last_lines(
    run_program: RunProgram,
) -> None:
    lines = "; ".join(f"echo line{i}" for i in range(15))
    run = f"sh -c '{lines}; echo \"config missing\" >&2; exit 7'"
    program = await run_program(spec(run), context("api"))
    t0 = time.monotonic()
    await until(program.exited, "the exit")
    sentence = program.exited()
    assert sentence is not None
    assert sentence.startswith("the program exited with code 7 before it was ready")
    assert "config missing" in sentence
    assert "line14" in sentence
    assert "line5" not in sentence  # only the last lines
    assert time.monotonic() - t0 < 2.0


async def test_a_program_killed_by_a_signal_says_which(run_program: RunProgram) -> None:
    program = await run_program(spec("sh -c 'kill -KILL $$'"), context("api"))
    await until(program.exited, "the exit")
    assert "was killed by SIGKILL" in str(program.exited())
    assert "(no output)" in str(program.exited())


async def test_ready_log_is_set_by_a_matching_line_only(
    listen: Listen, run_program: RunProgram
) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    ctx = context("api", sock, log=lines.append)
    run = SERVE + " --say 'warming up'"
    service = spec(run, ready={"log": r"ready on \S+:\d+$"})
    program = await run_program(service, ctx, held=sock)
    async with asyncio.timeout(DEADLINE):
        await program.log_matched.wait()
    assert lines[0] == "warming up"
    assert lines[-1] == f"ready on {ctx.address}:{ctx.port}"
    assert program.exited() is None


async def test_a_ready_log_search_out_of_time_is_logged_and_the_next_line_still_counts(
    run_program: RunProgram, tmp_path: Path
) -> None:
    # Searched from every position, `\w+@\w+\.com` runs to the one `@` again and again:
    # a minute on this 200 kB line without the time limit.
    script = tmp_path / "say.py"
    script.write_text(
        "import sys, time\n"
        "print('a' * 100_000 + '@' + 'b' * 100_000, flush=True)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    lines: list[str] = []
    service = spec(f"{{python}} {script}", ready={"log": r"(\w+@\w+\.com)|^ready$"})
    program = await run_program(service, context("api", log=lines.append))
    async with asyncio.timeout(20.0):
        await program.log_matched.wait()
    assert any(line.startswith("[sandbox] ready.log: /") and "given up" in line for line in lines)
    assert lines[-1] == "ready"


# -- stopping --------------------------------------------------------------------------------


async def test_close_kills_background_grandchildren_even_outside_the_group(
    run_program: RunProgram,
) -> None:
    lines: list[str] = []
    run = "sh -c 'sleep 1000 & setsid sleep 1001 & echo started; wait'"
    program = await run_program(spec(run), context("api", log=lines.append))
    await until(lambda: "started" in lines and len(children_of(program.pid)) == 2, "children")
    kids = children_of(program.pid)
    try:
        assert any(os.getpgid(kid) != program.pgid for kid in kids)  # setsid left the group
        await program.close()
        assert all(gone(pid) for pid in [program.pid, *kids])
        await program.close()  # idempotent
    finally:
        for kid in kids:  # the one outside the group is no fixture's to kill
            if not gone(kid):
                os.kill(kid, signal.SIGKILL)


async def test_a_program_that_ignores_sigterm_is_killed_after_the_grace(
    listen: Listen, run_program: RunProgram
) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    service = spec(SERVE + " --ignore-term", stop_timeout="300ms")
    program = await run_program(service, context("api", sock, log=lines.append), held=sock)
    await until(lambda: any(line.startswith("ready on") for line in lines), "the ready line")
    t0 = time.monotonic()
    await program.close()
    took = time.monotonic() - t0
    assert program.process.returncode == -signal.SIGKILL
    assert 0.3 <= took < 3.0


async def test_a_forced_close_skips_the_grace(listen: Listen, run_program: RunProgram) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    service = spec(SERVE + " --ignore-term", stop_timeout="30s")
    ctx = context("api", sock, log=lines.append)
    program = await run_program(service, ctx, held=sock, forced=lambda: True)
    await until(lambda: any(line.startswith("ready on") for line in lines), "the ready line")
    t0 = time.monotonic()
    await program.close()
    assert time.monotonic() - t0 < 5.0
    assert program.process.returncode == -signal.SIGKILL


async def test_a_force_during_the_grace_cuts_it_short(
    listen: Listen, run_program: RunProgram
) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    forced = asyncio.Event()
    service = spec(SERVE + " --ignore-term", stop_timeout="30s")
    ctx = context("api", sock, log=lines.append)
    program = await run_program(service, ctx, held=sock, forced=forced.is_set)
    await until(lambda: any(line.startswith("ready on") for line in lines), "the ready line")
    closing = asyncio.create_task(program.close())
    try:
        # The program says when it ignores the SIGTERM: from then on the close is in its grace.
        await until(lambda: "got SIGTERM, ignoring it" in lines, "the ignored SIGTERM")
        assert not closing.done()
        t0 = time.monotonic()
        forced.set()
        async with asyncio.timeout(DEADLINE):
            await closing
        assert time.monotonic() - t0 < 2.0
        assert program.process.returncode == -signal.SIGKILL
    finally:
        closing.cancel()


async def test_the_stop_signal_is_configurable(run_program: RunProgram) -> None:
    lines: list[str] = []
    run = "sh -c 'trap \"echo got INT; exit 0\" INT; echo armed; while :; do sleep 0.05; done'"
    service = spec(run, stop_signal="SIGINT")
    program = await run_program(service, context("api", log=lines.append))
    await until(lambda: "armed" in lines, "the trap")
    await program.close()
    assert "got INT" in lines


# -- restarts --------------------------------------------------------------------------------


async def test_on_failure_restarts_with_backoff_until_it_serves(
    listen: Listen, run_program: RunProgram, tmp_path: Path
) -> None:
    sock = listen("127.0.0.1")
    lines: list[str] = []
    seen: list[tuple[int, int]] = []
    run = SERVE + f" --fail-first 2 --counter {shlex.quote(str(tmp_path / 'starts'))}"
    service = spec(run, restart="on-failure", max_restarts=3, ready={"log": "^ready on"})
    ctx = context("api", sock, log=lines.append)
    t0 = time.monotonic()
    program = await run_program(
        service, ctx, held=sock, on_restart=lambda p: seen.append((p.pid, p.restarts))
    )
    first = program.pid
    async with asyncio.timeout(DEADLINE):
        await program.log_matched.wait()
    took = time.monotonic() - t0
    assert program.restarts == 2
    assert [n for _, n in seen] == [1, 2]
    assert seen[-1][0] == program.pid != first
    assert took >= command.BACKOFF_FIRST * 3  # 0.2 s, then 0.4 s
    assert "[sandbox] the program exited with code 1" in lines
    assert "[sandbox] restart 1 of 3 in 0.2 s" in lines
    assert "[sandbox] restart 2 of 3 in 0.4 s" in lines
    assert program.exited() is None
    assert await get(ctx.address, ctx.port, "/") == "ok\n"


async def test_restarts_stop_after_max_restarts(run_program: RunProgram) -> None:
    hooks: list[int] = []
    service = spec("sh -c 'echo try; exit 1'", restart="on-failure", max_restarts=2)
    program = await run_program(service, context("api"), on_restart=lambda p: hooks.append(1))
    await until(program.exited, "the last exit")
    assert program.restarts == 2
    assert len(hooks) == 2
    assert "exited with code 1 after 2 restarts before it was ready" in str(program.exited())
    assert list(program.tail) == ["try"] * 3


@pytest.mark.parametrize(("run", "restart"), [("true", "on-failure"), ("false", "no")])
async def test_no_restart_for_a_clean_exit_or_without_the_policy(
    run_program: RunProgram, run: str, restart: str
) -> None:
    program = await run_program(spec(run, restart=restart), context("api"))
    await until(program.exited, "the exit")
    assert program.restarts == 0
    assert len(program._processes) == 1


async def test_close_cancels_a_pending_restart(
    run_program: RunProgram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "BACKOFF_FIRST", 60.0)
    lines: list[str] = []
    service = spec("false", restart="on-failure", max_restarts=5)
    program = await run_program(service, context("api", log=lines.append))
    await until(lambda: "[sandbox] restart 1 of 5 in 5 s" in lines, "the restart notice")
    t0 = time.monotonic()
    await program.close()
    assert time.monotonic() - t0 < 2.0
    assert program.restarts == 0
    assert len(program._processes) == 1


async def test_a_restart_onto_a_taken_port_gives_up_and_says_why(
    listen: Listen, run_program: RunProgram
) -> None:
    sock = listen("127.0.0.1")
    address, port = sock.getsockname()[:2]
    service = spec("sh -c 'exit 1'", restart="on-failure")
    program = await run_program(service, context("api", sock), held=sock)
    # The program never binds; take its port at once, well before the first backoff ends.
    with socket.create_server((address, port)):
        await until(program.exited, "the failed restart")
    sentence = str(program.exited())
    assert "exited with code 1 and could not be restarted" in sentence
    assert "already in use" in sentence
    assert program.restarts == 0


# -- the owner check (through the orchestrator) ---------------------------------------------


async def test_a_listener_of_someone_else_is_a_conflict_not_readiness(
    spare_loopback: Callable[[int], list[Any]],
) -> None:
    (address,) = spare_loopback(1)
    profile = load_profile_data(
        {
            "name": "impostor",
            "services": {"app": {"kind": "command", "address": str(address), "run": "sleep 1000"}},
        }
    )
    sandbox = Sandbox(profile, wait_timeout=DEADLINE)
    starting = asyncio.create_task(sandbox.start())
    impostor: socket.socket | None = None
    try:
        await until(lambda: sandbox.services.get("app") and sandbox.services["app"].pid, "a pid")
        app = sandbox.services["app"]
        pid = app.pid
        assert pid is not None
        impostor = socket.create_server((app.address, app.port))
        with pytest.raises(ConflictError) as caught:
            async with asyncio.timeout(DEADLINE + 5):
                await starting
        assert "not the program the sandbox started" in caught.value.message
        assert f"pid {os.getpid()}" in caught.value.message
        assert gone(pid)
    finally:
        if impostor is not None:
            impostor.close()
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(BaseException):
            await starting
        await sandbox.stop()
