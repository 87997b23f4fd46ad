"""HTTPS stubs: `tls: true` serves with a certificate of the sandbox's own CA."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import stat
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandbox.api import start
from sandbox.errors import UsageError
from sandbox.runtime.authority import find_bundle
from sandbox.services.tls import client_context


def _profile(spare: list[Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "tlsdemo",
        "services": {
            "api": {
                "kind": "http",
                "address": str(spare[0]),
                "port": "auto",
                "tls": True,
                "routes": [{"path": "/hello", "response": {"json": {"hi": "{{ query.n }}"}}}],
            },
            "web": {
                "kind": "http",
                "address": str(spare[1]),
                "port": "auto",
                "routes": [{"path": "/via/{rest:.*}", "proxy": "api", "strip_prefix": "/via"}],
            },
            **extra,
        },
    }


async def test_https_with_the_sandbox_ca(spare_loopback: Any, tmp_path: Path) -> None:
    async with start(_profile(spare_loopback(2)), state_root=tmp_path) as sb:
        url = sb.url("api")
        assert url.startswith("https://")
        assert sb.url("web").startswith("http://")
        bundle = sb.ca_bundle
        assert bundle is not None
        assert bundle.is_relative_to(tmp_path / "tlsdemo")
        for path in bundle.parent.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert stat.S_IMODE(bundle.parent.stat().st_mode) == 0o700
        # Python's ssl with the CA: verified, the certificate names the literal address.
        connector = aiohttp.TCPConnector(ssl=client_context(bundle))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(f"{url}/hello?n=1") as resp,
        ):
            assert (resp.status, await resp.json()) == (200, {"hi": "1"})
        # A proxy in the sandbox trusts its CA.
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{sb.url('web')}/via/hello?n=5") as resp,
        ):
            assert (resp.status, await resp.json()) == (200, {"hi": "5"})
        # Without the CA: refused.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{url}/hello")
        # The key and certificates never leave the state folder: it goes with the sandbox.
        folder = bundle.parent
    assert not folder.exists()


async def test_curl_verifies_with_the_ca_bundle(spare_loopback: Any, tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    async with start(_profile(spare_loopback(2)), state_root=tmp_path) as sb:
        url = f"{sb.url('api')}/hello?n=2"
        ok = await asyncio.to_thread(
            subprocess.run,
            [curl, "-sS", "--noproxy", "*", "--cacert", str(sb.ca_bundle), url],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout == '{"hi": "2"}'
        refused = await asyncio.to_thread(
            subprocess.run,
            [curl, "-sS", "--noproxy", "*", url],
            capture_output=True,
            text=True,
            timeout=10,
        )
        assert refused.returncode == 60, refused.stderr  # peer certificate cannot be verified


async def test_command_services_get_the_ca_bundle(spare_loopback: Any, tmp_path: Path) -> None:
    addresses = spare_loopback(3)
    extra = {
        "cmd": {
            "kind": "command",
            "address": str(addresses[2]),
            "run": "sh -c 'echo CA=$SANDBOX_CA_BUNDLE API=$SANDBOX_API_URL; exec sleep 30'",
            "ready": {"log": "CA="},
        }
    }
    async with start(_profile(addresses, **extra), state_root=tmp_path) as sb:
        log_path = sb.services["cmd"].log_path
        assert log_path is not None
        log = log_path.read_text()
        assert f"CA={sb.ca_bundle} API=https://" in log, log


async def test_without_tls_there_is_no_ca(spare_loopback: Any) -> None:
    profile = _profile(spare_loopback(2))
    profile["services"]["api"]["tls"] = False
    async with start(profile) as sb:
        assert sb.ca_bundle is None
        assert sb.url("api").startswith("http://")


async def test_without_a_state_folder_the_ca_lives_in_a_private_temporary_folder(
    spare_loopback: Any,
) -> None:
    async with start(_profile(spare_loopback(2))) as sb:
        bundle = sb.ca_bundle
        assert bundle is not None
        assert stat.S_IMODE(bundle.parent.parent.stat().st_mode) == 0o700
        context = ssl.create_default_context(cafile=str(bundle))
        reader, writer = await asyncio.open_connection(
            sb.address("api"), sb.port("api"), ssl=context
        )
        writer.write(b"GET /hello?n=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200")
    assert not bundle.exists()


async def test_find_bundle_names_the_running_sandboxes_ca(
    spare_loopback: Any, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="not running"):
        find_bundle(tmp_path, "tlsdemo")
    async with start(_profile(spare_loopback(2)), state_root=tmp_path) as sb:
        assert find_bundle(tmp_path, "tlsdemo") == sb.ca_bundle
    plain = _profile(spare_loopback(2))
    plain["services"]["api"]["tls"] = False
    async with start(plain, state_root=tmp_path):
        with pytest.raises(UsageError, match="no CA"):
            find_bundle(tmp_path, "tlsdemo")


async def test_a_tls_client_that_closes_leaves_no_warning(
    spare_loopback: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with start(_profile(spare_loopback(2))) as sb:
        assert sb.ca_bundle is not None
        context = ssl.create_default_context(cafile=str(sb.ca_bundle))
        for _ in range(3):
            reader, writer = await asyncio.open_connection(
                sb.address("api"), sb.port("api"), ssl=context
            )
            writer.write(b"GET /hello?n=4 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        # One more exchange: by its answer the server has handled the closes before it.
        reader, writer = await asyncio.open_connection(
            sb.address("api"), sb.port("api"), ssl=context
        )
        writer.write(b"GET /hello?n=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 200")
        writer.close()
    assert "eof_received" not in caplog.text
