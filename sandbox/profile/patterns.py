"""Regular expressions from a profile, refused when they can backtrack catastrophically: one
stub's match runs on the loop every stub shares, so `(a+)+$` would freeze them all."""

from __future__ import annotations

import functools
import re
import re._parser as sre  # type: ignore[import-not-found,unused-ignore]
from re._compiler import compile as _compile  # type: ignore[import-not-found,unused-ignore]
from typing import Any

_REPEATS = ("MAX_REPEAT", "MIN_REPEAT")
_UNBOUNDED = sre.MAXREPEAT
HINT = (
    "such a pattern takes exponential time on some inputs and would stall every stub; "
    "write it without the nesting, or make the inner part possessive (`a++`) or atomic "
    "(`(?>...)`)"
)


def catastrophic(pattern: str) -> str | None:
    """Why `pattern` can backtrack exponentially (the piece at fault), or None if it cannot.

    Looks at the parsed pattern for a repeat (with no upper bound, or inside one) that holds
    another repeat, or holds a choice between branches that can begin with the same
    character. Possessive repeats and atomic groups never backtrack, so they are fine. So
    is a repeat whose every inner repeat is fenced in by a character it cannot match
    (`(\\d+\\.)+`, `([a-z]+/)*`): each round then ends at one place only. Assumes `pattern`
    compiles.
    """
    try:
        parsed = sre.parse(pattern)
    except re.error:
        return None
    return _walk(list(parsed), None, parsed.state)


def _walk(items: list[tuple[Any, Any]], outer: str | None, state: Any) -> str | None:
    for op, av in items:
        name = str(op)
        if name in _REPEATS:
            _low, high, sub = av
            if high > 1 and outer is not None and (high == _UNBOUNDED or outer == "unbounded"):
                return "a repeat inside a repeat"
            if high > 1 and _fenced(list(sub), state):
                continue  # single characters and fenced repeats: nothing nested to retry
            if high > 1:
                here = "unbounded" if high == _UNBOUNDED else "bounded"
                if here == "unbounded" and _overlapping_branch(list(sub)):
                    return "a repeated choice whose branches can start with the same character"
                found = _walk(list(sub), here if outer is None else "unbounded", state)
            else:
                found = _walk(list(sub), outer, state)
        elif name == "SUBPATTERN":
            found = _walk(list(av[3]), outer, state)
        elif name == "BRANCH":
            found = next((f for alt in av[1] if (f := _walk(list(alt), outer, state))), None)
        elif name in ("ASSERT", "ASSERT_NOT"):
            found = _walk(list(av[1]), outer, state)
        elif name == "GROUPREF_EXISTS":
            alts = [alt for alt in av[1:] if alt]
            found = next((f for alt in alts if (f := _walk(list(alt), outer, state))), None)
        else:  # literals, sets, anchors; POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack
            found = None
        if found:
            return found
    return None


_ONE_CHARACTER = ("LITERAL", "NOT_LITERAL", "IN", "ANY")


def _fenced(items: list[tuple[Any, Any]], state: Any) -> bool:
    """Whether a repeated body is single characters and repeats of one character, each
    repeat followed (in the body, or at the start of the next round) by one required
    character it cannot match: `\\d+\\.`, `[a-z]+/`, `\\w+\\s`, `\\.\\d+`.

    Where each round may end is then fixed, so the rounds cannot share the text out in
    more than one way. Anything else (groups, choices, anchors, case-insensitive matching)
    is not looked into and counts as not fenced.
    """
    if len(items) == 1 and str(items[0][0]) == "SUBPATTERN":
        return _fenced(list(items[0][1][3]), state)
    if not items or state.flags & re.IGNORECASE:
        return False
    for i, (op, av) in enumerate(items):
        name = str(op)
        if name in _ONE_CHARACTER:
            continue
        if name not in _REPEATS or len(av[2]) != 1 or str(av[2][0][0]) not in _ONE_CHARACTER:
            return False
        fence_op, fence_av = items[(i + 1) % len(items)]
        fence = _characters(str(fence_op), fence_av)
        if fence is None or _matches_any(av[2][0], fence, state):
            return False
    return True


