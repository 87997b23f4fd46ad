"""loopback sandbox: a multi-service setup on loopback addresses, offline, in a second.

The public API is imported lazily, so `sandbox --help` does not pay for aiohttp or pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox._version import __version__

__all__ = [
    "AttachedSandbox",
    "RunningSandbox",
    "Sandbox",
    "VerificationError",
    "__version__",
    "attach",
    "load",
    "run",
    "start",
]

if TYPE_CHECKING:
    from sandbox.api import RunningSandbox, attach, load, run, start
    from sandbox.errors import VerificationError
    from sandbox.runtime.control_client import AttachedSandbox
    from sandbox.runtime.sandbox import Sandbox


def __getattr__(name: str) -> Any:
    if name in ("RunningSandbox", "attach", "load", "run", "start"):
        from sandbox import api

        return getattr(api, name)
    if name == "Sandbox":
        from sandbox.runtime.sandbox import Sandbox

        return Sandbox
    if name == "AttachedSandbox":
        from sandbox.runtime.control_client import AttachedSandbox

        return AttachedSandbox
    if name == "VerificationError":
        from sandbox.errors import VerificationError

        return VerificationError
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
