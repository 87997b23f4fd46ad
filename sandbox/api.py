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

from sandbox.plan import OnConflict
from sandbox.profile.models import Profile
from sandbox.runtime.sandbox import Sandbox

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


class RunningSandbox:
    """A sandbox run from synchronous code: its event loop lives in a thread of its own.

    `with sandbox.run("web-db-api") as sb: requests.get(sb.url("api") + "/health")`
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
