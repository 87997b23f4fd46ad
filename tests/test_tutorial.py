"""docs/tutorial.md as a test: every `$ sandbox ...` line runs, in order, and its output must
still match what the tutorial shows, in substance.

How the tutorial's ```console blocks are read (keep to it when editing the tutorial):

- `$ sandbox ARGS` is a command (split like a shell would); the lines after it, up to the next
  `$ ` line or the end of the block, are its output: stdout and stderr together, interleaved
  as a terminal shows them.
- Whitespace, line breaks included, is normalised to single spaces before comparing, so table
  columns may widen and wrapped sentences may break elsewhere.
- Variable parts are marked: `<pid>` and `<n>` stand for a whole number, `<ms>` for a decimal
  number (a latency or a duration), `<user>` for one word, `<...>` for any text, possibly none
  (a command line, a path, a sentence that depends on the machine). A line that is just `...`
  stands for any number of lines, none included. Any other `<word>` is an error, so a typo
  cannot hide a mismatch.
- Everything else must be there, in that order, and nothing more: the shown output is the
  whole output, not a sample.
- `[exit N]` as the last output line: the command exits with N; `[exit N|M]`: with N or M,
  for an outcome that depends on the machine (say what decides it in the text). Without it,
  the command must exit 0.
- `<!-- netns: listen 0.0.0.0:PORT -->` on the line right before a block: the test holds a wildcard
  listener on that address:port while the block's commands run (the reader is told to start
  one).

The whole tutorial runs inside one private network namespace (`tests.teach.test_labs`): its
fixed, documented ports (127.20.0.2:8000, the labs') can clash with nothing on this machine,
`sandbox ports` shows only what the tutorial started, and the wildcard listener is never held
outside it. Where namespaces are not available the test is skipped, with the reason. Whatever
happens, the test ends with `sandbox down --all` (through private_netns); it also checks that
the tutorial's own last steps left nothing listening.
"""

from __future__ import annotations

import itertools
import re
import select
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.netns import ROOT
from tests.netns_cli import NamespacedCli, private_netns

TUTORIAL = ROOT / "docs" / "tutorial.md"
_PLACEHOLDERS = {
    "pid": r"\d+",
    "n": r"\d+",
    "ms": r"\d+(?:\.\d+)?",
    "user": r"\S+",
    "...": r".*?",
}
_PLACEHOLDER = re.compile(r"<([a-z]+|\.\.\.)>")
_EXIT = re.compile(r"\[exit (\d+(?:\|\d+)*)\]")
_WILDCARD = re.compile(r"<!--\s*netns:\s*listen\s+(\S+)\s*-->")


@dataclass(frozen=True)
class Step:
    """One `$ sandbox ...` line of the tutorial with the output it shows."""

    heading: str
    block: int  # the line of its ```console block, in the markdown file
    line: int  # its own line there, for messages
    command: str
    shown: tuple[str, ...]
    exit_codes: tuple[int, ...]  # the one it must exit with, or those it may
    wildcard: str | None  # an address:port to hold while it runs (in the namespace)


def parse_tutorial(text: str) -> list[Step]:
    """Every command of every ```console block, in order. Raises ValueError for a command that
    is not `sandbox ...` (the test runs only those) or a block left open."""
    steps: list[Step] = []
    heading, wildcard, block = "", None, None
    command: tuple[int, str] | None = None
    shown: list[str] = []

    def finish() -> None:
        nonlocal command
        if command is not None:
            codes = (0,)
            if shown and (found := _EXIT.fullmatch(shown[-1].strip())):
                codes = tuple(int(c) for c in found.group(1).split("|"))
                shown.pop()
            number, text = command
            steps.append(Step(heading, block or 0, number, text, tuple(shown), codes, wildcard))
        command = None
        shown.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        if block is None:
            if raw.startswith("#"):
                heading = raw.lstrip("#").strip()
            elif found := _WILDCARD.search(raw):
                wildcard = found.group(1)
            elif raw.strip() == "```console":
                block = number
            elif raw.strip():
                wildcard = None  # the marker belongs to the block right after it
            continue
        if raw.strip() == "```":
            finish()
            block, wildcard = None, None
        elif raw.startswith("$ "):
            finish()
            if not raw[2:].startswith("sandbox "):
                raise ValueError(f"line {number}: only `$ sandbox ...` commands run: {raw!r}")
            command = (number, raw[2:])
        elif command is not None:
            shown.append(raw)
    if block is not None:
        raise ValueError(f"the ```console block of line {block} is never closed")
    return steps


def _word(word: str) -> str:
    pieces, last = [], 0
    for found in _PLACEHOLDER.finditer(word):
        if found.group(1) not in _PLACEHOLDERS:
            raise ValueError(f"unknown placeholder {found.group(0)} in {word!r}")
        pieces += [re.escape(word[last : found.start()]), _PLACEHOLDERS[found.group(1)]]
        last = found.end()
    return "".join([*pieces, re.escape(word[last:])])


def pattern(shown: tuple[str, ...]) -> re.Pattern[str]:
    """The regex that the whole output, its whitespace normalised to single spaces, must match.
    Raises ValueError naming an unknown placeholder."""
    regex, started, skipping = "", False, False
    for line in shown:
        if line.strip() == "...":
            skipping = True
            continue
        for word in line.split():
            if started:
                regex += r" (?:.*? )?" if skipping else " "
            elif skipping:
                regex += r"(?:.*? )?"
            regex += _word(word)
            started, skipping = True, False
    if skipping:
        regex += r"(?: .*)?" if started else ".*"
    return re.compile(regex)


def matches(shown: tuple[str, ...], output: str) -> bool:
    return pattern(shown).fullmatch(" ".join(output.split())) is not None


