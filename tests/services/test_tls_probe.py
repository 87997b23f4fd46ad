"""The HTTP probe over TLS: trusted by the sandbox CA, refused by a stranger's."""

from __future__ import annotations

from pathlib import Path

from sandbox.probe import ProbeState, probe_http
from sandbox.probe.tls import trusting
from sandbox.runtime.authority import make_authority
from tests.services.helpers import Listen, Start, context, http_spec


async def test_probe_http_over_tls(listen: Listen, start: Start, tmp_path: Path) -> None:
    sock = listen("127.0.0.1")
    host, port = sock.getsockname()[:2]
    ours = make_authority(tmp_path / "ours", "probe", {"web": [host]})
    theirs = make_authority(tmp_path / "theirs", "other", {"web": [host]})
    ctx = context("web", sock)
    ctx.certificate = ours.certificates["web"]
    spec = http_spec({"path": "/health", "response": {"body": "ok"}})
    spec = spec.model_copy(update={"tls": True})
    await start(spec, sock, ctx)

    good = await probe_http(host, port, "/health", tls=trusting(ours.bundle))
    assert (good.state, good.http_status, good.target) == (
        ProbeState.OPEN,
        200,
        f"https://{host}:{port}/health",
    )
    bad = await probe_http(host, port, "/health", tls=trusting(theirs.bundle))
    assert bad.state == ProbeState.ERROR
    assert "certificate is not trusted" in bad.detail
    plain = await probe_http(host, port, "/health")
    assert plain.http_status is None  # plain HTTP gets no answer from a TLS port