def _characters(name: str, av: Any) -> frozenset[str] | None:
    """Every character a one-character item can match, or None if that is not a short list."""
    if name == "LITERAL":
        return frozenset(chr(av))
    if name != "IN":
        return None
    chars: set[str] = set()
    for kind, value in av:
        kind = str(kind)
        if kind == "LITERAL":
            chars.add(chr(value))
        elif kind == "RANGE" and value[1] - value[0] < 256:
            chars.update(map(chr, range(value[0], value[1] + 1)))
        elif kind == "CATEGORY" and str(value) == "CATEGORY_SPACE":
            chars |= _spaces()
        else:
            return None
    return frozenset(chars)


@functools.cache
def _spaces() -> frozenset[str]:
    """What `\\s` matches in a str pattern: Unicode's white space, all of it below U+3001."""
    return frozenset(c for c in map(chr, range(0x3001)) if c.isspace())


def _matches_any(item: tuple[Any, Any], chars: frozenset[str], state: Any) -> bool:
    """Whether the one-character `item`, compiled alone, matches any of `chars`."""
    one = _compile(sre.SubPattern(state, [item]), state.flags)
    return any(one.fullmatch(c) for c in chars)


def _overlapping_branch(items: list[tuple[Any, Any]]) -> bool:
    for op, av in items:
        name = str(op)
        if name == "SUBPATTERN":
            return _overlapping_branch(list(av[3]))
        if name == "BRANCH":
            seen: set[int] = set()
            for alt in av[1]:
                first = _first(list(alt))
                if first is None or first & seen:
                    return True
                seen |= first
            return False
        return False
    return False


_DIGITS = set(range(ord("0"), ord("9") + 1))


def _first(items: list[tuple[Any, Any]]) -> set[int] | None:
    """The characters a branch can begin with, or None for 'nearly anything' or 'nothing'."""
    if not items:
        return None  # an empty branch matches nothing, over and over
    op, av = items[0]
    name = str(op)
    if name == "LITERAL":
        return {av}
    if name == "SUBPATTERN":
        return _first(list(av[3]))
    if name == "IN":
        chars: set[int] = set()
        for kind, value in av:
            kind = str(kind)
            if kind == "LITERAL":
                chars.add(value)
            elif kind == "RANGE" and value[1] - value[0] < 256:
                chars |= set(range(value[0], value[1] + 1))
            elif kind == "CATEGORY" and str(value) == "CATEGORY_DIGIT":
                chars |= _DIGITS
            else:
                return None
        return chars
    return None


def check_pattern(pattern: str, what: str) -> re.Pattern[str]:
    """Compile `pattern`; raises ValueError (naming `what`) if it is invalid or catastrophic."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"`{what}` is not a valid regular expression: {exc}") from None
    risk = catastrophic(pattern)
    if risk:
        raise ValueError(f"`{what}` is refused: {pattern!r} has {risk}; {HINT}")
    return compiled


# `{name}` or `{name:regex}` in a route path (a regex may hold `{m,n}` braces of its own).
_PARAM = re.compile(r"\{([_a-zA-Z][_a-zA-Z0-9]*):((?:[^{}]|\{[^{}]*\})+)\}")


def check_path_patterns(path: str) -> None:
    """Refuse (ValueError) a catastrophic regex in a `{name:regex}` part of a route path."""
    # An invalid one is left to the stub's own check, which names the route.
    for found in _PARAM.finditer(path):
        risk = catastrophic(found.group(2))
        if risk:
            what = f"{{{found.group(1)}:{found.group(2)}}}"
            raise ValueError(f"`{what}` is refused: it has {risk}; {HINT}")
