"""A compose service's environment (`env_file`, `environment`) as the profile's `env:`."""

from __future__ import annotations

import re
from typing import Any

from sandbox.errors import SourceError
from sandbox.io.importers.compose_context import ComposeContext
from sandbox.io.importers.compose_interpolate import parse_env_file
from sandbox.io.importers.compose_refs import escape_braces, rewrite_hosts

# A value that is just a service's name is a host only under a name that says so
# (DATABASE_HOST=db), not MYSQL_DATABASE=site beside a service called site.
_HOST_KEY = re.compile(r"HOST|SERVER|ADDR|ENDPOINT|BROKER", re.IGNORECASE)


def environment(ctx: ComposeContext, cname: str, spec: dict[str, Any]) -> dict[str, str]:
    """`env_file` values, then `environment` over them; hosts and own binds as placeholders.

    Raises SourceError for a required env file that does not exist or cannot be parsed.
    """
    env: dict[str, str] = {}
    files = spec.get("env_file")
    entries = files if isinstance(files, list) else [files] if files is not None else []
    for i, entry in enumerate(entries):
        env.update(_env_file(ctx, cname, i, entry))
    raw = spec.get("environment")
    where = ctx.at("services", cname, "environment")
    pairs: list[tuple[str, object]] = []
    if isinstance(raw, list):
        for item in raw:
            key, sep, text = str(item).partition("=")
            pairs.append((key, text if sep else None))
    elif isinstance(raw, dict):
        pairs = [(str(k), v) for k, v in raw.items()]
    for key, value in pairs:
        if value is None:
            if key in ctx.interpolate.env:
                env[key] = ctx.interpolate.env[key]
            else:
                ctx.result.drop(
                    f"{where}/{key}",
                    f"{key} takes its value from the environment, where it is not set",
                )
            continue
        env[key] = text_of(value)
    return {k: _env_value(ctx, cname, k, v) for k, v in env.items()}


def _env_file(ctx: ComposeContext, cname: str, i: int, entry: object) -> dict[str, str]:
    required = True
    if isinstance(entry, dict):
        required = entry.get("required", True) is not False
        entry = entry.get("path")
    if not isinstance(entry, str):
        return {}
    path = ctx.source.parent / entry
    if not path.is_file():
        if required:
            raise SourceError(
                f"{ctx.at('services', cname, 'env_file', i)}: env file {path} does not exist."
            )
        return {}
    where = f"{path}"
    return {k: ctx.interpolate(v, f"{where}:{k}") for k, v in parse_env_file(path).items()}


def _env_value(ctx: ComposeContext, cname: str, key: str, value: str) -> str:
    text = escape_braces(value)
    hostlike = _HOST_KEY.search(key) is not None
    text, names = rewrite_hosts(text, ctx.first_replicas(), ctx.main, whole=hostlike)
    changed = False
    if value.strip() in {str(p) for p in ctx.main[cname]}:
        text, changed = "{port}", True  # the port the program is told to listen on
    elif value.strip() in ("0.0.0.0", "::", "[::]"):
        text, changed = "{address}", True
    if names or changed:
        what = f"hosts {', '.join(names)}" if names else "its own bind address or port"
        ctx.result.approximate(
            ctx.at("services", cname, "environment", key),
            f"{key}: {what} became placeholders filled in at `up`",
        )
    return text


def text_of(value: object) -> str:
    """A compose environment value as text: booleans as `true`/`false`, null as empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
