"""Regular expressions searched in what a client sends (a request body, a JSON field, a TCP
stream), with a time limit.

Every stub of a sandbox matches on one event loop, and Python's `re` never lets go: a
search that backtracks through a large input stalls them all. Nested repeats are refused
when the profile loads (profile/patterns.py), but a plain pattern can still take time
that grows with the square of the input: `\\w+@\\w+\\.com` searched in 40 kB of letters with
one `@` in the middle takes about 3 s, and a megabyte body hours. So these searches use
the `regex` module, in its `re`-compatible mode (V0), which skips most such input at once
(a missing `@` is noticed before any backtracking) and stops a search after
SEARCH_BUDGET seconds. The caller turns the PatternTimeout into an answer that says so.
Patterns on short fields (headers, query values, path parameters: at most 8 kB each) keep
using `re`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import regex

AnyStr = TypeVar("AnyStr", str, bytes)

SEARCH_BUDGET = 0.5  # seconds one search may take before it is given up


class PatternTimeout(Exception):
    """A search took longer than SEARCH_BUDGET."""

    def __init__(self, pattern: str, size: int, unit: str = "characters") -> None:
        self.pattern = pattern
        self.size = size  # the length of the text searched, in `unit`
        super().__init__(
            f"/{pattern}/ was given up after {SEARCH_BUDGET:g} s on {size} {unit}: tried "
            "from every position, its repeats run through the text again and again; begin "
            "it with `^` or `\\b` so that it starts only where it can match"
        )


class Bounded(Generic[AnyStr]):
    """A compiled pattern whose searches stop after SEARCH_BUDGET (raising PatternTimeout)."""

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: AnyStr) -> None:
        import regex  # (about 6 ms: only a profile with such a pattern pays for it)

        self.pattern: AnyStr = pattern
        self._compiled: regex.Pattern[AnyStr] = regex.compile(pattern, flags=regex.V0)

    @property
    def groups(self) -> int:
        return self._compiled.groups

    def search(self, text: AnyStr | bytearray) -> regex.Match[AnyStr] | None:
        """The first match in `text` (a bytes pattern also searches a bytearray)."""
        try:
            return self._compiled.search(text, timeout=SEARCH_BUDGET)  # type: ignore[arg-type]
        except TimeoutError:
            raise self._timeout(text) from None

    def finditer(self, text: AnyStr) -> Iterator[regex.Match[AnyStr]]:
        """Every match, all found within one SEARCH_BUDGET."""
        try:
            return iter(list(self._compiled.finditer(text, timeout=SEARCH_BUDGET)))
        except TimeoutError:
            raise self._timeout(text) from None

    def _timeout(self, text: AnyStr | bytearray) -> PatternTimeout:
        if isinstance(self.pattern, str):
            return PatternTimeout(self.pattern, len(text))
        return PatternTimeout(self.pattern.decode("utf-8", "replace"), len(text), "bytes")

    def __repr__(self) -> str:
        return f"Bounded({self.pattern!r})"
