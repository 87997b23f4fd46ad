"""Durations as profiles and options write them: `750ms`, `2s`, `1.5s`, `1m` or seconds."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}


def parse_duration(value: object) -> float:
    """`750ms`, `2s`, `1.5s`, `1m` or a plain number of seconds -> seconds as a float."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or text like 750ms, 2s, 1m")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (found := _DURATION.match(value)):
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
    else:
        raise ValueError(f"{value!r} is not a duration: write it like 750ms, 2s or 1m")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds
