"""The Python API: start a profile from sync or async code and read where its services are."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Future
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from sandbox.errors import SandboxError
from sandbox.plan import OnConflict
from sandbox.profile.models import Profile
from sandbox.runtime.control_client import AttachedSandbox
from sandbox.runtime.reload import ReloadReport
from sandbox.runtime.sandbox import Sandbox
from sandbox.runtime.stub_access import StubAccess

ProfileRef = str | os.PathLike[str] | Mapping[str, Any] | Profile


def load(profile: ProfileRef) -> Profile:
    """A Profile from a name, a path, a dict (as the YAML would be) or a Profile.

    Raises ProfileNotFound or ProfileError.
    """
    from sandbox.profile.loader import load_profile, load_profile_data

    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, Mapping):
        return load_profile_data(profile)
    return load_profile(profile)


@asynccontextmanager
async def start(
    profile: ProfileRef,
    *,
    state_root: Path | None = None,
    on_conflict: OnConflict = "fail",
    wait_timeout: float = 30.0,
    name: str | None = None,
) -> AsyncIterator[Sandbox]:
    """`async with sandbox.start("web-db-api") as sb: sb.url("api")`; everything stops on exit."""
    sandbox = Sandbox(
        load(profile),
        name=name,
        state_root=state_root,
        on_conflict=on_conflict,
        wait_timeout=wait_timeout,
    )
    async with sandbox:
        yield sandbox


class RunningSandbox(StubAccess):
    """A sandbox run from synchronous code: its event loop lives in a thread of its own.

    `with sandbox.run("web-db-api") as sb: requests.get(sb.url("api") + "/health")`;
    `sb.requests("api")`, `sb.verify("api", method="POST", path="/orders", times=1)` and
    `sb.reset("api")` look at what its stubs received (StubAccess).
    """

    def __init__(self, profile: ProfileRef, **options: Any) -> None:
        self._sandbox = Sandbox(load(profile), **options)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"sandbox-{self._sandbox.name}", daemon=True
        )
        self._started = False

    @property
    def name(self) -> str:
        return self._sandbox.name

    @property
    def services(self) -> list[str]:
        return list(self._sandbox.services)

    def url(self, service: str) -> str:
        return self._sandbox.url(service)

    def address(self, service: str) -> str:
        return self._sandbox.address(service)

    def port(self, service: str) -> int:
        return self._sandbox.port(service)

    @property
    def control_url(self) -> str | None:
        """The control API's URL (`http://127.0.0.1:PORT`), for clients in other languages."""
        return self._sandbox.control_url

    def _ask(self, op: str, args: Mapping[str, Any]) -> Any:
        async def on_loop() -> Any:  # the stubs live on the sandbox's loop: ask them there
            return self._sandbox.stubs.ask(op, args)

        return self._call(on_loop())

    @property
    def ca_bundle(self) -> Path | None:
        """The sandbox CA's certificate (PEM) for `tls: true` services; None without any."""
        return self._sandbox.ca_bundle

    def reload(self, service: str | None = None) -> ReloadReport:
        """Re-read the profile file and swap changed stubs' routes; see Sandbox.reload."""
        report: ReloadReport = self._call(self._sandbox.reload(service))
        return report

    def start(self) -> RunningSandbox:
        """Bring it up; raises what Sandbox.start raises, leaving nothing running."""
        self._thread.start()
        self._started = True
        try:
            self._call(self._sandbox.start())
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every service and the loop's thread; idempotent."""
        if not self._started:
            return
        self._started = False
        try:
            self._call(self._sandbox.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()

    def _call(self, coro: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def __enter__(self) -> RunningSandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def run(profile: ProfileRef, **options: Any) -> RunningSandbox:
    """A not-yet-started sandbox for `with`: `with sandbox.run(...) as sb:`."""
    return RunningSandbox(profile, **options)


def attach(name: str, *, state_root: Path | None = None) -> AttachedSandbox:
    """A sandbox started elsewhere (`sandbox up NAME -d`, another test process), reached
    through its control API: `sb = sandbox.attach("shop"); sb.verify("api", path="/orders")`.

    Raises UsageError if no sandbox of that name is recorded, SandboxError if it has no
    control API or its supervisor has gone.
    """
    from sandbox.errors import UsageError
    from sandbox.runtime.state import StateDir, is_locked
    from sandbox.runtime.state import state_root as default_root

    root = state_root if state_root is not None else default_root()
    record = StateDir(root, name).read()
    if record is None:
        raise UsageError(
            f'no sandbox named "{name}" is running (nothing recorded under {root}).',
            hint="`sandbox status` lists the running sandboxes.",
        )
    if not is_locked(root, name):
        raise SandboxError(
            f'sandbox "{name}" is recorded but its supervisor has gone.',
            hint=f"`sandbox down {name}` cleans up what is left.",
        )
    return AttachedSandbox(record)