@contextmanager
def wildcard_listener(cli: NamespacedCli, where: str | None) -> Iterator[None]:
    """Hold a listener on `where` (0.0.0.0:P or [::]:P) inside the namespace for the block.
    Raises ValueError for anything but a wildcard: the marker is for those only."""
    if where is None:
        yield
        return
    host, _, port = where.rpartition(":")
    if host not in ("0.0.0.0", "[::]"):
        raise ValueError(f"<!-- netns: listen {where} -->: only 0.0.0.0:PORT or [::]:PORT")
    family = "AF_INET6" if host.startswith("[") else "AF_INET"
    code = (  # one line, so that its command line reads well in `sandbox ports`
        f"import socket, sys; s = socket.create_server(({host.strip('[]')!r}, {int(port)}), "
        f"family=socket.{family}); print('up', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        cli.argv(sys.executable, "-c", code),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli.env,
    )
    with holder:
        assert holder.stdin is not None
        assert holder.stdout is not None
        ready, _, _ = select.select([holder.stdout], [], [], 10)
        if not ready or holder.stdout.readline().strip() != b"up":
            holder.kill()
            pytest.fail(f"could not hold {where} in the namespace")
        try:
            yield
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)


def run(cli: NamespacedCli, step: Step) -> subprocess.CompletedProcess[str]:
    args = shlex.split(step.command)[1:]
    return subprocess.run(
        cli.argv(sys.executable, "-m", "sandbox", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=60,
        env=cli.env,
        cwd=cli.cwd,
        check=False,
    )


# -- the conventions themselves ------------------------------------------------------------


def test_placeholders_match_what_varies_and_nothing_else() -> None:
    shown = ("SERVICE KIND URL", "db tcp tcp://127.20.0.3:5432 open <ms> ms")
    assert matches(shown, "SERVICE  KIND  URL\ndb  tcp  tcp://127.20.0.3:5432  open  0.09 ms\n")
    assert not matches(shown, "SERVICE KIND URL\ndb tcp tcp://127.20.0.3:5433 open 0.09 ms")
    assert not matches(shown, "SERVICE KIND URL\ndb tcp tcp://127.20.0.3:5432 open slow ms")
    assert not matches(shown, "SERVICE KIND URL\ndb tcp tcp://127.20.0.3:5432 open 1 ms\nmore")
    assert matches(("taken by pid <pid> <...> (user <user>)",), "taken by pid 7 a b c (user x)")
    assert not matches(("pid <pid>",), "pid 7a")


def test_an_ellipsis_line_stands_for_any_lines_even_none() -> None:
    shown = ("first", "...", "last")
    assert matches(shown, "first\nlast\n")
    assert matches(shown, "first\none\ntwo\nlast\n")
    assert not matches(shown, "first\none\n")
    assert matches(("...", "last"), "a\nb\nlast")
    assert matches(("...", "last"), "last")
    assert matches(("first", "..."), "first")


def test_unknown_placeholders_and_stray_commands_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown placeholder"):
        pattern(("pid <pdi>",))
    with pytest.raises(ValueError, match="only `\\$ sandbox"):
        parse_tutorial("```console\n$ rm -rf /\n```\n")


def test_parse_reads_commands_outputs_exit_codes_and_markers() -> None:
    text = (
        "## One\n```console\n$ sandbox ports\nPROTO LISTEN\n$ sandbox plan x\nboom\n[exit 4]\n```\n"
        "## Two\n<!-- netns: listen 0.0.0.0:8080 -->\n```console\n$ sandbox status\n```\n"
        "```console\n$ sandbox probe localhost:1\n[exit 0|5]\n```\n"
    )
    steps = parse_tutorial(text)
    assert [(s.heading, s.block, s.command, s.shown, s.exit_codes, s.wildcard) for s in steps] == [
        ("One", 2, "sandbox ports", ("PROTO LISTEN",), (0,), None),
        ("One", 2, "sandbox plan x", ("boom",), (4,), None),
        ("Two", 11, "sandbox status", (), (0,), "0.0.0.0:8080"),
        ("Two", 14, "sandbox probe localhost:1", (), (0, 5), None),
    ]


# -- the tutorial ---------------------------------------------------------------------------


def test_the_tutorial_is_a_dozen_steps_and_the_readme_links_it() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert 10 <= len(headings) <= 14
    steps = parse_tutorial(text)
    assert {s.heading for s in steps} >= {h[3:].strip() for h in headings[:-1]}
    assert "(docs/tutorial.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.netns
@pytest.mark.e2e
def test_every_command_of_the_tutorial_still_shows_what_it_shows(tmp_path: Path) -> None:
    steps = parse_tutorial(TUTORIAL.read_text(encoding="utf-8"))
    failures: list[str] = []
    with private_netns(tmp_path) as cli:
        for _, block in itertools.groupby(steps, key=lambda s: s.block):
            commands = list(block)
            with wildcard_listener(cli, commands[0].wildcard):
                for step in commands:
                    done = run(cli, step)
                    if done.returncode in step.exit_codes and matches(step.shown, done.stdout):
                        continue
                    codes = "|".join(map(str, step.exit_codes))
                    failures.append(
                        f"docs/tutorial.md:{step.line} ({step.heading})\n$ {step.command}\n"
                        f"--- shown (exit {codes})\n" + "\n".join(step.shown) + "\n"
                        f"--- got (exit {done.returncode})\n{done.stdout}"
                    )
        left = cli.json("ports")["listeners"]
    assert not failures, f"{len(failures)} of {len(steps)} commands differ:\n\n" + "\n\n".join(
        failures
    )
    assert left == [], f"the tutorial left listeners behind: {left}"
