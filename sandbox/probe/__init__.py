"""The probe core: is a loopback address:port reachable, and how (TCP, HTTP, send/expect).

One module per concept: result (ProbeState, ProbeResult), tcp (connect, send/expect), http,
resolve (localhost only, through the hosts file), wait (many at once, until ready), and
targets / survey for `sandbox probe`. This package re-exports the public names, each
imported on first use: `down` needs only a TCP connect, not the HTTP client (and ssl).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager: `resolve` is also a submodule's name, which importing that submodule would bind here.
from sandbox.probe.resolve import resolve

if TYPE_CHECKING:
    from sandbox.probe.http import probe_http
    from sandbox.probe.result import BODY_LIMIT, EXCERPT_CHARS, ProbeResult, ProbeState
    from sandbox.probe.tcp import probe_send_expect, probe_tcp
    from sandbox.probe.wait import probe_all, wait_ready

_WHERE = {
    "BODY_LIMIT": "result",
    "EXCERPT_CHARS": "result",
    "ProbeResult": "result",
    "ProbeState": "result",
    "probe_all": "wait",
    "probe_http": "http",
    "probe_send_expect": "tcp",
    "probe_tcp": "tcp",
    "wait_ready": "wait",
}

__all__ = [
    "BODY_LIMIT",
    "EXCERPT_CHARS",
    "ProbeResult",
    "ProbeState",
    "probe_all",
    "probe_http",
    "probe_send_expect",
    "probe_tcp",
    "resolve",
    "wait_ready",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sandbox.probe.{module}"), name)
    globals()[name] = value  # once found, a plain module attribute
    return value
