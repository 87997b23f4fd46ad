"""Template helpers beyond Jinja2's own: regex extraction, and `range` that `random` can use."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar, overload

import jinja2
from jinja2.sandbox import MAX_RANGE

from sandbox.services.bounded import Bounded, PatternTimeout

T = TypeVar("T")

_PATTERN_CACHE = 256


@functools.lru_cache(maxsize=_PATTERN_CACHE)
def _compiled(pattern: str) -> Bounded[str]:
    import regex as engine

    try:
        return Bounded(pattern)
    except engine.error as exc:
        raise jinja2.TemplateRuntimeError(f"regex {pattern!r} does not compile: {exc}") from None


def _timed(search: Callable[[], T]) -> T:
    """A search of request data (which may be large), its PatternTimeout as a template error."""
    try:
        return search()
    except PatternTimeout as exc:
        raise jinja2.TemplateRuntimeError(str(exc)) from None


def _text(value: object) -> str:
    if value is None or isinstance(value, jinja2.Undefined):
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def regex(value: object, pattern: str, group: int | str = 1) -> str:
    """The first match of `pattern` in `value`: its group `group` (default the first group,
    or the whole match when the pattern has no group); "" when nothing matches."""
    compiled = _compiled(pattern)
    found = _timed(lambda: compiled.search(_text(value)))
    if found is None:
        return ""
    if not compiled.groups:
        return found.group(0)
    return found.group(group) or ""


def regex_all(value: object, pattern: str) -> list[str]:
    """Every match of `pattern` in `value`: the first group of each, or the whole match."""
    compiled = _compiled(pattern)
    return [
        (found.group(1) or "") if compiled.groups else found.group(0)
        for found in _timed(lambda: compiled.finditer(_text(value)))
    ]


class LargeRange(Sequence[int]):
    """A range too long to loop over in a template, but fine to pick from (`|random`)."""

    def __init__(self, inner: range) -> None:
        self._inner = inner

    def __len__(self) -> int:
        return len(self._inner)

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[int]: ...

    def __getitem__(self, index: int | slice) -> int | Sequence[int]:
        return self._inner[index]

    def __iter__(self) -> Iterator[int]:
        # Iterating would run the stub's loop for as long as the range is long.
        raise OverflowError(
            f"a range of more than {MAX_RANGE} numbers cannot be looped over in a template; "
            "picking one with |random works"
        )

    def __repr__(self) -> str:
        return repr(self._inner)


def template_range(*args: int) -> range | LargeRange:
    """`range` for templates: Jinja2's sandbox refuses long ranges outright, which made
    `range(1, 1000000)|random` answer 500; a long range here can be picked from, not looped."""
    inner = range(*args)
    try:
        long = len(inner) > MAX_RANGE
    except OverflowError:  # more numbers than sys.maxsize
        long = True
    return LargeRange(inner) if long else inner


def install(env: jinja2.Environment) -> None:
    """Add the helpers to `env`: filters `regex`, `regex_all`; the long-range-safe `range`."""
    env.filters["regex"] = regex
    env.filters["regex_all"] = regex_all
    env.globals["range"] = template_range
