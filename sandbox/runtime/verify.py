"""Verification over a stub's journal: did it receive what a test expects, how often, and if
not, what did it receive and which requests came nearest (pure: data in, data out)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any

from sandbox.errors import UsageError
from sandbox.services.journal import Entry

SHOWN = 10  # received requests listed in a failure message (the newest)
NEAREST = 3


def _times(n: int) -> str:
    return f"{n} time{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Expectation:
    """What a test expects a service to have received, and how many times.

    `method` (any case) and `path` (exact, without the query) narrow the requests; `query`
    values must be equal, `headers` and `body` are regexes searched for. With none of
    `times`, `at_least`, `at_most`, at least once is expected.
    """

    service: str
    method: str | None = None
    path: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    times: int | None = None
    at_least: int | None = None
    at_most: int | None = None

    def __post_init__(self) -> None:
        if self.times is not None and (self.at_least is not None or self.at_most is not None):
            raise UsageError("verify takes `times`, or `at_least` and/or `at_most`, not both.")
        for name in ("times", "at_least", "at_most"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise UsageError(f"verify: `{name}` must be a whole number >= 0, not {value!r}.")
        for what, pattern in [*self.headers.items(), ("body", self.body)]:
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise UsageError(f"verify: {what} {pattern!r} is not a regex: {exc}.") from None

    @classmethod
    def from_json(cls, data: Any) -> Expectation:
        """An expectation from the control API's JSON. Raises UsageError for a bad document."""
        if not isinstance(data, dict) or not isinstance(data.get("service"), str):
            raise UsageError('verify needs a JSON object with at least "service".')
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"verify does not know {', '.join(unknown)} (it knows {', '.join(sorted(known))})."
            )
        for name in ("query", "headers"):
            value = data.get(name, {})
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise UsageError(f'verify: "{name}" is a JSON object of names and text values.')
        for name in ("method", "path", "body"):
            if data.get(name) is not None and not isinstance(data[name], str):
                raise UsageError(f'verify: "{name}" is text.')
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"service": self.service}
        for name in ("method", "path", "body", "times", "at_least", "at_most"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        if self.query:
            data["query"] = dict(self.query)
        if self.headers:
            data["headers"] = dict(self.headers)
        return data

    def describe(self) -> str:
        """`POST /orders with header x-api-key ~ /abc/`."""
        what = " ".join(
            x
            for x in (self.method.upper() if self.method else "any method", self.path or "any path")
            if x
        )
        extra = [f"query {k}={v!r}" for k, v in self.query.items()]
        extra += [f"header {k} ~ /{v}/" for k, v in self.headers.items()]
        if self.body is not None:
            extra.append(f"body ~ /{self.body}/")
        return what + (" with " + ", ".join(extra) if extra else "")

    def wanted(self) -> str:
        if self.times is not None:
            return f"exactly {_times(self.times)}"
        if self.at_least is not None and self.at_most is not None:
            return f"between {self.at_least} and {_times(self.at_most)}"
        if self.at_most is not None:
            return f"at most {_times(self.at_most)}"
        return f"at least {_times(self.at_least if self.at_least is not None else 1)}"

    def holds(self, count: int) -> bool:
        if self.times is not None:
            return count == self.times
        low = self.at_least if self.at_least is not None else (0 if self.at_most is not None else 1)
        return count >= low and (self.at_most is None or count <= self.at_most)

    def mismatch(self, entry: Entry) -> str | None:
        """The first criterion `entry` fails, or None when it is one of the expected requests."""
        if self.method is not None and entry.method != self.method.upper():
            return f"method {entry.method}, not {self.method.upper()}"
        if self.path is not None and entry.path != self.path:
            return f"path {entry.path}, not {self.path}"
        for name, value in self.query.items():
            given = entry.param(name)
            if given != value:
                return f"query {name}={given!r}, not {value!r}"
        for name, pattern in self.headers.items():
            given = entry.header(name)
            if given is None:
                return f"header {name} is missing"
            if not re.search(pattern, given):
                return f"header {name}={given!r} does not match /{pattern}/"
        if self.body is not None and not re.search(self.body, entry.text):
            return f"the body does not match /{self.body}/"
        return None


def _closeness(expect: Expectation, entry: Entry) -> float:
    """How near `entry` comes to `expect`: same path counts most, then the method."""
    score = 0.0
    if expect.path is not None:
        score += 2 * SequenceMatcher(None, entry.path, expect.path).ratio()
    if expect.method is None or entry.method == expect.method.upper():
        score += 1.0
    return score


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification; `message` says it all in words."""

    ok: bool
    expectation: Expectation
    count: int
    received: tuple[Entry, ...]  # the service's newest entries (at most SHOWN)
    total: int  # how many entries the journal holds
    nearest: tuple[tuple[Entry, str], ...]  # requests that came nearest, with what differed

    @property
    def message(self) -> str:
        expect = self.expectation
        head = (
            f"{expect.service}: expected {expect.describe()} {expect.wanted()}, "
            f"received it {_times(self.count)}."
        )
        if self.ok:
            return head
        lines = [head]
        if not self.total:
            lines.append(f"{expect.service} received nothing (since the start or the last reset).")
        else:
            shown = f"the newest {len(self.received)}" if self.total > len(self.received) else "all"
            lines.append(f"{expect.service} received {self.total} ({shown} listed):")
            lines += [f"  #{e.seq} {e.summary}" for e in self.received]
        if self.nearest:
            lines.append("nearest misses:")
            lines += [f"  #{e.seq} {e.method} {e.path}: {why}" for e, why in self.nearest]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected": self.expectation.to_json(),
            "count": self.count,
            "total": self.total,
            "received": [e.to_json() for e in self.received],
            "nearest": [{"entry": e.to_json(), "why": why} for e, why in self.nearest],
            "message": self.message,
        }


def verify(expect: Expectation, entries: Sequence[Entry]) -> Verdict:
    """Count the entries `expect` describes; name the nearest others when the count is wrong."""
    count = 0
    misses: list[tuple[float, Entry, str]] = []
    for entry in entries:
        why = expect.mismatch(entry)
        if why is None:
            count += 1
        else:
            misses.append((_closeness(expect, entry), entry, why))
    misses.sort(key=lambda item: (-item[0], -item[1].seq))
    return Verdict(
        ok=expect.holds(count),
        expectation=expect,
        count=count,
        received=tuple(entries[-SHOWN:]),
        total=len(entries),
        nearest=tuple((entry, why) for _, entry, why in misses[:NEAREST]),
    )
