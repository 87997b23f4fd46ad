"""The detached supervisor's event loop: asyncio's, or uvloop when asked for and installed."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

from sandbox.runtime.supervisor import UVLOOP_ENV, run


async def _loop_module() -> int:
    return 1 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 0


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")
def test_uvloop_when_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UVLOOP_ENV, "1")
    assert run(_loop_module()) == 1


def test_by_default_it_is_asyncio_s_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UVLOOP_ENV, raising=False)
    assert run(_loop_module()) == 0


def test_without_uvloop_it_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(UVLOOP_ENV, "1")
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert run(_loop_module()) == 0
