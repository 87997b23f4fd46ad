"""Small frozen messages the runtime emits; `output.py` alone turns them into text or JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sandbox.probe import ProbeResult


@dataclass(frozen=True)
class Event:
    """Base of every runtime message."""


@dataclass(frozen=True)
class ServiceStarting(Event):
    service: str
    kind: str
    url: str


@dataclass(frozen=True)
class ServiceReady(Event):
    service: str
    url: str
    seconds: float  # from the start of `up` to this service answering its readiness probe


@dataclass(frozen=True)
class ServiceNotReady(Event):
    service: str
    result: ProbeResult


@dataclass(frozen=True)
class LogLine(Event):
    service: str
    text: str


@dataclass(frozen=True)
class ServiceStopped(Event):
    service: str


Emit = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The default sink: library users that do not listen lose nothing important."""
