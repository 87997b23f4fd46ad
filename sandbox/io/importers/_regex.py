"""Regex building blocks for importers: exact, prefix, suffix, substring, negation, conjunction.

Every pattern is used with `re.search` by the stub, so "exact" is anchored with `^` and `\\Z`
(`$` would also match before a trailing newline). Flags are scoped (`(?i:...)`), never global,
so patterns can be combined.
"""

from __future__ import annotations

import re

_JAVA_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z])")


def _scoped(pattern: str, ignore_case: bool) -> str:
    return f"(?i:{pattern})" if ignore_case else pattern


def exact(value: str, ignore_case: bool = False) -> str:
    return _scoped(f"^{re.escape(value)}\\Z", ignore_case)


def prefix(value: str, ignore_case: bool = False) -> str:
    return _scoped(f"^{re.escape(value)}", ignore_case)


def suffix(value: str, ignore_case: bool = False) -> str:
    return _scoped(f"{re.escape(value)}\\Z", ignore_case)


def substring(value: str, ignore_case: bool = False) -> str:
    return _scoped(re.escape(value), ignore_case)


def whole(pattern: str, ignore_case: bool = False) -> str:
    """A regex that must match the whole value (Java's `String.matches`)."""
    return _scoped(f"^(?:{pattern})\\Z", ignore_case)


def negate(pattern: str) -> str:
    """Matches exactly the values `pattern` (searched) does not match."""
    return f"^(?!(?s:.*?)(?:{pattern}))"


def both(first: str, second: str) -> str:
    """Matches the values that both patterns (searched) match."""
    return f"^(?=(?s:.*?)(?:{first}))(?=(?s:.*?)(?:{second}))"


def from_java(pattern: str) -> str:
    """A Java (or JavaScript) regex in Python syntax; raises ValueError if it cannot compile.

    Named groups `(?<name>...)` become `(?P<name>...)`; possessive quantifiers and `\\p{...}`
    classes are not supported by Python's `re` and fail to compile.
    """
    converted = _JAVA_NAMED_GROUP.sub("(?P<", pattern)
    try:
        re.compile(converted)
    except re.error as exc:
        raise ValueError(f"the regex {pattern!r} does not compile in Python: {exc}") from None
    return converted
