"""Real programs as services: rendered, started in their own process group, tied to the
supervisor, logged, restarted on failure, and stopped as a whole group."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pty
import re
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from sandbox.errors import CommandConfigError, NotReadyError, SandboxError, TeardownError
from sandbox.net.sockets import bind_listener
from sandbox.proc.exits import wait_exit
from sandbox.proc.marker import MARKER_ENV, own_marker
from sandbox.proc.processes import (
    descendants,
    orphaned_group,
    preexec_child,
    ref_for,
    signal_tree,
    terminate_group,
)
from sandbox.proc.ref import ProcessRef
from sandbox.profile.models import CommandService
from sandbox.profile.placeholders import PEER, TOKEN  # the grammar `validate` checks
from sandbox.services.bounded import Bounded, PatternTimeout
from sandbox.services.context import ServiceContext

BACKOFF_FIRST = 0.2  # seconds before the first restart, doubled for each one after it
BACKOFF_CAP = 5.0
TAIL_SHOWN = 10  # lines of output quoted when a program exits before it is ready
_DRAIN = 0.5  # how long an exit waits for the rest of the output (a grandchild may hold it)
_LINE_LIMIT = 1 << 20
_FORCE_POLL = 0.05  # how often a stop in its grace period looks for a force
RestartHook = Callable[["Program"], None]
ChangeHook = Callable[["Program"], None]


def _values(ctx: ServiceContext) -> dict[str, str]:
    values = {attr: str(getattr(ctx, attr)) for attr in PEER}
    for peer in ctx.peers.values():
        for attr in PEER:
            values[f"services.{peer.name}.{attr}"] = str(getattr(peer, attr))
    values["python"] = sys.executable  # the interpreter sandbox runs on, for Python programs
    if ctx.data_dir is not None:
        values["data"] = str(ctx.data_dir)
    if ctx.tmp_dir is not None:
        values["tmp"] = str(ctx.tmp_dir)
    return values


def fill(text: str, ctx: ServiceContext, where: str) -> str:
    """`text` with {address} {port} {url} {name} and {services.NAME.ATTR} filled in.

    Raises CommandConfigError (exit 3) naming `where` for an unknown placeholder.
    """
    values = _values(ctx)

    def one(found: re.Match[str]) -> str:
        if found.group(1) is not None:
            return found.group(1)
        key = found.group(2)
        if key not in values:
            peers = ", ".join(sorted(ctx.peers)) or "none"
            raise CommandConfigError(
                f"{where} has an unknown placeholder {{{key}}}: use {{address}}, {{port}}, "
                f"{{url}}, {{name}}, {{data}}, {{tmp}}, {{python}} or "
                f"{{services.NAME.address|port|url}} "
                f"(services: {peers}).",
                "Write {{" + key + "}} for a literal {" + key + "}; ${VAR} is left to the shell.",
            )
        return values[key]

    return TOKEN.sub(one, text)


def render_command(run: str, ctx: ServiceContext, *, where: str = "") -> list[str]:
    """Split `run` like a shell would, then fill the placeholders of each argument.

    Splitting first means a value can never add or break arguments; for pipes, `&` or
    `$VAR` write `sh -c '...'`. Raises CommandConfigError for an unknown placeholder, an
    unclosed quote or an empty command.
    """
    where = where or f"services.{ctx.name}.run"
    try:
        argv = shlex.split(run)
    except ValueError as exc:
        raise CommandConfigError(
            f"{where} cannot be split into arguments: {exc}.",
            "Close every quote; write `sh -c '...'` when you need a shell.",
        ) from None
    if not argv:
        raise CommandConfigError(f"{where} is empty.", "Give the program to run and its arguments.")
    return [fill(arg, ctx, where) for arg in argv]


def render_env(spec: CommandService, ctx: ServiceContext, env: Mapping[str, str]) -> dict[str, str]:
    """`env` with the service's own `env:` values laid over it, placeholders filled in.

    PYTHONUNBUFFERED=1 unless set: a Python program's output into a pipe would otherwise
    wait in a buffer, and `ready.log` and the logs would see it late or never.
    """
    out = dict(env)
    out.setdefault("PYTHONUNBUFFERED", "1")
    for key, value in spec.env.items():
        out[key] = fill(value, ctx, f"services.{ctx.name}.env.{key}")
    return out


def check_port_free(ctx: ServiceContext) -> None:
    """The sandbox cannot hold a program's socket; re-check just before a start.

    Raises BindError (a conflict, exit 4) when the address:port is taken. Leaves nothing open.
    """
    bind_listener(ctx.address, ctx.port, service=ctx.name).close()


def _how(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"was killed by signal {-code}"


class Program:
    """A supervised program: its current process (a new one after each restart), the tail of
    its output, and how often it was restarted. Build it with `start_command`."""

    def __init__(
        self,
        spec: CommandService,
        ctx: ServiceContext,
        argv: list[str],
        env: dict[str, str],
        cwd: str | None,
        *,
        forced: Callable[[], bool] = lambda: False,
        on_restart: RestartHook | None = None,
        on_change: ChangeHook | None = None,
    ) -> None:
        self.name = ctx.name
        self.ctx, self.argv, self.env, self.cwd = ctx, argv, env, cwd
        self.tail: collections.deque[str] = collections.deque(maxlen=TAIL_SHOWN)
        ready_log = spec.ready.log if spec.ready else None
        # Searched in every line of output (up to 1 MiB each): with a time limit.
        self.log_pattern = Bounded(ready_log) if ready_log else None
        self.log_matched = asyncio.Event()
        self.stop_signal = signal.Signals[spec.stop_signal]
        self.stop_timeout = spec.stop_timeout
        self.restart, self.max_restarts = spec.restart, spec.max_restarts
        self.job, self.tty = spec.job, spec.tty
        self.lines_seen = 0  # output lines of every run so far (none: maybe block-buffered)
        self.restarts = 0
        self.start_time: float | None = None  # of the current process, as psutil reports it
        self.forced, self.on_restart, self.on_change = forced, on_restart, on_change
        # The program's life as `status` shows it: starting, ready (set by whoever probed
        # it), exited, restarting, gave up. `exit_code` is the last exit (negative: signal).
        self.state = "starting"
        self.exit_code: int | None = None
        self._processes: list[asyncio.subprocess.Process] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._settled = False  # the current process's exit and last output have been taken in
        self._failure: str | None = None  # why a due restart did not happen
        self._closing = False
        self._closed = asyncio.Event()
        self._restarting = asyncio.Lock()
        self._mark = own_marker()
        self._pty_transports: list[asyncio.ReadTransport] = []
        self._asked: set[int] = set()  # pids stopped on purpose by restart_now()
        self._exited_at = 0.0  # when the current process exited (wall clock, as psutil's)

    @property
    def process(self) -> asyncio.subprocess.Process:
        return self._processes[-1]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the program leads its own group

    def _may_restart(self, code: int) -> bool:
        return (
            self.restart == "on-failure"
            and code != 0
            and self.restarts < self.max_restarts
            and self._failure is None
            and not self._closing
        )

    def exited(self) -> str | None:
        """A sentence once the program has exited for good (so waiting for it is pointless).

        None while it runs, and while a restart is due (`restart: on-failure`).
        """
        code = self.process.returncode
        if self._failure is None and (code is None or not self._settled or self._may_restart(code)):
            return None
        if self.job and code == 0 and self._failure is None:
            return None  # a job that completed is what its readiness waits for
        how = self._failure or _how(code if code is not None else 0)
        if self.restarts:
            how += f" after {self.restarts} restart{'s' if self.restarts > 1 else ''}"
        last = "\n    ".join(self.tail) if self.tail else "(no output)"
        if self.job:
            return f"the job {how}; its last output:\n    {last}"
        return f"the program {how} before it was ready; its last output:\n    {last}"

    async def _spawn(self) -> None:
        # The mark lets `down` find this program (and what it starts) even if we die before
        # recording its pid; the parent-death signal is set before exec, in the child.
        env = {**self.env, MARKER_ENV: self._mark}
        # tty: true gives the program a pseudo-terminal for its output, so C stdio (and
        # anything else that asks isatty) writes line by line instead of in blocks.
        master, slave = pty.openpty() if self.tty else (None, None)
        out: int = asyncio.subprocess.PIPE if slave is None else slave
        try:
            process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT if slave is None else slave,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=preexec_child(signal.SIGKILL),
                limit=_LINE_LIMIT,
            )
        except OSError as exc:
            if master is not None:
                os.close(master)
            raise NotReadyError(
                f"{self.name}: cannot start {self.argv[0]!r}: {exc.strerror or exc}.",
                f"Check services.{self.name}.run: the program must exist, be executable and "
                "be on PATH (or give its path, relative to `cwd`).",
            ) from None
        finally:
            if slave is not None:
                os.close(slave)  # the program holds it now; EOF comes once it lets go
        ref = ref_for(process.pid)
        self.start_time = ref.start_time if ref else None
        self._processes.append(process)
        self._settled = False
        self.log_matched.clear()  # readiness by log is the current process's
        stream = process.stdout if master is None else await self._read_pty(master)
        assert stream is not None
        reader = asyncio.create_task(self._pump(stream))
        self._tasks += [reader, asyncio.create_task(self._watch(process, reader))]

    async def _read_pty(self, master: int) -> asyncio.StreamReader:
        loop = asyncio.get_running_loop()
        stream = asyncio.StreamReader(limit=_LINE_LIMIT, loop=loop)
        pipe = os.fdopen(master, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream, loop=loop), pipe
        )
        self._pty_transports.append(transport)
        return stream

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Copy the output, line by line, to the service's log; watch for `ready.log`."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # asyncio dropped a line longer than the limit
                self.ctx.log(f"[sandbox] a line longer than {_LINE_LIMIT} bytes was skipped")
                continue
            except OSError:  # a pseudo-terminal says EIO once the program closed its side
                return
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.lines_seen += 1
            self.tail.append(line)
            self.ctx.log(line)
            if self.log_pattern is not None and self._log_matches(line):
                self.log_matched.set()

    def _log_matches(self, line: str) -> bool:
        """Whether `ready.log` is found in `line`; a search out of time (logged) is not."""
        assert self.log_pattern is not None
        try:
            return self.log_pattern.search(line) is not None
        except PatternTimeout as exc:
            self.ctx.log(f"[sandbox] ready.log: {exc}")
            return False

    def set_state(self, state: str) -> None:
        """Record a change of the program's life and tell `on_change`."""
        if state == self.state:
            return
        self.state = state
        if self.on_change is not None:
            self.on_change(self)

    async def _watch(self, process: asyncio.subprocess.Process, reader: asyncio.Task[None]) -> None:
        """Wait for the exit (of the process, not of its pipes); restart when the policy says so."""
        code = await wait_exit(process)
        self._exited_at = time.time()
        self.exit_code = code
        asked = self._closing or process.pid in self._asked  # down, `sandbox restart`
        done = self.job and code == 0
        again = not asked and self._may_restart(code)
        if not asked:
            # Said at once: `status` must not wait for output a grandchild may hold forever.
            failed = self.restart == "on-failure" and code != 0
            self.set_state(
                "restarting"
                if again
                else "completed"
                if done
                else "gave up"
                if failed
                else "exited"
            )
        # The rest of the output, if it comes soon: a grandchild may hold the pipe for good.
        await asyncio.wait({reader}, timeout=_DRAIN)
        self._settled = True
        if asked:
            return
        said = "the job completed" if done else f"the program {_how(code)}"
        self.ctx.log(f"[sandbox] {said}")
        if not again:
            return
        async with self._restarting:
            delay = min(BACKOFF_FIRST * 2**self.restarts, BACKOFF_CAP)
            self.ctx.log(
                f"[sandbox] restart {self.restarts + 1} of {self.max_restarts} in {delay:g} s"
            )
            # The backoff is the behaviour asked for, not a readiness wait; close() cuts it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closed.wait()
            if self._closing:
                return
            # What the dead program left in its group would hold the port, or linger.
            await terminate_group(
                process.pid,
                sig=self.stop_signal,
                grace=self.stop_timeout,
                extra=orphaned_group(process.pid, self._exited_at),
                leader_start=self.start_time,
                reap=False,
            )
            try:
                if self.ctx.port:
                    check_port_free(self.ctx)
                await self._spawn()
            except SandboxError as exc:
                self._failure = f"{_how(code)} and could not be restarted ({exc.message})"
                self.ctx.log(f"[sandbox] {self._failure}")
                self.set_state("gave up")
                return
            self.restarts += 1
            self.state = "starting"
            if self.on_restart is not None:
                self.on_restart(self)

    async def restart_now(self) -> None:
        """Stop the current process with its whole group (stop_signal, stop_timeout, SIGKILL)
        and start it again, as `sandbox restart` asks. Not counted in `restarts`, which
        counts crashes. Raises BindError if the port was taken meanwhile, NotReadyError if
        the program cannot start, TeardownError if the old group survived SIGKILL.
        """
        async with self._restarting:
            if self._closing:
                return
            process = self.process
            self._asked.add(process.pid)
            extra = descendants(process.pid, self.start_time)
            survivors = await terminate_group(
                process.pid,
                sig=self.stop_signal,
                grace=self.stop_timeout,
                extra=extra,
                leader_start=self.start_time,
                reap=False,
            )
            if survivors:
                pids = ", ".join(str(p) for p in survivors)
                raise TeardownError(f"{self.name}: process(es) {pids} survived SIGKILL.")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wait_exit(process), timeout=5.0)
            self.ctx.log("[sandbox] restarting, as asked")
            self._failure = None
            if self.ctx.port:
                check_port_free(self.ctx)
            await self._spawn()
            self.state = "starting"

    async def close(self) -> None:
        """Stop signal to the whole group (and to descendants that left it), `stop_timeout`
        of grace (none once `forced()`), SIGKILL, until the group is empty. Idempotent.

        Raises TeardownError naming the pids that survived SIGKILL. Cancels a pending restart.
        """
        if self._closing:
            return
        self._closing = True
        self._closed.set()
        async with self._restarting:  # a restart under way finishes (or gives up) first
            pass
        process = self.process
        extra = descendants(process.pid, self.start_time)
        if process.returncode is not None:  # we reaped the leader: what is left is ours
            extra += orphaned_group(process.pid, self._exited_at)
        grace = 0.0 if self.forced() else self.stop_timeout
        stopping = asyncio.create_task(
            terminate_group(
                process.pid,
                sig=self.stop_signal,
                grace=grace,
                extra=extra,
                leader_start=self.start_time,
                reap=False,  # asyncio's child watcher owns the leader's exit status
            )
        )
        # A force (second Ctrl-C) during the grace cuts it short: SIGKILL now, and
        # terminate_group sees the group empty at its next poll.
        try:
            while not (await asyncio.wait({stopping}, timeout=_FORCE_POLL))[0]:
                if self.forced():
                    _kill_now(process.pid, self.start_time, extra)
                    break
            survivors = await stopping
        except asyncio.CancelledError:
            _kill_now(
                process.pid, self.start_time, extra
            )  # a cancelled close must not leave the group behind
            raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wait_exit(process), timeout=5.0)
        await self._finish_tasks()
        if survivors:
            pids = ", ".join(str(p) for p in survivors)
            raise TeardownError(
                f"{self.name}: process(es) {pids} survived SIGKILL.",
                "A process in uninterruptible sleep (state D) waits on the kernel; "
                "see it with `ps -o pid,stat,cmd -p PID`.",
            )

    async def _finish_tasks(self) -> None:
        done, pending = await asyncio.wait(self._tasks, timeout=1.0) if self._tasks else ((), ())
        for task in pending:
            task.cancel()
        for task in [*done, *pending]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for proc in self._processes:
            # An unread pipe keeps the transport open; close it so nothing leaks.
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
        for pty_transport in self._pty_transports:
            pty_transport.close()


