"""Profile fields of stubs beyond routes: body limit, TLS, CORS, default headers, matchers."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1,
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}
DEFAULT_MAX_BODY = 1024**2  # aiohttp's own default (client_max_size), now written down
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_size(value: object) -> int:
    """`10MiB`, `512KiB`, `2MB`, `100B` or a plain number of bytes -> bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or text like 512KiB, 10MiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (found := _SIZE.match(value)):
        unit = found.group(2).lower() if found.group(2) else None
        size = int(float(found.group(1)) * _SIZE_UNITS[unit])
    else:
        raise ValueError(f"{value!r} is not a size: write it like 512KiB, 10MiB or 1048576")
    if size < 1:
        raise ValueError("a size must be at least 1 byte")
    return size


ByteSize = Annotated[int, BeforeValidator(parse_size)]


def _regex(pattern: str, what: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"`{what}` is not a valid regular expression: {exc}") from None


def _env_names(names: list[str]) -> list[str]:
    for name in names:
        if not _ENV_NAME.match(name):
            raise ValueError(f"{name!r} is not an environment variable name")
    return names


EnvNames = Annotated[list[str], AfterValidator(_env_names)]


class AbsentSpec(BaseModel):
    """Headers and query parameters a request must NOT carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    headers: list[str] = Field(default_factory=list)
    query: list[str] = Field(default_factory=list)


def check_nested_regexes(json_match: dict[str, Any]) -> None:
    """Every string inside a nested object of `match.json` must be a valid regex."""

    def walk(value: object, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}.{key}")
        elif isinstance(value, str):
            _regex(value, where)

    for key, value in json_match.items():
        if isinstance(value, dict):
            walk(value, f"json.{key}")


def check_add_prefix(add_prefix: str | None, proxy: str | None) -> None:
    """`add_prefix` goes with `proxy` and starts with /."""
    if add_prefix is not None:
        if proxy is None:
            raise ValueError("add_prefix only goes with proxy")
        if not add_prefix.startswith("/"):
            raise ValueError("add_prefix must start with /")


def check_status(value: object) -> int | str:
    """A status is a number 100..599, or a template that renders to one per request."""
    if isinstance(value, bool):
        raise ValueError("a status is a number like 200, or a template like '{{ query.code }}'")
    if isinstance(value, int):
        if not 100 <= value <= 599:
            raise ValueError("a status must be between 100 and 599")
        return value
    if isinstance(value, str):
        if value.strip().isdigit():
            return check_status(int(value))
        if "{{" in value or "{%" in value:
            return value
    raise ValueError(
        f"{value!r} is not a status: write a number like 201, or a template like "
        "'{{ query.code }}'"
    )


Status = Annotated[int | str, BeforeValidator(check_status)]
