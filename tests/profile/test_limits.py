"""What `up` would meet only while starting is refused by `validate` (exit 3, FILE:LINE:COL)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandbox.errors import ExitCode, ProfileError
from sandbox.profile.limits import MAX_SERVICES
from sandbox.profile.loader import load_profile_text
from sandbox.services.templates import RenderError, compile_text


def refused(text: str) -> list[str]:
    with pytest.raises(ProfileError) as info:
        load_profile_text(textwrap.dedent(text), "p.yaml")
    assert info.value.exit_code == ExitCode.INVALID_PROFILE
    return info.value.problems


def test_a_pool_too_small_for_its_services() -> None:
    (problem,) = refused("""\
        name: small
        pool: 127.77.0.0/31
        services:
          a: {kind: tcp}
          b: {kind: tcp}
    """)
    assert problem.startswith("p.yaml:2:7 pool: the address pool 127.77.0.0/31 has 1 usable")


def test_a_nul_character() -> None:
    (problem,) = refused("""\
        name: nul
        services:
          a: {kind: command, run: "echo \\0"}
    """)
    assert problem.startswith("p.yaml:3:27 services.a.run: contains a NUL character")


def test_an_environment_name_with_an_equals_sign() -> None:
    (problem,) = refused("""\
        name: eq
        services:
          a: {kind: command, run: "true", env: {"A=B": "1"}}
    """)
    assert problem.startswith("p.yaml:3:48 services.a.env.A=B:")
    assert "contain `=`" in problem


def test_too_many_services() -> None:
    lines = "".join(f"  s{i}: {{kind: tcp}}\n" for i in range(MAX_SERVICES + 1))
    (problem,) = refused("name: many\nservices:\n" + lines)
    assert f"has {MAX_SERVICES + 1} services; the most is {MAX_SERVICES}" in problem


def test_a_huge_power_in_a_template() -> None:
    (problem,) = refused("""\
        name: pow
        services:
          a:
            kind: http
            routes: [{path: /, response: {body: "{{ 10**5000 }}"}}]
    """)
    assert problem.startswith("p.yaml:5:41 services.a.routes.0.response.body: `**` is limited")


def test_a_power_computed_at_run_time_is_bounded_too() -> None:
    text = compile_text("{{ 10 ** path.n|int }}", "body")
    assert text.render({"path": {"n": "3"}}) == "1000"
    with pytest.raises(RenderError, match="at most 256"):
        text.render({"path": {"n": "5000"}})


def test_up_and_validate_exit_3_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "eq.yaml").write_text(
        'name: eq\nservices:\n  a: {kind: command, run: "true", env: {"A=B": "1"}}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env["SANDBOX_STATE_DIR"] = str(tmp_path / "state")
    for command in ("validate", "up"):
        done = subprocess.run(
            [sys.executable, "-m", "sandbox", command, "eq.yaml"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 3, done.stderr
        assert "eq.yaml:3:" in done.stderr
