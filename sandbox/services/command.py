"""Real programs as services: started in their own process group, tied to the supervisor, logged."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import ProfileError, SandboxError
from sandbox.net.sockets import bind_listener
from sandbox.profile.models import CommandService
from sandbox.runtime.processes import descendants, preexec_child, terminate_group
from sandbox.services.context import ServiceContext

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")


def render_command(run: str, ctx: ServiceContext) -> list[str]:
    """Split `run` like a shell would, then fill {address} {port} {url} {services.NAME.url}.

    Splitting first means a value can never add or break arguments. Raises ProfileError for
    an unknown placeholder.
    """
    values: dict[str, str] = {"address": ctx.address, "port": str(ctx.port), "url": ctx.url}
    values["name"] = ctx.name
    for peer in ctx.peers.values():
        for attr in ("address", "port", "url", "name"):
            values[f"services.{peer.name}.{attr}"] = str(getattr(peer, attr))
    try:
        argv = shlex.split(run)
    except ValueError as exc:
        raise ProfileError(
            f"services.{ctx.name}.run", [f"cannot split the command: {exc}"]
        ) from None

    def fill(found: re.Match[str]) -> str:
        key = found.group(1)
        if key not in values:
            known = ", ".join(sorted(k for k in values if not k.startswith("services.")))
            raise ProfileError(
                f"services.{ctx.name}.run",
                [f"unknown placeholder {{{key}}}: use {known}, or {{services.NAME.url}}"],
            )
        return values[key]

    return [_PLACEHOLDER.sub(fill, arg) for arg in argv]


@dataclass
class Program:
    """A running program: its pid (also its process group) and its recent output."""

    name: str
    process: asyncio.subprocess.Process
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=20))
    log_pattern: re.Pattern[str] | None = None
    log_matched: asyncio.Event = field(default_factory=asyncio.Event)
    stop_signal: int = signal.SIGTERM
    stop_timeout: float = 5.0
    forced: Callable[[], bool] = lambda: False
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the program leads its own group

    def exited(self) -> str | None:
        """A sentence if the program has exited (so waiting for readiness is pointless)."""
        code = self.process.returncode
        if code is None:
            return None
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code < 0
            else f"exited with code {code}"
        )
        last = "\n    ".join(self.tail) if self.tail else "(no output)"
        return f"the program {how} before it was ready; its last output:\n    {last}"

    async def close(self) -> None:
        """Stop signal to the whole group, grace, SIGKILL, until the group is empty. Idempotent."""
        extra = descendants(self.pid)
        grace = 0.0 if self.forced() else self.stop_timeout
        survivors = await terminate_group(self.pgid, sig=self.stop_signal, grace=grace, extra=extra)
        with contextlib.suppress(ProcessLookupError):
            if self.process.returncode is None:
                self.process.kill()
        await self.process.wait()
        for reader in self._readers:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(reader, timeout=1.0)
        if survivors:
            pids = ", ".join(str(p) for p in survivors)
            raise SandboxError(f"{self.name}: processes {pids} survived SIGKILL.")


def check_port_free(ctx: ServiceContext) -> None:
    """The sandbox cannot hold a program's socket; re-check just before the start.

    Raises BindError (a conflict) when the address:port is taken.
    """
    bind_listener(ctx.address, ctx.port, service=ctx.name).close()


async def start_command(
    spec: CommandService,
    ctx: ServiceContext,
    *,
    env: Mapping[str, str],
    forced: Callable[[], bool] = lambda: False,
) -> Program:
    """Start the program in its own session and process group, dying with its parent on Linux.

    Output lines go to `ctx.log`. Raises BindError if the port is taken, SandboxError if the
    program cannot be started. Leaves a running process owned by the returned Program.
    """
    if ctx.port:
        check_port_free(ctx)
    argv = render_command(spec.run, ctx)
    cwd = _cwd(spec, ctx)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            preexec_fn=preexec_child(signal.SIGKILL),
        )
    except OSError as exc:
        raise SandboxError(
            f"{ctx.name}: cannot start {argv[0]!r}: {exc.strerror or exc}.",
            f"Check the `run:` line of {ctx.name}: the program must be installed and on PATH.",
        ) from None
    program = Program(
        name=ctx.name,
        process=process,
        log_pattern=re.compile(spec.ready.log) if spec.ready and spec.ready.log else None,
        stop_signal=signal.Signals[spec.stop_signal],
        stop_timeout=spec.stop_timeout,
        forced=forced,
    )
    program._readers.append(asyncio.create_task(_pump(program, ctx)))
    return program


def _cwd(spec: CommandService, ctx: ServiceContext) -> str | None:
    if spec.cwd is None:
        return None
    base = ctx.profile_dir or Path.cwd()
    path = (base / spec.cwd).resolve()
    if not path.is_dir():
        raise SandboxError(f"{ctx.name}: the working folder {path} does not exist.")
    return str(path)


async def _pump(program: Program, ctx: ServiceContext) -> None:
    """Copy the program's output, line by line, to its log; watch for the readiness pattern."""
    stream = program.process.stdout
    assert stream is not None
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than the stream limit: take what there is
            raw = await stream.read(65536)
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        program.tail.append(line)
        ctx.log(line)
        if program.log_pattern is not None and program.log_pattern.search(line):
            program.log_matched.set()
