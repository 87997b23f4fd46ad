"""What the importers share besides reading the source: names, pointers, template-safe text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_NAME_CHARS = re.compile(r"[^a-z0-9_-]+")
_TEMPLATE_START = re.compile(r"\{(?=[{%#])")


def slug(text: str, fallback: str) -> str:
    """A valid profile or service name made from free text (`Pet Store API` -> `pet-store-api`)."""
    name = _NAME_CHARS.sub("-", text.lower()).strip("-_")
    if not name:
        return fallback
    if not name[0].isalpha():
        name = f"{fallback}-{name}"
    return name[:63].rstrip("-_")


def profile_name(source: Path, fallback: str) -> str:
    """A valid profile name from a file or folder name (`My Stubs.json` -> `my-stubs`)."""
    return slug(source.stem if source.suffix else source.name, fallback)


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
    """A JSON pointer from parts (`paths`, `/pets/{id}`, `get`) -> `/paths/~1pets~1{id}/get`."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def as_map(value: Any) -> dict[str, Any]:
    """`value` if it is a mapping, else empty: sources are read defensively, field by field."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_strs(value: Any) -> list[str]:
    """The strings of a list (a `required` list, `produces`); anything else is left out."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


MALFORMED = (TypeError, AttributeError, ValueError, KeyError, IndexError, RecursionError)
