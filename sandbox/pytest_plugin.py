"""pytest fixtures that bring profiles up for a test and tear them down after, pass or fail.

Installed through the `pytest11` entry point: installing sandbox is enough.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sandbox.api import ProfileRef, RunningSandbox
    from sandbox.runtime.control_client import AttachedSandbox

Factory = Callable[..., "RunningSandbox"]


def _factory(state_root: Path) -> Iterator[Factory]:
    from sandbox.api import RunningSandbox

    made: list[RunningSandbox] = []

    def make(profile: ProfileRef, **options: Any) -> RunningSandbox:
        options.setdefault("state_root", state_root)
        options.setdefault("foreground", False)
        running = RunningSandbox(profile, **options).start()
        made.append(running)
        return running

    try:
        yield make
    finally:
        for running in reversed(made):
            running.stop()


@pytest.fixture
def sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    """Start profiles for one test: `sb = sandbox_factory("web-db-api"); sb.url("api")`."""
    yield from _factory(tmp_path_factory.mktemp("sandbox-state"))


@pytest.fixture(scope="module")
def module_sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    """Like `sandbox_factory`, shared by the tests of one module."""
    yield from _factory(tmp_path_factory.mktemp("sandbox-state"))


@pytest.fixture(scope="session")
def session_sandbox_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Factory]:
    """Like `sandbox_factory`, shared by the whole test session."""
    yield from _factory(tmp_path_factory.mktemp("sandbox-state"))


@pytest.fixture
def sandbox_attach() -> Callable[..., AttachedSandbox]:
    """Reach a sandbox started outside the test run (`sandbox up NAME -d`, in CI say):
    `sb = sandbox_attach("shop"); sb.verify("api", path="/orders")`. It is not stopped
    afterwards: it is not the test's. Pass `state_root=` for another state directory."""
    from sandbox.api import attach

    return attach
