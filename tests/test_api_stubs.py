"""The Python API over the stubs: requests, verify, reset and state, in-process and attached."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.api import RunningSandbox
from sandbox.errors import SandboxError, UsageError, VerificationError
from sandbox.runtime.stub_access import StubAccess


def profile(address: ipaddress.IPv4Address, name: str = "stubs-api") -> dict[str, Any]:
    return {
        "name": name,
        "services": {
            "api": {
                "kind": "http",
                "address": str(address),
                "routes": [
                    {"method": "POST", "path": "/orders", "response": {"status": 201}},
                    {"method": "GET", "path": "/orders/{id:\\d+}", "response": {}},
                    {
                        "method": "POST",
                        "path": "/step",
                        "scenario": {"name": "flow", "when": "Started", "then": "next"},
                        "response": {"body": "moved"},
                    },
                ],
            }
        },
    }


def _send(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.fixture
def running(spare_loopback: Any, tmp_path: Path) -> Iterator[RunningSandbox]:
    [address] = spare_loopback(1)
    with sandbox.run(profile(address), state_root=tmp_path) as sb:
        yield sb


@pytest.fixture(params=["in-process", "attached"])
def sb(request: pytest.FixtureRequest, running: RunningSandbox, tmp_path: Path) -> StubAccess:
    """The same sandbox, asked in-process or through its control API."""
    if request.param == "in-process":
        return running
    return sandbox.attach(running.name, state_root=tmp_path)


def test_requests_returns_frozen_entries(sb: StubAccess, running: RunningSandbox) -> None:
    assert _send("POST", running.url("api") + "/orders?x=1", b'{"n": 1}') == 201
    assert _send("GET", running.url("api") + "/orders/7") == 200
    entries = sb.requests("api", method="post")
    assert [(e.method, e.path, e.status, e.param("x")) for e in entries] == [
        ("POST", "/orders", 201, "1")
    ]
    assert entries[0].json == {"n": 1}
    with pytest.raises(AttributeError):  # entries are immutable
        entries[0].status = 500  # type: ignore[misc]
    assert [e.path for e in sb.requests("api", path="/orders/7")] == ["/orders/7"]
    assert len(sb.requests()) == 2


def test_verify_counts_and_fails_as_an_assertion_with_the_evidence(
    sb: StubAccess, running: RunningSandbox
) -> None:
    _send("POST", running.url("api") + "/orders")
    _send("GET", running.url("api") + "/orders/abc")
    assert sb.verify("api", method="POST", path="/orders", times=1) == 1
    assert sb.verify("api", path="/orders", at_most=1) == 1
    with pytest.raises(AssertionError) as caught:
        sb.verify("api", method="POST", path="/orders", times=2)
    error = caught.value
    assert isinstance(error, VerificationError)
    message = str(error)
    assert "expected POST /orders exactly 2 times, received it 1 time" in message
    assert "received 2 (all listed)" in message
    assert "GET /orders/abc -> 404 (no route; nearest routes[1] GET /orders/{id:\\d+}" in message
    assert "path parameter id='abc' does not match" in message
    with pytest.raises(VerificationError, match=r"nearest misses:\n  #\d+ POST /orders: method"):
        sb.verify("api", method="PUT", path="/orders")


def test_reset_forgets_requests_and_scenario_state(sb: StubAccess, running: RunningSandbox) -> None:
    assert _send("POST", running.url("api") + "/step") == 200
    assert _send("POST", running.url("api") + "/step") == 404  # the scenario moved on
    assert sb.state("api") == {"scenarios": {"flow": "next"}, "vars": {}}
    assert sb.reset("api") == ["api"]
    assert sb.requests("api") == ()
    assert sb.state("api")["scenarios"] == {"flow": "Started"}
    assert _send("POST", running.url("api") + "/step") == 200
    sb.set_state("api", scenarios={"flow": "Started"}, vars={"n": 1})
    assert sb.state("api") == {"scenarios": {"flow": "Started"}, "vars": {"n": 1}}


def test_unknown_services_and_bad_arguments_are_usage_errors(sb: StubAccess) -> None:
    with pytest.raises(UsageError, match='no stub named "nope"'):
        sb.requests("nope")
    with pytest.raises(UsageError, match="not both"):
        sb.verify("api", times=1, at_least=1)


def test_attach_needs_a_running_sandbox(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match='no sandbox named "ghost"'):
        sandbox.attach("ghost", state_root=tmp_path)


def test_attached_sandbox_reports_when_it_has_gone(spare_loopback: Any, tmp_path: Path) -> None:
    [address] = spare_loopback(1)
    with sandbox.run(profile(address, "gone"), state_root=tmp_path) as running:
        attached = sandbox.attach("gone", state_root=tmp_path)
        assert attached.url("api") == running.url("api")
        assert attached.control_url == running.control_url
    with pytest.raises(SandboxError, match="does not answer"):
        attached.requests("api")


async def test_the_async_sandbox_has_the_same_surface(spare_loopback: Any) -> None:
    [address] = spare_loopback(1)
    async with sandbox.start(profile(address)) as sb:
        assert sb.requests("api") == ()
        with pytest.raises(VerificationError, match="received nothing"):
            sb.verify("api", path="/orders")
