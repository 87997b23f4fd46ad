"""Route paths and conditions shared by importers: literal and regex paths, joined conditions."""

from __future__ import annotations

import re

from sandbox.io.importers import _regex as rx
from sandbox.services.http_routes import compile_path
from sandbox.services.templates import StubConfigError


def escape_template(text: str) -> str:
    """Text that Jinja renders as itself: `{{`, `{%` and `{#` are written as expressions."""
    return re.sub(r"\{([{%#])", lambda m: "{{ '{" + m.group(1) + "' }}", text)


def literal_path(path: str) -> str:
    """A route path matching exactly `path` (braces, which routes reserve, as a regex)."""
    if "{" not in path and "}" not in path:
        return path
    inner = re.escape(path[1:]).replace("\\{", "\\x7b").replace("\\}", "\\x7d")
    inner = inner.replace("{", "\\x7b").replace("}", "\\x7d")
    return "/{wm:" + inner + "}"


def regex_path(pattern: str) -> str:
    """A route path whose parameter `wm` makes the whole path fullmatch `pattern`."""
    inner = rx.from_java(pattern).replace("\\{", "\\x7b").replace("\\}", "\\x7d")
    if inner.startswith("^"):
        inner = inner[1:]
    simple = "|" not in inner and inner[1:2] not in ("?", "*", "+", "{")
    # Otherwise the route's own leading `/` comes first: look back past it to match the whole.
    whole = f"(?<=(?=(?:{inner})\\Z)/).*"
    inner = inner[1:] if simple and inner.startswith("/") else whole
    return "/{wm:" + inner + "}"


def check_path(path: str) -> None:
    """Raise ValueError when the stub could not build a route with this path."""
    try:
        compile_path(path, "path")
    except StubConfigError as exc:
        raise ValueError(exc.message) from None


def add_condition(
    conditions: dict[str, str], name: str, pattern: str, *, fold: bool = False
) -> None:
    """Add a condition; a second one on the same name must hold as well."""
    key = next((k for k in conditions if k.lower() == name.lower()), name) if fold else name
    conditions[key] = rx.both(conditions[key], pattern) if key in conditions else pattern
