"""Catastrophic regular expressions are refused when the profile is read (exit 3, FILE:LINE:COL),
so one stub's match can never freeze the loop its siblings share."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.errors import ProfileError
from sandbox.profile.loader import load_profile_text
from sandbox.profile.patterns import catastrophic
from tests.services.helpers import Listen, Start, connection, context, read_exactly, tcp_spec


@pytest.mark.parametrize(
    "pattern", ["(a+)+$", "(a*)*", r"(\w+\s?)+$", "(x+x+)+y", "(a|ab|b.)+$", r"(\d+\.)+"]
)
def test_catastrophic_patterns_are_named(pattern: str) -> None:
    assert catastrophic(pattern) is not None


@pytest.mark.parametrize(
    "pattern",
    ["PING", r"^\d{1,3}(\.\d{1,3}){3}$", "(a++)+$", "(?>a+)+$", "(x|y)+", "^GET /.*HTTP", "a+b+"],
)
def test_ordinary_patterns_pass(pattern: str) -> None:
    assert catastrophic(pattern) is None


TCP = """\
name: regex
services:
  db:
    kind: tcp
    tcp:
      rules:
        - expect: "(a+)+$"
          send: "x"
"""
HTTP = """\
name: regex
services:
  web:
    kind: http
    routes:
      - path: "/u/{id:(\\\\d+)+x}"
        response: {}
      - path: /q
        match: {body: "(a*)*$"}
        response: {}
"""


def test_a_tcp_expect_is_refused_with_its_place() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile_text(TCP, "r.yaml")
    (problem,) = info.value.problems
    assert problem.startswith("r.yaml:7:11 services.db.tcp.rules.0")
    assert "a repeat inside a repeat" in problem


def test_http_route_patterns_are_refused() -> None:
    with pytest.raises(ProfileError) as info:
        load_profile_text(HTTP, "h.yaml")
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("h.yaml:6:15 services.web.routes.0.path")
    assert "services.web.routes.1.match" in problems[1]


def test_validate_exits_3_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TCP)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_")}
    env["SANDBOX_STATE_DIR"] = str(tmp_path / "state")
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "validate", "r.yaml"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert "r.yaml:7:11" in done.stderr


async def test_a_sibling_answers_while_a_stub_matches_a_long_message(
    listen: Listen, start: Start
) -> None:
    # The accepted (possessive) form of the pattern above: linear, however long the input.
    socks = [listen("127.0.0.1"), listen("127.0.0.1")]
    busy, sibling = (context(n, s) for n, s in zip(("busy", "sib"), socks, strict=True))
    await start(tcp_spec(rules=[{"expect": "(a++)+$", "send": "x"}]), socks[0], busy)
    await start(tcp_spec(rules=[{"expect": "PING", "send": "PONG"}]), socks[1], sibling)
    async with connection(busy.address, busy.port) as (_, w1):
        w1.write(b"a" * 40 + b"!")  # 2**40 steps for (a+)+$
        await w1.drain()
        async with connection(sibling.address, sibling.port) as (r2, w2):
            t0 = time.perf_counter()
            w2.write(b"PING")
            assert await read_exactly(r2, 4) == b"PONG"
            assert time.perf_counter() - t0 < 0.5
    await asyncio.sleep(0)
