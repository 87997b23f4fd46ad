"""Compose `ports` and `expose` entries (short and long syntax) as plain port mappings."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")

Report = Callable[[str, str], None]  # (location suffix, sentence)


@dataclass(frozen=True)
class PortMapping:
    """One published port: the container's `target`, the host's `published` (None: any)."""

    target: int
    published: int | None = None
    host_ip: str | None = None
    protocol: str = "tcp"


def _port(text: str, what: str, note: Report, where: str) -> int | None:
    found = _RANGE.match(text.strip())
    if found is None:
        note(where, f"{what} {text!r} is not a port number; the entry is dropped")
        return None
    first, last = found.group(1), found.group(2)
    if last is not None and last != first:
        note(where, f"the range {text} keeps only its first port, {first}")
    value = int(first)
    if not 1 <= value <= 65535:
        note(where, f"{what} {value} is outside 1..65535; the entry is dropped")
        return None
    return value


def parse_port(entry: object, where: str, note: Report) -> PortMapping | None:
    """One `ports` entry: `8080:80`, `127.0.0.1:8080:80/tcp`, `[::1]::80`, `80`, or a mapping."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        return _checked(PortMapping(entry), where, note)
    if isinstance(entry, dict):
        return _long(entry, where, note)
    if not isinstance(entry, str):
        note(where, f"{entry!r} is not a port entry; it is dropped")
        return None
    text, _, protocol = entry.partition("/")
    host_ip: str | None = None
    if text.startswith("["):
        host_ip, _, text = text[1:].partition("]")
        text = text.removeprefix(":")
        parts = text.split(":")
        parts = ["", *parts] if len(parts) == 1 else parts
    else:
        parts = text.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        elif len(parts) == 1:
            parts = ["", parts[0]]
        elif len(parts) != 2:
            note(where, f"{entry!r} is not HOST:PUBLISHED:TARGET; the entry is dropped")
            return None
    target = _port(parts[1], "the target port", note, where)
    if target is None:
        return None
    published = _port(parts[0], "the published port", note, where) if parts[0] else None
    return _checked(PortMapping(target, published, host_ip or None, protocol or "tcp"), where, note)


def _long(entry: dict[str, object], where: str, note: Report) -> PortMapping | None:
    target = entry.get("target")
    if isinstance(target, str):
        target = _port(target, "the target port", note, where)
    if not isinstance(target, int) or isinstance(target, bool):
        note(where, "a port mapping without a numeric `target` is dropped")
        return None
    published = entry.get("published")
    if published is not None:
        published = _port(str(published), "the published port", note, where)
    host_ip = entry.get("host_ip")
    protocol = entry.get("protocol") or "tcp"
    for key in sorted(set(entry) - {"target", "published", "host_ip", "protocol"}):
        note(f"{where}/{key}", f"`{key}` of a port mapping has no counterpart; it is dropped")
    mapping = PortMapping(
        target,
        published if isinstance(published, int) else None,
        host_ip if isinstance(host_ip, str) else None,
        str(protocol),
    )
    return _checked(mapping, where, note)


def _checked(mapping: PortMapping, where: str, note: Report) -> PortMapping | None:
    if mapping.protocol != "tcp":
        note(where, f"{mapping.protocol} port {mapping.target} is dropped: services speak TCP")
        return None
    return mapping


def parse_expose(entry: object, where: str, note: Report) -> int | None:
    """One `expose` entry (`"5432"`, `5432`, `"5432/tcp"`) as a port, or None."""
    text, _, protocol = str(entry).partition("/")
    if protocol and protocol != "tcp":
        note(where, f"{protocol} port {text} is dropped: services speak TCP")
        return None
    return _port(text, "the exposed port", note, where)
