"""The error tree: every error crosses the supervisor's pipe with its class and fields intact."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from sandbox import errors
from sandbox.errors import (
    BindError,
    ConflictError,
    ExitCode,
    ProfileError,
    ResolveError,
    SandboxError,
    error_from_json,
    error_to_json,
)

SAMPLES: list[SandboxError] = [
    SandboxError("plain", "a hint"),
    errors.UsageError("bad flag"),
    errors.ProfileNotFound("no such profile", "look in ./profiles"),
    ProfileError("x.yaml", ["x.yaml:1:1 name: required", "x.yaml:2:3 port: too big"]),
    ConflictError("taken", "stop it"),
    BindError("in use", "stop it", errno=98),
    errors.NotReadyError("late"),
    errors.TeardownError("survived"),
    errors.StateError("broken record"),
    errors.TargetError("not loopback"),
    ResolveError("did not resolve", None, "timeout"),
    errors.HostsFileError("damaged block"),
    errors.PingUnavailable("no ICMP", "set ping_group_range"),
    errors.StubConfigError("bad template"),
    errors.CommandConfigError("bad cwd"),
    errors.SourceError("mappings/a.json:3:1: not valid JSON"),
    errors.StrictError("2 fields were dropped", "drop --strict to write the profile anyway"),
    errors.ContainerModeError("not in a container"),
    errors.VerificationError("api: expected POST /orders exactly 1 time, received it 0 times."),
    errors.ReloadRefused("api.port changed", "down, then up"),
]


@pytest.mark.parametrize("exc", SAMPLES, ids=lambda e: type(e).__name__)
def test_round_trip_keeps_class_fields_and_exit_code(exc: SandboxError) -> None:
    wire = json.loads(json.dumps(error_to_json(exc)))
    back = error_from_json(wire)
    assert type(back) is type(exc)
    assert back.message == exc.message
    assert back.hint == exc.hint
    assert back.exit_code == exc.exit_code
    assert str(back) == str(exc)
    assert vars(back) == vars(exc)


def test_every_error_class_is_sampled() -> None:
    classes = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, SandboxError)
    }
    assert classes, "errors.py defines no SandboxError"
    assert classes == {type(e) for e in SAMPLES}


def test_unknown_class_becomes_a_sandbox_error_with_its_exit_code() -> None:
    back = error_from_json({"error": "FromTheFuture", "message": "m", "hint": None, "exit_code": 4})
    assert type(back) is SandboxError
    assert back.exit_code is ExitCode.CONFLICT


def test_a_conflict_in_the_supervisor_arrives_as_a_conflict_error(
    tmp_path: Path, spare_loopback: Callable[[int], list[IPv4Address]]
) -> None:
    from sandbox.runtime.launch import Launch

    (address,) = spare_loopback(1)
    with socket.create_server((str(address), 0)) as held:
        port = held.getsockname()[1]
        profile = tmp_path / "taken.yaml"
        profile.write_text(
            json.dumps(
                {
                    "name": "taken",
                    "services": {"api": {"kind": "http", "address": str(address), "port": port}},
                }
            )
        )
        with pytest.raises(ConflictError) as caught:
            Launch(
                str(profile),
                name="taken",
                state_root=tmp_path / "state",
                on_conflict="fail",
                wait_timeout=10.0,
            ).ready()
    assert type(caught.value) is not SandboxError
    assert caught.value.exit_code is ExitCode.CONFLICT


def test_the_supervisor_logs_through_logging(caplog: pytest.LogCaptureFixture) -> None:
    from sandbox.runtime.events import ServiceReady, ServiceStopped
    from sandbox.runtime.supervisor import _log_event

    with caplog.at_level(logging.INFO, logger="sandbox.supervisor"):
        _log_event(ServiceReady("api", "http://127.0.0.9:8000", 0.1))
        _log_event(ServiceStopped("api"))
    assert [r.getMessage() for r in caplog.records] == [
        "ready: api at http://127.0.0.9:8000",
        "stopped: api",
    ]
