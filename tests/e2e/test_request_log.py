"""`sandbox up -d` logs every request by default; `--no-request-log` turns that off."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli


def _profile(name: str, addresses: list[Any]) -> dict[str, Any]:
    # A proxy to a stub that resets the connection fails, and `web` logs why: a line that is
    # not a request line, written in the same handler just before the request line, so once
    # it can be read the request line (if any) can be read too.
    return {
        "name": name,
        "services": {
            "web": {"kind": "http", "address": str(addresses[0]),
                    "routes": [{"path": "/p", "proxy": "db"}]},
            "db": {"kind": "http", "address": str(addresses[1]),
                   "routes": [{"path": "/p", "fault": "reset"}], "log_requests": False},
        },
    }  # fmt: skip


def _logs_after_request(cli: Cli, path: Path, name: str, *flags: str) -> str:
    up = cli("up", str(path), "-d", "--json", *flags)
    assert up.returncode == 0, up.stderr
    web = next(s for s in json.loads(up.stdout)["services"] if s["name"] == "web")
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(web["url"] + "/p", timeout=10)
    failed.value.close()
    assert failed.value.code == 502
    deadline = time.monotonic() + 10
    while True:
        logs = cli("logs", name, "web", "--tail", "50").stdout
        if "proxy to db" in logs or time.monotonic() > deadline:
            return logs
        time.sleep(0.05)  # polling the log with a deadline, not waiting for readiness


def test_requests_are_logged_by_default(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    logs = _logs_after_request(cli, write_profile(_profile("logged", spare_loopback(2))), "logged")
    assert "proxy to db" in logs
    assert "GET /p 502" in logs


def test_no_request_log_leaves_out_request_lines_only(
    cli: Cli, write_profile: Callable[[dict[str, Any]], Path], spare_loopback: Any
) -> None:
    path = write_profile(_profile("quiet", spare_loopback(2)))
    logs = _logs_after_request(cli, path, "quiet", "--no-request-log")
    assert "proxy to db" in logs
    assert "http stub serving on" in logs
    assert "GET /p" not in logs
