"""The fast entry point: `sandbox --help` without typer, `sandbox down`, `sandbox probe` and
`sandbox up -d` without typer, each printing what the typer app prints."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.quick import _STRATEGIES, UpLine, _parse_down, _parse_up
from sandbox.quick_probe import literal_targets, parse_probe
from sandbox.quick_read import RequestsLine, _parse_logs, _parse_requests, _parse_status
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir

TYPER_HELP = "import sys; sys.argv = ['sandbox', '--help']; from sandbox.cli import main; main()"
QUICK = "import sys; sys.argv = ['sandbox', *sys.argv[1:]]; from sandbox.quick import main; main()"


def _run(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **env},
        check=False,
    )


def test_help_is_the_text_typer_prints() -> None:
    # When this fails, the CLI changed: run `python -m sandbox.help_text` to regenerate.
    typer = _run(TYPER_HELP, COLUMNS="80")
    assert typer.returncode == 0
    quick = _run(QUICK + "; print(sorted(m for m in sys.modules if m.startswith('typer')))",
                 "--help", COLUMNS="120")  # fmt: skip
    assert quick.returncode == 0, quick.stderr
    text, _, loaded = quick.stdout.rpartition("[")
    assert text == typer.stdout
    assert loaded == "]\n"  # typer was never imported


def test_a_narrow_terminal_gets_typer_s_own_wrapping() -> None:
    narrow = _run(QUICK, "--help", COLUMNS="60")
    assert narrow.returncode == 0
    assert narrow.stdout == _run(TYPER_HELP, COLUMNS="60").stdout


def test_down_runs_without_typer_or_pydantic(tmp_path: object) -> None:
    probe = QUICK.replace(
        "main()",
        "import atexit; atexit.register(lambda: print(sorted({m.split('.')[0] for m in "
        "sys.modules} & {'typer', 'pydantic', 'aiohttp'}))); main()",
    )
    done = _run(probe, "down", "--all", "--json", SANDBOX_STATE_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    *report, loaded = done.stdout.splitlines()
    assert json.loads("\n".join(report)) == {"sandboxes": []}
    assert loaded == "[]"  # none of typer, pydantic, aiohttp was imported


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["web"], ("web", False, 5.0, False)),
        (["--all", "--json"], (None, True, 5.0, True)),
        (["web", "--grace", "1.5"], ("web", False, 1.5, False)),
        (["--grace=2", "web"], ("web", False, 2.0, False)),
        (["web", "other"], None),
        (["web", "--grace", "soon"], None),
        (["web", "--help"], None),
        (["--debug", "web"], None),
    ],
)
def test_what_the_fast_down_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: tuple[str | None, bool, float, bool] | None
) -> None:
    assert _parse_down(args) == parsed


def test_a_usage_error_of_down_is_worded_and_coded_as_before(tmp_path: object) -> None:
    done = _run(QUICK, "down", SANDBOX_STATE_DIR=str(tmp_path))
    assert done.returncode == 2
    assert "name a sandbox, or pass --all" in done.stderr


TYPER_UP = "import sys; sys.argv = ['sandbox', *sys.argv[1:]]; from sandbox.cli import main; main()"
LOADED_UP = (
    "import atexit; atexit.register(lambda: print(sorted({m.split('.')[0] for m in "
    "sys.modules} & {'typer', 'pydantic', 'aiohttp', 'yaml'}))); main()"
)


def _stub_profile(folder: Path, address: str, name: str = "quick") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}  # started by the fast path\n"
        "services:\n"
        f"  web:\n    kind: http\n    address: {address}\n    port: auto\n"
    )
    return path


def test_up_detached_runs_without_typer_or_pydantic_and_reports_as_typer_does(
    tmp_path: Path, spare_loopback: Any
) -> None:
    path = _stub_profile(tmp_path, str(spare_loopback(1)[0]))
    state = str(tmp_path / "state")
    try:
        up = _run(QUICK.replace("main()", LOADED_UP), "up", str(path), "-d", "--json",
                  SANDBOX_STATE_DIR=state)  # fmt: skip
        assert up.returncode == 0, up.stderr
        *report, loaded = up.stdout.splitlines()
        assert loaded == "[]"  # none of typer, pydantic, aiohttp, yaml in the CLI process
        status = json.loads("\n".join(report))
        assert status["name"] == "quick"
        assert [(s["name"], s["state"]) for s in status["services"]] == [("web", "ready")]
        assert status["moves"] == []
        again = _run(QUICK, "up", str(path), "-d", SANDBOX_STATE_DIR=state)
        typer_again = _run(TYPER_UP, "up", str(path), "-d", SANDBOX_STATE_DIR=state)
        assert again.returncode == typer_again.returncode == 4, again.stderr
        assert again.stderr == typer_again.stderr  # already running: the same words
    finally:
        _run(QUICK, "down", "quick", SANDBOX_STATE_DIR=state)


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        ([], (None, False)),
        (["web"], ("web", False)),
        (["--json", "web"], ("web", True)),
        (["web", "other"], None),
        (["web", "--help"], None),
        (["--color", "web"], None),
    ],
)
def test_what_the_fast_status_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: tuple[str | None, bool] | None
) -> None:
    assert _parse_status(args) == parsed


def test_status_runs_without_typer_or_pydantic_and_prints_what_typer_prints(
    tmp_path: Path, spare_loopback: Any
) -> None:
    path = _stub_profile(tmp_path, str(spare_loopback(1)[0]), name="shown")
    state = str(tmp_path / "state")
    try:
        up = _run(QUICK, "up", str(path), "-d", SANDBOX_STATE_DIR=state)
        assert up.returncode == 0, up.stderr
        for args in (["status"], ["status", "shown"], ["status", "--json"], ["status", "gone"]):
            # Uptime and the live probes' latency differ from one run to the next.
            _same_as_typer(args, state, _steady)
        assert _run(QUICK, "status", "gone", SANDBOX_STATE_DIR=state).returncode == 5
    finally:
        _run(QUICK, "down", "shown", SANDBOX_STATE_DIR=state)


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["web"], ("web", None, False, 50)),
        (["web", "api", "-f"], ("web", "api", True, 50)),
        (["--tail", "3", "web"], ("web", None, False, 3)),
        (["web", "--tail=0", "--follow"], ("web", None, True, 0)),
        ([], None),
        (["web", "api", "more"], None),
        (["web", "--tail", "x"], None),
        (["web", "--since", "1m"], None),
    ],
)
def test_what_the_fast_logs_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: tuple[str, str | None, bool, int] | None
) -> None:
    assert _parse_logs(args) == parsed


def test_logs_run_without_typer_or_pydantic_and_print_what_typer_prints(
    tmp_path: Path, spare_loopback: Any
) -> None:
    path = _stub_profile(tmp_path, str(spare_loopback(1)[0]), name="logged")
    state = str(tmp_path / "state")
    try:
        up = _run(QUICK, "up", str(path), "-d", SANDBOX_STATE_DIR=state)
        assert up.returncode == 0, up.stderr
        cases = (["logs", "logged"], ["logs", "logged", "web", "--tail", "1"], ["logs", "gone"])
        for args in cases:
            shown = _same_as_typer(args, state)
            if args == ["logs", "logged"]:
                assert "web: http stub serving on" in shown, shown
        assert _run(QUICK, "logs", "gone", SANDBOX_STATE_DIR=state).returncode != 0
    finally:
        _run(QUICK, "down", "logged", SANDBOX_STATE_DIR=state)
    # After `down`, the logs of the last run, with the note that says so.
    fast = _run(QUICK, "logs", "logged", SANDBOX_STATE_DIR=state)
    typer = _run(TYPER_UP, "logs", "logged", SANDBOX_STATE_DIR=state)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        typer.returncode,
        typer.stdout,
        typer.stderr,
    )


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["web"], RequestsLine("web")),
        (["web", "api", "--json", "-f"], RequestsLine("web", "api", json=True, follow=True)),
        (["web", "--method", "POST", "--path=/x"], RequestsLine("web", method="POST", path="/x")),
        ([], None),
        (["web", "--method"], None),
        (["web", "--path", "--json"], None),
        (["web", "a", "b"], None),
        (["web", "--limit", "3"], None),
    ],
)
def test_what_the_fast_requests_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: RequestsLine | None
) -> None:
    assert _parse_requests(args) == parsed


def test_requests_run_without_typer_or_pydantic_and_print_what_typer_prints(
    tmp_path: Path, spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    path = _stub_profile(tmp_path, address, name="asked")
    state = str(tmp_path / "state")
    try:
        up = _run(QUICK, "up", str(path), "-d", "--json", SANDBOX_STATE_DIR=state)
        assert up.returncode == 0, up.stderr
        port = json.loads(up.stdout)["services"][0]["port"]
        for sent in ("/one", "/two?x=1"):
            with socket.create_connection((address, port), timeout=5) as client:
                client.sendall(f"GET {sent} HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
                while client.recv(65536):
                    pass
        cases = (
            ["requests", "asked"], ["requests", "asked", "web", "--json"],
            ["requests", "asked", "--path", "/one"], ["requests", "gone"],
        )  # fmt: skip
        for args in cases:
            _same_as_typer(args, state)
        listed = _run(QUICK, "requests", "asked", "--json", SANDBOX_STATE_DIR=state)
        assert [e["path"] for e in json.loads(listed.stdout)["entries"]] == ["/one", "/two"]
    finally:
        _run(QUICK, "down", "asked", SANDBOX_STATE_DIR=state)


def _same_as_typer(
    args: list[str], state: str, steady: Callable[[str], str] = lambda text: text
) -> str:
    """Run `args` through the fast path and through typer; assert the fast one imported none
    of typer, pydantic, aiohttp, yaml and said what typer says (after `steady`). Its output."""
    fast = _run(QUICK.replace("main()", LOADED_UP), *args, SANDBOX_STATE_DIR=state)
    typer = _run(TYPER_UP, *args, SANDBOX_STATE_DIR=state)
    *shown, loaded = fast.stdout.splitlines()
    assert loaded == "[]", args
    assert (fast.returncode, fast.stderr) == (typer.returncode, typer.stderr), args
    text = "\n".join(shown)
    assert steady(text) == steady(typer.stdout.rstrip("\n")), args
    return text


def _steady(text: str) -> str:
    if text.startswith("{"):
        document = json.loads(text)
        for sandbox in document["sandboxes"]:
            sandbox.pop("uptime_s")
            for service in sandbox["services"]:
                service.pop("latency_ms")
        return json.dumps(document)
    return re.sub(r"up \d+s|\d+\.\d+ ms", "", text)


def test_an_invalid_profile_fails_the_fast_up_as_it_fails_typer_s(
    tmp_path: Path, spare_loopback: Any
) -> None:
    path = _stub_profile(tmp_path, str(spare_loopback(1)[0]))
    path.write_text(path.read_text().replace("port: auto", "port: 70000"))
    state = str(tmp_path / "state")
    for json_ in ([], ["--json"]):
        quick = _run(QUICK, "up", str(path), "-d", *json_, SANDBOX_STATE_DIR=state)
        typer = _run(TYPER_UP, "up", str(path), "-d", *json_, SANDBOX_STATE_DIR=state)
        assert quick.returncode == typer.returncode == 3
        assert f"{path}:6:11" in quick.stderr + quick.stdout  # FILE:LINE:COL
        assert (quick.stdout, quick.stderr) == (typer.stdout, typer.stderr)


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["web", "-d"], UpLine("web")),
        (["-d", "web", "--json"], UpLine("web", json=True)),
        (["web", "--detach", "--no-request-log"], UpLine("web", request_log=False)),
        (["web", "-d", "--wait-timeout", "750ms"], UpLine("web", wait_timeout=0.75)),
        (["web", "-d", "--on-conflict=next-port"], UpLine("web", on_conflict="next-port")),
        (["web", "-d", "--name", "mine"], UpLine("web", name="mine")),
        (["web"], None),  # the foreground
        (["web", "-d", "-d"], None),
        (["web", "other", "-d"], None),
        (["web", "-d", "--wait-timeout", "soon"], None),
        (["web", "-d", "--on-conflict", "retry"], None),
        (["web", "-d", "--name", "../up"], None),
        (["web", "-d", "--name"], None),
        (["web", "-d", "--container-listen"], None),
        (["web", "-d", "--help"], None),
        (["-d"], None),
    ],
)
def test_what_the_fast_up_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: UpLine | None
) -> None:
    assert _parse_up(args) == parsed


def test_the_fast_up_knows_every_conflict_strategy() -> None:
    from sandbox.plan import ON_CONFLICT_CHOICES

    assert _STRATEGIES == ON_CONFLICT_CHOICES


TYPER = "import sys; sys.argv = ['sandbox', *sys.argv[1:]]; from sandbox.cli import main; main()"
LOADED = (
    "import atexit; atexit.register(lambda: sys.stderr.write(repr(sorted({m.split('.')[0] for m "
    "in sys.modules} & {'typer', 'pydantic', 'aiohttp', 'asyncio'})))); main()"
)


def _same_but_timing(text: str) -> str:
    """Output with latencies (which differ run to run) and the padding they set removed."""
    text = re.sub(r"\d+\.\d+ ms", "T ms", text)
    text = re.sub(r'"latency_ms": \d+\.\d+', '"latency_ms": T', text)
    return re.sub(r" {2,}", "  ", text)


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["127.0.0.1:80"], (["127.0.0.1:80"], 2.0, False)),
        (["--json", "127.0.0.1:80", "[::1]:9"], (["127.0.0.1:80", "[::1]:9"], 2.0, True)),
        (["127.0.0.1:80", "--timeout", "0.5"], (["127.0.0.1:80"], 0.5, False)),
        (["--timeout=3", "127.0.0.1:80"], (["127.0.0.1:80"], 3.0, False)),
        ([], None),
        (["--json"], None),
        (["127.0.0.1:80", "--timeout", "0"], None),
        (["127.0.0.1:80", "--timeout", "soon"], None),
        (["127.0.0.1:80", "--timeout"], None),
        (["127.0.0.1:80", "--cacert", "ca.pem"], None),
        (["127.0.0.1:80", "--help"], None),
        (["--", "127.0.0.1:80"], None),
    ],
)
def test_what_the_fast_probe_takes_and_what_it_leaves_to_typer(
    args: list[str], parsed: tuple[list[str], float, bool] | None
) -> None:
    assert parse_probe(args) == parsed


@pytest.mark.parametrize(
    ("texts", "literal"),
    [
        (["127.0.0.5:8080", "[::1]:9000"], True),
        (["127.0.0.5:8080", "localhost:5432"], False),  # a name to resolve: typer's path
        (["http://127.0.0.9/health"], False),
        (["web"], False),
        (["10.0.0.1:80"], False),  # an error typer words
        (["127.0.0.5"], False),
    ],
)
def test_only_literal_loopback_targets_take_the_fast_probe(texts: list[str], literal: bool) -> None:
    assert (literal_targets(texts) is not None) == literal


@pytest.mark.parametrize("json_", [False, True])
def test_the_fast_probe_prints_what_typer_prints(
    tmp_path: object, spare_loopback: Callable[[int], list[ipaddress.IPv4Address]], json_: bool
) -> None:
    open_at, refused_at, lonely = (str(a) for a in spare_loopback(3))
    with socket.socket() as listener:
        listener.bind((open_at, 0))
        listener.listen()
        port = listener.getsockname()[1]
        # open; refused next to the listener (the neighbour hint); refused on a port of its own.
        with socket.socket() as spare:
            spare.bind((lonely, 0))
            free = spare.getsockname()[1]  # bound, not listening: refuses
            args = ["probe", f"{open_at}:{port}", f"{refused_at}:{port}", f"{lonely}:{free}"]
            args += ["--json"] if json_ else []
            env = {"SANDBOX_STATE_DIR": str(tmp_path)}
            fast = _run(QUICK.replace("main()", LOADED), *args, **env)
            slow = _run(TYPER, *args, **env)
    assert fast.returncode == slow.returncode == 5
    assert _same_but_timing(fast.stdout) == _same_but_timing(slow.stdout)
    assert f"but {open_at}:{port}" in fast.stdout  # the neighbour hint is there
    assert fast.stderr == "[]"  # none of typer, pydantic, aiohttp, asyncio was imported
    assert slow.stderr == ""


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_a_probe_timeout_that_is_no_time_is_a_usage_error(tmp_path: object, timeout: str) -> None:
    # Refused before any connect (the target's port is never tried), with exit 2.
    done = _run(
        QUICK, "probe", "127.0.0.1:80", "--timeout", timeout, SANDBOX_STATE_DIR=str(tmp_path)
    )
    assert done.returncode == 2, done.stderr
    assert f"--timeout {timeout}: a probe needs some time" in done.stderr
    assert "unexpected" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["probe", "10.0.0.1:80"],
        ["probe", "127.0.0.1:0"],
        ["probe", "127.0.0.1:80", "--timeout", "-1"],
        ["probe", "127.0.0.1:80", "--json", "--cacert", "/nonexistent.pem"],
    ],
)
def test_what_the_fast_probe_leaves_to_typer_is_worded_and_coded_by_it(
    tmp_path: object, args: list[str]
) -> None:
    env = {"SANDBOX_STATE_DIR": str(tmp_path)}
    fast, slow = _run(QUICK, *args, **env), _run(TYPER, *args, **env)
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode in (1, 2)  # a usage error; a negative timeout is a bug typer words


def test_down_of_a_recorded_sandbox_by_name_loads_no_profile_code(tmp_path: Path) -> None:
    # The name is found in the state folder: no profile is looked up, so pydantic stays out.
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # a port that refuses, as a stopped stub's does
        port = bound.getsockname()[1]
        svc = ServiceRecord(name="api", kind="http", address="127.0.0.1", port=port, url="", log="")
        record = SandboxRecord(
            name="rec", profile="rec", profile_path=None, supervisor=None,
            started_at=time.time(), status="running", services=(svc,),
        )  # fmt: skip
        StateDir(tmp_path, "rec").write(record)
        probe = QUICK.replace("main()", LOADED)
        done = _run(probe, "down", "rec", "--json", SANDBOX_STATE_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)["sandboxes"]
    assert (report["name"], report["stopped"], report["clean"]) == ("rec", ["api"], True)
    assert "pydantic" not in done.stderr
    assert "typer" not in done.stderr
    assert StateDir(tmp_path, "rec").read() is None


def test_a_state_folder_typer_refuses_is_refused_by_the_fast_probe_too(tmp_path: Path) -> None:
    # The typer command opens the state folder (for the CAs of running TLS sandboxes) before
    # it probes: a folder it refuses makes the fast path hand over, for the same message.
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    root.chmod(0o777)
    args = ["probe", "127.0.0.1:9", "--json"]
    fast = _run(QUICK, *args, SANDBOX_STATE_DIR=str(root))
    slow = _run(TYPER, *args, SANDBOX_STATE_DIR=str(root))
    assert (fast.returncode, fast.stdout, fast.stderr) == (
        slow.returncode,
        slow.stdout,
        slow.stderr,
    )
    assert fast.returncode not in (0, 5)
    assert "state folder" in fast.stdout + fast.stderr
