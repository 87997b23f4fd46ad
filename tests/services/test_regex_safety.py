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
    "pattern",
    [
        "(a+)+$", "(a*)*", r"(\w+\s?)+$", "(x+x+)+y", "(a|ab|b.)+$",
        # A repeat whose fence it can match, or that has none: the rounds can split the
        # text in many ways (`1.123.4` as `1.1|23.4` or `1.12|3.4`).
        "(a+a)+", r"(\w+_)+$", r"(\d+\.\d+)+$", "(.+x)+", "((a+b)+)+", "(?i)(a+B)+",
    ],
)  # fmt: skip
def test_catastrophic_patterns_are_named(pattern: str) -> None:
    assert catastrophic(pattern) is not None


# Each inner repeat is followed by one required character it cannot match, so each round
# of the outer repeat ends at one place only.
FENCED = [
    r"(\d+\.)+", r"([a-z]+/)*$", r"(\w+\s)+$", r"(\.\d+)+$", r"(\d*\.)+$", r"(\d+-\w+;)+$",
    "([^x]+x)+$", r"(?:[a-z]+-)+[a-z]+$", r"(\d+\.){2,}$", "(a{2,}b)+$",
]  # fmt: skip


@pytest.mark.parametrize("pattern", FENCED)
def test_fenced_repeats_inside_repeats_pass(pattern: str) -> None:
    assert catastrophic(pattern) is None


def test_fenced_patterns_finish_on_hostile_text() -> None:
    # Were one of them exponential, 200 rounds and a failing end would take 2**200 steps.
    units = ["1.", "ab/", "ab ", ".12", "1.", "1-a;", "abx", "ab-", "12.", "aaab"]
    script = (
        "import re, sys\n"
        "for pattern, unit in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    text = unit * 200 + '!'\n"
        "    re.match(pattern, text)\n"
        "    re.search(pattern, text[:200])\n"
    )
    args = [x for pair in zip(FENCED, units, strict=True) for x in pair]
    done = subprocess.run([sys.executable, "-c", script, *args], timeout=60, check=False)
    assert done.returncode == 0


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
