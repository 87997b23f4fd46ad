"""One service of a started sandbox (RunningService), and what follows from where it is:
its URL's scheme and the environment every program gets."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.plan import PlannedService
from sandbox.probe import ProbeResult
from sandbox.profile.models import Service
from sandbox.runtime.state import ServiceRecord
from sandbox.services.context import ServiceContext, StubServer

if TYPE_CHECKING:
    from sandbox.services.command import Program


@dataclass(slots=True)  # a thousand stubs: no __dict__ each
class RunningService:
    """One service of a started sandbox: where it is and what serves it."""

    planned: PlannedService
    address: str
    port: int
    url: str
    log_path: Path | None = None
    ready: ProbeResult | None = None
    proof: ProbeResult | None = None  # an in-process stub's connect, made before it served
    pid: int | None = None
    pgid: int | None = None
    start_time: float | None = None
    give_up: Callable[[], str | None] | None = None  # says why waiting is pointless (exited)
    log_ready: asyncio.Event | None = None  # set when a command's output matched `ready.log`
    restarts: int = 0  # how often a command service was restarted (restart: on-failure)
    state: str = "starting"  # its life, as `status` shows it (see ServiceRecord.state)
    exit_code: int | None = None  # a program's last exit (negative: the signal)
    max_restarts: int = 0
    job: bool = False
    argv: tuple[str, ...] = ()  # a command service's program and arguments, as run
    program: Program | None = field(default=None, repr=False)
    server: StubServer | None = field(default=None, repr=False)  # a stub's current server
    ctx: ServiceContext | None = field(default=None, repr=False)
    close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    log: Callable[[str], None] = field(default=lambda line: None, repr=False)
    _sock: socket.socket | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.planned.name

    @property
    def kind(self) -> str:
        return self.planned.kind

    def record(self) -> ServiceRecord:
        return ServiceRecord(
            name=self.name,
            kind=self.kind,
            address=self.address,
            port=self.port,
            url=self.url,
            log=str(self.log_path) if self.log_path else "",
            pid=self.pid,
            pgid=self.pgid,
            start_time=self.start_time,
            restarts=self.restarts,
            state=self.state,
            exit_code=self.exit_code,
            max_restarts=self.max_restarts,
            job=self.job,
        )


def discard(line: str) -> None:
    """Where a line goes when there is neither a log file nor a listener."""


def portless(planned: PlannedService) -> bool:
    """A program that listens nowhere (`port: none`): no socket is reserved for it."""
    return planned.spec.port == "none"


def scheme(spec: Service) -> str:
    """What a service's URL starts with: http stubs and programs that say (or are probed
    as) HTTP get http://, everything else tcp://."""
    if spec.kind == "http":
        return "https" if spec.tls else "http"
    scheme = getattr(spec, "scheme", None)
    if scheme is not None:
        return str(scheme)
    return "http" if spec.ready is not None and spec.ready.http is not None else "tcp"


def env_name(service: str) -> str:
    """`my-api` -> `MY_API`, for SANDBOX_<NAME>_HOST and friends."""
    return service.upper().replace("-", "_")


def service_environment(
    services: Iterable[RunningService],
    running: RunningService,
    base: dict[str, str] | None = None,
    ca_bundle: Path | None = None,
) -> dict[str, str]:
    """The variables every service gets: where each service is, and where it is itself;
    SANDBOX_CA_BUNDLE when the sandbox has a CA (some service has `tls: true`)."""
    env = dict(base if base is not None else os.environ)
    if ca_bundle is not None:
        env["SANDBOX_CA_BUNDLE"] = str(ca_bundle)
    for other in services:
        key = env_name(other.name)
        env[f"SANDBOX_{key}_HOST"] = other.address
        env[f"SANDBOX_{key}_PORT"] = str(other.port)
        env[f"SANDBOX_{key}_URL"] = other.url
    env["SANDBOX_HOST"] = running.address
    env["SANDBOX_PORT"] = str(running.port)
    env["SANDBOX_URL"] = running.url
    env["SANDBOX_SERVICE"] = running.name
    env.update(running.planned.spec.env)
    return env
