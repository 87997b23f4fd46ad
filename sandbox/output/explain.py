"""`sandbox explain` for people: each endpoint, its verdict, the sentences, the ways out."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from sandbox.output.printer import Printer
from sandbox.teach.explain import Explanation

_CODE = re.compile(r"`[^`]*`")


def _wrap(out: Printer, text: str, first: str, rest: str) -> None:
    # Keep `commands` on one line, so they can be copied as they are.
    guarded = _CODE.sub(lambda m: m[0].replace(" ", "\0"), text)
    lines = textwrap.wrap(
        guarded,
        96,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
    for line in lines:
        out.line(line.replace("\0", " "))


def render(results: Sequence[Explanation], out: Printer) -> None:
    """Print each explanation for people: the endpoint and verdict, the sentences, the ways out."""
    for n, item in enumerate(results):
        if n:
            out.line()
        colour = "green" if item.verdict == "free" or item.verdict == "any-port" else "red"
        colour = "yellow" if item.verdict == "refused-neighbour" else colour
        label = f"  ({item.target})" if item.target != item.endpoint else ""
        out.line(f"{out.paint(item.endpoint, 'bold')}  {out.paint(item.verdict, colour)}{label}")
        for sentence in item.sentences:
            _wrap(out, sentence, "  ", "  ")
        if item.ways_out:
            out.line("  " + out.paint("Ways out:", "bold"))
            for way in item.ways_out:
                _wrap(out, way, "  - ", "    ")
