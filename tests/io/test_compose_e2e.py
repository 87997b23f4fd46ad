"""Import a compose file whose programs run here, bring the profile up, and ask it over loopback."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

import sandbox
from sandbox.io.importers.compose import import_compose

SAMPLE = Path(__file__).parent / "samples" / "compose" / "runnable" / "docker-compose.yml"
SERVER = Path(__file__).resolve().parents[1] / "programs" / "echo_server.py"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_imported_compose_app_comes_up_and_answers(spare_loopback: Any, tmp_path: Path) -> None:
    result = import_compose(SAMPLE, env={"PYTHON": sys.executable, "ECHO_SERVER": str(SERVER)})
    profile = result.profile
    for service in profile["services"].values():
        assert "0.0.0.0" not in service["run"], "the wildcard bind must become {address}"
    # The compose file publishes 8000 and 8080: here each service takes a port the kernel
    # picks, on an address of its own, so the test never depends on a fixed port.
    for service, address in zip(profile["services"].values(), spare_loopback(2), strict=True):
        service["port"] = "auto"
        service["address"] = str(address)
    with sandbox.run(profile, state_root=tmp_path) as sb:
        api = f"http://{sb.address('api')}:{sb.port('api')}"
        web = f"http://{sb.address('web')}:{sb.port('web')}"
        assert _get(api + "/health") == "ok\n"
        seen = json.loads(_get(web + "/env"))
        assert seen["extra"] == f"{api}/v1", "compose's http://api:8000 points at the api here"
        assert seen["env"]["SANDBOX_API_PORT"] == str(sb.port("api"))
