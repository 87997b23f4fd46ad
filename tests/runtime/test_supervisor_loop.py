"""The detached supervisor's event loop: asyncio's, or uvloop when asked for and installed."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from sandbox.runtime.supervisor import UVLOOP_ENV, run


async def _loop_module() -> int:
    return 1 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 0


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")
@pytest.mark.parametrize("value", [None, "1", "yes"])
def test_uvloop_when_installed_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv(UVLOOP_ENV, raising=False)
    else:
        monkeypatch.setenv(UVLOOP_ENV, value)
    assert run(_loop_module()) == 1


@pytest.mark.parametrize("value", ["0", "no", "OFF", "false"])
def test_turned_off_it_is_asyncio_s_own_loop(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(UVLOOP_ENV, value)
    assert run(_loop_module()) == 0


def test_without_uvloop_it_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UVLOOP_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert run(_loop_module()) == 0


def test_a_profile_renamed_between_peek_and_load_is_refused(
    tmp_path: Path, spare_loopback: Any
) -> None:
    """`up -d` read the name from the file before the supervisor loaded it: a file edited in
    between must not start under the old name."""
    from sandbox.errors import SandboxError
    from sandbox.runtime.launch import Launch

    path = tmp_path / "renamed.yaml"
    address = spare_loopback(1)[0]
    path.write_text(f"name: after\nservices:\n  web: {{kind: http, address: '{address}'}}\n")
    with pytest.raises(SandboxError, match='now named "after", not "before"'):
        Launch(
            str(path),
            name="before",
            state_root=tmp_path / "state",
            on_conflict="fail",
            wait_timeout=5.0,
            expect_name="before",
        ).ready()
    assert not (tmp_path / "state" / "before" / "state.json").exists()
