"""The probe core: is a loopback address:port reachable, and how (TCP, HTTP, send/expect).

One module per concept: result (ProbeState, ProbeResult), tcp (connect, send/expect), http,
resolve (localhost only, through the hosts file), wait (many at once, until ready), and
targets / survey for `sandbox probe`. This package re-exports the public names.
"""

from __future__ import annotations

from sandbox.probe.http import probe_http
from sandbox.probe.resolve import resolve
from sandbox.probe.result import BODY_LIMIT, EXCERPT_CHARS, ProbeResult, ProbeState
from sandbox.probe.tcp import probe_send_expect, probe_tcp
from sandbox.probe.wait import probe_all, wait_ready

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
