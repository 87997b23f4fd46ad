"""TLS for probes: a client context that trusts one CA bundle, and what a failed handshake means."""

from __future__ import annotations

import ssl
from pathlib import Path

from sandbox.net.addresses import format_hostport


def trusting(bundle: Path | str) -> ssl.SSLContext:
    """A client context that trusts only the CA in `bundle` and checks the peer's name or
    address against its certificate (a literal IP is checked against its IP SANs)."""
    return ssl.create_default_context(cafile=str(bundle))


def trusting_all(bundles: list[Path]) -> ssl.SSLContext | None:
    """A client context trusting every CA in `bundles`; None when there is none."""
    if not bundles:
        return None
    context = ssl.create_default_context(cafile=str(bundles[0]))
    for bundle in bundles[1:]:
        context.load_verify_locations(cafile=str(bundle))
    return context


def tls_problem(exc: BaseException, address: str, port: int) -> str | None:
    """One sentence for a TLS failure, or None when `exc` is not one."""
    where = format_hostport(address, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where} speaks TLS, but its certificate is not trusted: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake with {where} failed: {exc.reason or exc}"
    return None
