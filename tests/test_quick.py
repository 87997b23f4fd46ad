"""The fast entry point: `sandbox --help` without typer, `sandbox down` without typer and
pydantic, both printing what the typer app prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.quick import _STRATEGIES, UpLine, _parse_down, _parse_up

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
LOADED = (
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
        up = _run(QUICK.replace("main()", LOADED), "up", str(path), "-d", "--json",
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
