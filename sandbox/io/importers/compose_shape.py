"""The shapes the compose importer relies on, checked first: compose itself refuses the rest."""

from __future__ import annotations

import re
from typing import Any

from sandbox.errors import SourceError

_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
_WORD = (str, int, float)
_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "command": ((str, list, type(None)), "text or a list of words"),
    "entrypoint": ((str, list, type(None)), "text or a list of words"),
    "ports": ((list,), "a list"),
    "expose": ((list,), "a list"),
    "environment": ((list, dict), "a list of KEY=VALUE or a mapping"),
    "env_file": ((str, list), "a path or a list of paths"),
    "depends_on": ((list, dict), "a list of services or a mapping"),
    "healthcheck": ((dict,), "a mapping"),
    "deploy": ((dict,), "a mapping"),
    "scale": ((int,), "a number"),
    "restart": ((str,), "text"),
    "stop_signal": ((str,), "text"),
    "stop_grace_period": ((str, int, float), "a duration"),
    "image": ((str,), "text"),
    "build": ((str, dict), "a path or a mapping"),
    "container_name": ((str,), "text"),
}
_ITEMS: dict[str, tuple[tuple[type, ...], str]] = {
    "command": (_WORD, "a word"),
    "entrypoint": (_WORD, "a word"),
    "ports": ((str, int, dict), "a port entry"),
    "expose": ((str, int), "a port"),
    "environment": ((str,), "KEY=VALUE text"),
    "env_file": ((str, dict), "a path or {path, required}"),
    "depends_on": ((str,), "a service name"),
}


def check_shapes(source: object, services: dict[Any, Any]) -> None:
    """Raise SourceError listing every value whose type compose would refuse, with its place."""
    problems: list[str] = []
    for name, spec in services.items():
        where = f"{source}#/services/{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}: a service name is letters, digits, `.`, `_` or `-`")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where}: a service must be a mapping")
            continue
        for key, value in spec.items():
            problems.extend(_value(f"{where}/{key}", key, value))
    if problems:
        count = len(problems)
        raise SourceError(
            f"{source} is not a valid compose file ({count} problem{'s' * (count != 1)}):\n"
            + "\n".join(f"  {p}" for p in problems),
            "Fix these as `docker compose config` would ask you to, then import again.",
        )


def _value(where: str, key: str, value: Any) -> list[str]:
    if key not in _SHAPES:
        return []
    types, what = _SHAPES[key]
    if isinstance(value, bool) or not isinstance(value, types):
        return [f"{where}: must be {what}, not {type(value).__name__}"]
    problems: list[str] = []
    if isinstance(value, list) and key in _ITEMS:
        item_types, item = _ITEMS[key]
        for i, entry in enumerate(value):
            if isinstance(entry, bool) or not isinstance(entry, item_types):
                problems.append(f"{where}/{i}: must be {item}, not {type(entry).__name__}")
    if key == "depends_on" and isinstance(value, dict):
        for dep, options in value.items():
            if not isinstance(options, dict | type(None)):
                problems.append(f"{where}/{dep}: must be a mapping such as {{condition: ...}}")
    if key == "healthcheck":
        test = value.get("test")
        if test is not None and not isinstance(test, str | list):
            problems.append(f"{where}/test: must be text or a list such as [CMD, ...]")
    if key == "deploy" and "replicas" in value:
        replicas = value["replicas"]
        if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
            problems.append(f"{where}/replicas: must be a whole number, 0 or more")
    if key == "scale" and value < 0:
        problems.append(f"{where}: must be 0 or more")
    return problems
