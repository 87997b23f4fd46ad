"""The fast entry point: `sandbox --help` without typer, `sandbox down` without typer and
pydantic, both printing what the typer app prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.quick import _parse_down

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
