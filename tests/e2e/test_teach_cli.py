"""explain, ping and hosts through the real CLI."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli

pytestmark = pytest.mark.e2e


def test_explain_names_the_holder_and_the_ways_out(cli: Cli, spare_loopback: Any) -> None:
    (address,) = (str(a) for a in spare_loopback(1))
    with socket.socket() as held:
        held.bind((address, 0))
        held.listen()
        port = held.getsockname()[1]
        data = cli.json("explain", f"{address}:{port}")
        text = cli("explain", f"{address}:{port}")
    (found,) = data["explanations"]
    assert found["verdict"] == "in-use-exact"
    assert found["bindable"] is False
    assert f"pid {os.getpid()}" in text.stdout
    assert any("kill" in way for way in found["ways_out"])
    assert text.returncode == 0


def test_ping_loopback_or_say_why_not(cli: Cli) -> None:
    done = cli("ping", "127.0.0.1", "-c", "2", "--json")
    if done.returncode == 0:
        report = json.loads(done.stdout)
        assert report["sent"] == 2
        assert report["received"] == 2
    else:  # no raw socket and no ping group: the message must say what to change
        assert "ping_group_range" in done.stderr
    refused = cli("ping", "10.0.0.1")
    assert refused.returncode == 2
    assert "loopback" in refused.stderr


def test_hosts_write_and_remove_keep_other_lines(cli: Cli, tmp_path: Path) -> None:
    hosts_file = tmp_path / "hosts"
    hosts_file.write_text("127.0.0.1 localhost\n# keep me\n")
    assert cli("hosts", "web-db-api", "--write", str(hosts_file)).returncode == 0
    assert cli("hosts", "web-db-api", "--write", str(hosts_file)).returncode == 0
    written = hosts_file.read_text()
    assert written.count("api.web-db-api.test") == 1
    assert written.startswith("127.0.0.1 localhost\n# keep me\n")
    removed = cli("hosts", "web-db-api", "--write", str(hosts_file), "--remove")
    assert removed.returncode == 0
    assert hosts_file.read_text() == "127.0.0.1 localhost\n# keep me\n"
