"""What the openapi and har importers share: reading a bounded source, names, template-safe text."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from sandbox.errors import SourceError

MAX_SOURCE_BYTES = 20 * 1024 * 1024
_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")
_TEMPLATE_START = re.compile(r"\{(?=[{%#])")


def read_source(source: Path, what: str, *, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of `source`, refused unless it is a regular file of at most `limit` bytes.

    Raises SourceError. The size is checked before and while reading, so a file that
    grows (or a FIFO posing as a file) cannot make the import read without bound.
    """
    try:
        info = source.stat()
    except OSError as exc:
        raise SourceError(
            f"cannot read the {what} {source}: {exc.strerror or exc}.",
            "check the path",
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(f"the {what} {source} is not a regular file.", "give the path of a file")
    if info.st_size > limit:
        raise SourceError(
            f"the {what} {source} is {info.st_size} bytes, over the import limit of {limit}.",
            "split it, or import a smaller export",
        )
    try:
        with source.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise SourceError(f"cannot read the {what} {source}: {exc.strerror or exc}.") from None
    if len(data) > limit:
        raise SourceError(f"the {what} {source} grew past the import limit of {limit} bytes.")
    return data


def parse_json(data: bytes, source: Path, what: str) -> Any:
    """JSON text to data; raises SourceError naming the line and column of the problem."""
    try:
        return json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise SourceError(f"the {what} {source} is not UTF-8 text ({exc.reason}).") from None
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{source}:{exc.lineno}:{exc.colno}: the {what} is not valid JSON: {exc.msg}."
        ) from None
    except RecursionError:
        raise SourceError(f"the {what} {source} is nested too deeply to read.") from None


def slug(text: str, fallback: str) -> str:
    """A valid profile or service name made from free text (`Pet Store API` -> `pet-store-api`)."""
    name = _NAME_CHARS.sub("-", text.lower()).strip("-_")
    if not name:
        return fallback
    if not name[0].isalpha():
        name = f"{fallback}-{name}"
    return name[:63].rstrip("-_")


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name-2`, `name-3`... if it is already taken; the result is added to `taken`."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = name[: 63 - len(suffix)] + suffix
    taken.add(candidate)
    return candidate


def literal_text(text: str) -> str:
    """Text that the stub's templates render back to exactly `text`.

    Response text is a Jinja2 template wherever it contains `{{`, `{%` or `{#`; each such `{`
    is written as `{{ '{' }}` so that imported bodies are sent as they were recorded.
    """
    return _TEMPLATE_START.sub("{{ '{' }}", text)


def literal_json(value: Any) -> Any:
    """`literal_text` applied to every string inside a JSON value (keys are not templates)."""
    if isinstance(value, str):
        return literal_text(value)
    if isinstance(value, list):
        return [literal_json(v) for v in value]
    if isinstance(value, dict):
        return {k: literal_json(v) for k, v in value.items()}
    return value


def pointer(*parts: object) -> str:
    """A JSON pointer from parts (`paths`, `/pets/{id}`, `get`) -> `#/paths/~1pets~1{id}/get`."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped)


def as_map(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else empty: sources are read defensively, field by field."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_strs(value: Any) -> list[str]:
    """The strings of a list (a `required` list, `produces`); anything else is left out."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


MALFORMED = (TypeError, AttributeError, ValueError, KeyError, IndexError, RecursionError)
