"""`sandbox reload` and `sandbox ca` through the real CLI, against a detached sandbox."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e


def _profile(address: str, body: str) -> dict[str, Any]:
    return {
        "name": "relo",
        "services": {
            "api": {
                "kind": "http",
                "address": address,
                "tls": True,
                "routes": [{"path": "/v", "response": {"body": body}}],
            },
        },
    }


def _get(url: str, bundle: str) -> str:
    context = ssl.create_default_context(cafile=bundle)
    with urllib.request.urlopen(url + "/v", timeout=5, context=context) as response:
        return str(response.read().decode())


def test_reload_and_ca_against_a_detached_sandbox(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    address = str(spare_loopback(1)[0])
    path = write_profile(_profile(address, "one"))
    up = cli("up", str(path), "-d", "--json")
    assert up.returncode == 0, up.stderr
    url = json.loads(up.stdout)["services"][0]["url"]
    assert url.startswith("https://")

    ca = cli("ca", "relo")
    assert ca.returncode == 0, ca.stderr
    bundle = ca.stdout.strip()
    assert bundle.endswith("/relo/tls/ca.pem")
    assert _get(url, bundle) == "one"
    if curl := shutil.which("curl"):
        done = subprocess.run(
            [curl, "-sS", "--noproxy", "*", "--cacert", bundle, url + "/v"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        assert (done.returncode, done.stdout) == (0, "one"), done.stderr

    # `sandbox probe https://...` trusts the running sandboxes' CAs (or --cacert).
    probed = cli("probe", url + "/v", "--json")
    assert probed.returncode == 0, probed.stdout + probed.stderr
    assert json.loads(probed.stdout)["results"][0]["http_status"] == 200
    stranger = path.parent / "stranger.pem"
    stranger.write_text(trustme.CA().cert_pem.bytes().decode())
    distrust = cli("probe", url + "/v", "--cacert", str(stranger), "--json")
    assert distrust.returncode == 5
    assert "certificate is not trusted" in distrust.stdout
    assert cli("probe", url, "--cacert", str(path.parent / "missing.pem")).returncode == 2

    path.write_text(path.read_text().replace("one", "two"))
    done = cli("reload", "relo")
    assert done.returncode == 0, done.stderr
    assert "reloaded: api" in done.stdout
    assert _get(url, bundle) == "two"

    path.write_text(path.read_text().replace("kind: http", "kind: http\n    bogus: 1"))
    bad = cli("reload", "relo")
    assert bad.returncode == 3, bad.stderr
    assert f"{path}:5:5 services.api.bogus" in bad.stderr
    assert _get(url, bundle) == "two"

    path.write_text(
        path.read_text().replace("    bogus: 1\n", "").replace("tls: true", "tls: false")
    )
    refused = cli("reload", "relo", "--json")
    assert refused.returncode == 2
    assert "api.tls changed from True to False" in refused.stdout + refused.stderr

    assert cli("reload", "nope").returncode == 2
    assert cli("reload", "relo", "nope").returncode == 2
    assert cli("ca", "nope").returncode == 2
