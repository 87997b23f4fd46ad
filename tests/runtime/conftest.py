"""Fixtures for runtime tests: whole sandboxes of real programs, recorded in a private state dir."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sandbox.profile.loader import load_profile_data
from sandbox.runtime.sandbox import Sandbox

StartSandbox = Callable[..., Awaitable[Sandbox]]


@pytest.fixture
async def start_sandbox(tmp_path: Path) -> AsyncIterator[StartSandbox]:
    """Start a profile (a dict) recorded under tmp_path/state; every sandbox is stopped after,
    and any program group it recorded is SIGKILLed if stopping failed."""
    started: list[Sandbox] = []

    async def go(data: dict[str, Any], **options: Any) -> Sandbox:
        profile = load_profile_data(data, source=str(tmp_path / "profile.yaml"))
        options.setdefault("state_root", tmp_path / "state")
        options.setdefault("wait_timeout", 15.0)
        sandbox = Sandbox(profile, **options)
        started.append(sandbox)
        await sandbox.start()
        return sandbox

    try:
        yield go
    finally:
        for sandbox in reversed(started):
            try:
                await sandbox.stop()
            except Exception:
                for running in sandbox.services.values():
                    if running.pgid:
                        with contextlib.suppress(ProcessLookupError, PermissionError):
                            os.killpg(running.pgid, signal.SIGKILL)
                raise
