"""The `{placeholder}` grammar of command services, checked before anything runs."""

from __future__ import annotations

import re
import shlex

from sandbox.profile.models import CommandService, Profile

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]

# `{{port}}` is a literal `{port}`; `${port}` is left to the shell; `{port}` is filled in.
# services/command.py fills in with this same TOKEN (and PEER), so the two cannot drift.
TOKEN = re.compile(r"\{(\{[A-Za-z_][A-Za-z0-9_.\-]*\})\}|(?<!\$)\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
OWN = ("address", "port", "url", "name", "python", "data", "tmp")
PEER = ("address", "port", "url", "name")
_SHOWN = (
    "{address}, {port}, {url}, {name}, {python}, {data}, {tmp} "
    "or {services.NAME.address|port|url|name}"
)


def unknown_placeholders(text: str, services: list[str]) -> list[str]:
    """Each `{key}` in `text` that a command service cannot fill, in order of appearance."""
    bad: list[str] = []
    for found in TOKEN.finditer(text):
        key = found.group(2)
        if key is None or key in OWN:
            continue
        parts = key.split(".")
        if len(parts) == 3 and parts[0] == "services" and parts[1] in services and parts[2] in PEER:
            continue
        bad.append(key)
    return bad


def _explain(key: str, services: list[str]) -> str:
    parts = key.split(".")
    listed = ", ".join(services)
    if parts[0] == "services" and len(parts) == 3 and parts[1] not in services:
        why = f'there is no service "{parts[1]}" (services: {listed})'
    elif parts[0] == "services" and len(parts) == 3:
        why = f"a service has {', '.join(PEER)}, not {parts[2]}"
    else:
        why = f"use {_SHOWN}"
    return (
        f"unknown placeholder {{{key}}}: {why}; write {{{{{key}}}}} for a literal {{{key}}}, "
        "and ${VAR} is left to the shell"
    )


def check_placeholders(profile: Profile) -> list[Problem]:
    """Unknown placeholders (and a `run:` that cannot be split) of every command service."""
    services = list(profile.services)
    problems: list[Problem] = []
    for name, service in profile.services.items():
        if not isinstance(service, CommandService):
            continue
        at: FieldPath = ("services", name)
        try:
            shlex.split(service.run)
        except ValueError as exc:
            problems.append(
                (
                    (*at, "run"),
                    f"cannot be split into arguments: {exc}; close every quote, "
                    "or write `sh -c '...'` when you need a shell",
                )
            )
        fields: list[tuple[FieldPath, str]] = [((*at, "run"), service.run)]
        fields += [((*at, "env", key), value) for key, value in service.env.items()]
        if service.cwd is not None:
            fields.append(((*at, "cwd"), service.cwd))
        for path, text in fields:
            problems.extend(
                (path, _explain(key, services)) for key in unknown_placeholders(text, services)
            )
    return problems