def _kill_now(pgid: int, start: float | None, extra: list[ProcessRef]) -> None:
    signal_tree(pgid, signal.SIGKILL, leader_start=start, extra=extra)


async def start_command(
    spec: CommandService,
    ctx: ServiceContext,
    *,
    env: Mapping[str, str],
    forced: Callable[[], bool] = lambda: False,
    held: socket.socket | None = None,
    on_restart: RestartHook | None = None,
    on_change: ChangeHook | None = None,
) -> Program:
    """Start the program in its own session and process group, dying with its parent on Linux.

    `held` is the socket that reserved the service's address:port until now: it is closed
    right before the start; without it the address:port is checked by binding it. Output
    lines go to `ctx.log`. `on_restart(program)` is called after each restart, once `pid`,
    `pgid`, `start_time` and `restarts` are current. Raises CommandConfigError (exit 3) for a
    bad `run`/`env`/`cwd`, BindError (exit 4) if the port is taken, NotReadyError (exit 5)
    if the program cannot be started. Leaves a running process owned by the returned Program.
    """
    argv = render_command(spec.run, ctx)
    program = Program(
        spec,
        ctx,
        argv,
        render_env(spec, ctx, env),
        _cwd(spec, ctx),
        forced=forced,
        on_restart=on_restart,
        on_change=on_change,
    )
    if held is not None:
        held.close()
    elif ctx.port:
        check_port_free(ctx)
    await program._spawn()
    await _test_hold(program)
    return program


async def _test_hold(program: Program) -> None:
    """Test hook: with SANDBOX_TEST_HOLD_AFTER_SPAWN=FILE, write the pid to FILE and stop here
    for good, so a test can kill the supervisor between the start and the record."""
    path = os.environ.get("SANDBOX_TEST_HOLD_AFTER_SPAWN")
    if path:
        with open(path, "w", encoding="ascii") as stream:  # noqa: ASYNC230 (test hook)
            stream.write(f"{program.pid}\n")
        await asyncio.Event().wait()


def _cwd(spec: CommandService, ctx: ServiceContext) -> str | None:
    """`cwd` relative to the profile's folder; without `cwd`, the profile's folder itself."""
    base = ctx.profile_dir
    if spec.cwd is None:
        return str(base) if base is not None else None
    path = ((base or Path.cwd()) / spec.cwd).resolve()
    if not path.is_dir():
        raise CommandConfigError(
            f"services.{ctx.name}.cwd: the folder {path} does not exist.",
            "`cwd` is relative to the profile's folder; create the folder or fix the path.",
        )
    return str(path)
