"""TLS contexts: a stub's server side, and a client that trusts only the sandbox's CA."""

from __future__ import annotations

import ssl
from pathlib import Path

from sandbox.errors import StubConfigError


def server_context(certificate: Path) -> ssl.SSLContext:
    """A server context for `certificate` (one PEM: private key, then the chain).

    Raises StubConfigError when the file cannot be loaded.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate)
    except (OSError, ssl.SSLError) as exc:
        raise StubConfigError(
            f"The certificate {certificate} cannot be loaded: {exc}.",
            hint="It is made at `sandbox up`; start the sandbox again.",
        ) from None
    # HTTP/1.1 only: aiohttp's server does not speak HTTP/2.
    context.set_alpn_protocols(["http/1.1"])
    return context


def client_context(bundle: Path | str) -> ssl.SSLContext:
    """A client context that trusts only the CA in `bundle` (and checks host names/IPs)."""
    return ssl.create_default_context(cafile=str(bundle))
