"""Sandbox: bring a profile up (plan, bind all, record, start in order, probe) and take it down.

All or nothing: sockets are bound before anything serves, services start inside an
AsyncExitStack, and any failure unwinds what already started before the error is raised.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sandbox.errors import ConflictError, NotReadyError, SandboxError, UsageError
from sandbox.net.addresses import format_hostport, format_url
from sandbox.net.conflicts import moves_that_help
from sandbox.net.listeners import SocketTable
from sandbox.net.sockets import bind_all
from sandbox.net.table import read_bindv6only, read_listeners, read_table
from sandbox.plan import OnConflict, Plan, make_plan
from sandbox.probe import ProbeResult, wait_ready
from sandbox.probe.tcp import prove_listener
from sandbox.proc.processes import ref_for
from sandbox.profile.models import Profile
from sandbox.runtime.authority import TLS_FOLDER, Authority, make_authority
from sandbox.runtime.events import (
    Emit,
    LogLine,
    ServiceNotReady,
    ServiceReady,
    ServiceStarting,
    ServiceStopped,
    ignore,
)
from sandbox.runtime.logwriter import LogWriter
from sandbox.runtime.private import open_log_fd
from sandbox.runtime.reload import ReloadReport, open_channel, swap_stubs
from sandbox.runtime.retry import plan_and_bind
from sandbox.runtime.running import (
    RunningService,
    discard,
    portless,
    scheme,
    service_environment,
)
from sandbox.runtime.state import SandboxRecord, StateDir
from sandbox.runtime.status import recorded_pids
from sandbox.runtime.stub_access import StubAccess
from sandbox.runtime.stubs import StubRegistry, loopback_only
from sandbox.services.context import Peer, ServiceContext

if TYPE_CHECKING:
    from sandbox.services.command import Program

StopTrigger = Callable[[], Awaitable[object]]
# Readiness probes in flight at once: a thousand at once on one loop starve the stubs that
# must answer them (3000 stubs were "not ready within 10 s").
PROBE_LIMIT = 64
CONTROL = "(control API)"  # the control API's socket among the held ones
WRITE_DELAY = 0.1  # seconds a service's new state may wait to be recorded in state.json


class Sandbox(StubAccess):
    """A profile brought up on loopback; usable as `async with Sandbox(profile) as sb:`.

    `sb.requests("api")`, `sb.verify("api", ...)` and `sb.reset()` (StubAccess) are called
    from the sandbox's own event loop.

    With `state_root`, the sandbox is recorded there (and locked) so `sandbox status`,
    `logs` and `down` can find it; without it nothing is written to disk.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        name: str | None = None,
        on_conflict: OnConflict = "fail",
        state_root: Path | None = None,
        wait_timeout: float = 30.0,
        emit: Emit = ignore,
        table_reader: Callable[[], SocketTable] = read_table,
        foreground: bool = True,
        log_lines: bool = True,
        request_log: bool = True,
        bind: Callable[[Sequence[tuple[Any, int, str]]], list[socket.socket]] = bind_all,
        control_address: str | None = "127.0.0.1",
    ) -> None:
        """`log_lines=False`: no LogLine event per log line (the detached supervisor shows
        none); `request_log=False`: no log line per request for any stub (see `log_requests`)."""
        self.profile = profile
        self.log_lines = log_lines
        self.request_log = request_log
        # The one seam of container mode: sandbox.io.container's binder listens on the
        # container's interface; every other step (plan, probes on the planned address) stays.
        self._bind_all = bind
        self.name = name or profile.name
        self.on_conflict = on_conflict
        self.wait_timeout = wait_timeout
        self.emit = emit
        self.foreground = foreground
        # The stubs' journals and state, and the control API serving them (None: no API).
        self.stubs = StubRegistry(self.name)
        self.control_address = loopback_only(control_address) if control_address else None
        self.control_url: str | None = None
        self._journal_counter = itertools.count(1)
        self.services: dict[str, RunningService] = {}
        self.plan: Plan | None = None
        self.started_at: float | None = None
        self._table_reader = table_reader
        self._state = StateDir(state_root, self.name) if state_root else None
        self._stack: AsyncExitStack | None = None
        self._logs = LogWriter(opener=open_log_fd)
        self._probe_gate = asyncio.Semaphore(PROBE_LIMIT)
        self._stops: list[tuple[int, RunningService, Callable[[], Awaitable[None]]]] = []
        self._rechecks: set[asyncio.Task[None]] = set()  # readiness after a restart
        self._gone = False  # the state folder was removed: nothing may recreate it
        self._scratch: Path | None = None  # {data} and {tmp} when nothing is recorded
        self.forced = False
        self._status = "starting"
        self._pending_write: asyncio.TimerHandle | None = None
        self._write_took = 0.0  # seconds the last write of state.json took
        self.authority: Authority | None = None

    # -- the public surface -------------------------------------------------------------

    def url(self, service: str) -> str:
        return self._get(service).url

    def address(self, service: str) -> str:
        return self._get(service).address

    def port(self, service: str) -> int:
        return self._get(service).port

    def _ask(self, op: str, args: Mapping[str, Any]) -> Any:
        return self.stubs.ask(op, args)

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def serve(self, stop: StopTrigger) -> None:
        """Start, wait for `stop()` to return, then stop (also when cancelled)."""
        await self.start()
        try:
            await stop()
        finally:
            await self.stop()

    async def start(self) -> None:
        """Plan, bind every socket, record, start in dependency order, probe until ready.

        Raises ConflictError (exit 4) before anything serves, NotReadyError (exit 5) after
        stopping what had started. Leaves nothing running when it raises.
        """
        if self._stack is not None:
            raise SandboxError(f'sandbox "{self.name}" is already started.')
        self.started_at = time.time()
        t0 = time.perf_counter()
        async with AsyncExitStack() as stack:
            if self._state is not None:
                lock = self._state.lock()
                lock.acquire()
                stack.callback(lock.release)
                stack.callback(self._remove_state)
            plan, sockets = plan_and_bind(self._make_plan, self._bind, self.on_conflict)
            stack.callback(_close_all, list(sockets.values()))  # one callback, not one each
            control_sock = sockets.pop(CONTROL, None)
            self._materialise(plan, sockets)
            self._certify(stack)
            stack.callback(self._close_logs)
            if control_sock is not None:
                await self._start_control(stack, control_sock)
            self._write_record("starting")
            stack.push_async_callback(self._stop_services)
            await self._start_all(stack, t0)
            # Ready means `sandbox logs` shows every service: its log exists, lines written.
            await self._logs.drained()
            self.stubs.reset()  # readiness probes are not what a test wants to verify
            self._write_record("running")
            await self._open_reload_channel(stack)
            self._stack = stack.pop_all()

    def force(self) -> None:
        """Skip the remaining grace periods: programs still stopping get SIGKILL now."""
        self.forced = True

    async def stop(self) -> None:
        """Stop every service in reverse dependency order; idempotent."""
        stack, self._stack = self._stack, None
        if stack is None:
            return
        for task in list(self._rechecks):
            task.cancel()
        self._write_record("stopping")
        await stack.aclose()

    # -- the steps of start() -----------------------------------------------------------

    def _make_plan(self) -> Plan:
        default_v6only = read_bindv6only()
        plan = None
        if self._table_reader is read_table:
            # Owners matter only to name a conflict: plan from the quick table first.
            quick = read_listeners()
            if quick is not None:
                plan = make_plan(
                    self.profile, quick, on_conflict=self.on_conflict, default_v6only=default_v6only
                )
        if plan is None or plan.conflicts or plan.moves:
            plan = make_plan(
                self.profile,
                self._table_reader(),
                on_conflict=self.on_conflict,
                default_v6only=default_v6only,
                ours=recorded_pids(self._state.root, skip=self.name) if self._state else None,
            )
        self.plan = plan
        if plan.conflicts:
            lines = [c.sentence() for c in plan.conflicts]
            # Only the strategies that can help every conflict (never next-address for ::1).
            helps = [set(moves_that_help(c.address, [c.blocker.rule])) for c in plan.conflicts]
            moves = [m for m in ("next-address", "next-port") if all(m in h for h in helps)]
            raise ConflictError(
                f'sandbox "{self.name}" cannot start: '
                + ("; ".join(lines) if len(lines) == 1 else "\n  " + "\n  ".join(lines)),
                "Nothing was started. `sandbox plan` shows the conflicts; "
                f"--on-conflict {' or '.join(moves)} moves around them.",
            )
        return plan

    def _bind(self, plan: Plan) -> dict[str, socket.socket]:
        # Command services too: their socket reserves the address:port (and picks the port
        # for `port: auto`) until start_command closes it right before the program starts.
        wanted = [s for s in plan.services if not portless(s)]
        held = self._bind_all([(s.address, s.port, s.name) for s in wanted])
        sockets = {s.name: sock for s, sock in zip(wanted, held, strict=True)}
        if self.control_address is not None:
            # Bound with the rest (all or nothing), always on loopback: never through the
            # container binder, whatever interface the services listen on.
            try:
                [sockets[CONTROL]] = bind_all([(self.control_address, 0, CONTROL)])
            except BaseException:
                for sock in held:
                    sock.close()
                raise
        return sockets

    async def _start_control(self, stack: AsyncExitStack, sock: socket.socket) -> None:
        from sandbox.runtime.control import serve_control

        try:
            server = await serve_control(self.stubs, sock)
        except BaseException:
            sock.close()
            raise
        stack.push_async_callback(server.close)
        self.control_url = server.url

    def _materialise(self, plan: Plan, sockets: dict[str, socket.socket]) -> None:
        stubs_log = self._state.stubs_log if self._state is not None else None
        for planned in plan.services:
            sock = sockets.get(planned.name)
            port = sock.getsockname()[1] if sock is not None else planned.port
            spec = planned.spec
            running = RunningService(
                planned=planned,
                address=str(planned.address),
                port=port,
                url="" if portless(planned) else format_url(planned.address, port, scheme(spec)),
                job=getattr(spec, "job", False),
                _sock=sock,
            )
            if self._state is not None:
                stub = planned.kind != "command"  # one file for all stubs: fewer files to make
                running.log_path = stubs_log if stub else self._state.log_path(planned.name)
            self.services[planned.name] = running

    def _certify(self, stack: AsyncExitStack) -> None:
        """Make the sandbox's CA and a certificate per `tls: true` service, in the state
        folder (or, without one, a private temporary folder removed at stop)."""
        wanted = {
            s.name: [s.address, "localhost"]
            for s in self.services.values()
            if s.planned.spec.kind == "http" and s.planned.spec.tls
        }
        if not wanted:
            return
        if self._state is not None:
            folder = self._state.path / TLS_FOLDER
        else:
            temporary = Path(tempfile.mkdtemp(prefix=f"sandbox-{self.name}-"))
            stack.callback(shutil.rmtree, temporary, ignore_errors=True)
            folder = temporary / TLS_FOLDER
        self.authority = make_authority(folder, self.name, wanted)

    @property
    def ca_bundle(self) -> Path | None:
        """The CA certificate that `tls: true` services are signed with (None without any)."""
        return self.authority.bundle if self.authority is not None else None

    async def reload(self, service: str | None = None) -> ReloadReport:
        """Re-read the profile file and swap the behaviour of changed stubs (or of `service`)
        while their sockets stay bound. All or nothing: raises ProfileError (exit 3) for an
        invalid file, StubConfigError (exit 3) for routes that cannot be built, ReloadRefused
        (exit 2) for an edit that needs a restart; the running routes are then kept.
        """
        from sandbox.profile.loader import load_profile

        if self.profile.source is None:
            raise UsageError(
                f'sandbox "{self.name}" was not started from a profile file: nothing to re-read.'
            )
        new = load_profile(self.profile.source)
        stubs = {name: running.server for name, running in self.services.items() if running.server}
        changed = swap_stubs(self.profile, new, stubs, service)
        for name in changed:
            running = self.services[name]
            running.planned = replace(running.planned, spec=new.services[name])
        self.profile = new.with_source(self.profile.source)
        names = [service] if service is not None else list(self.services)
        return ReloadReport(reloaded=changed, unchanged=[n for n in names if n not in changed])

    async def _open_reload_channel(self, stack: AsyncExitStack) -> None:
        if self._state is None:
            return
        server = await open_channel(self._state.path, self.reload)
        if server is not None:
            stack.callback(server.close)

    def _peers(self) -> dict[str, Peer]:
        return {
            s.name: Peer(name=s.name, address=s.address, port=s.port, url=s.url)
            for s in self.services.values()
        }

    async def _start_all(self, stack: AsyncExitStack, t0: float) -> None:
        """Start services in dependency order; a service starts once its dependencies are ready."""
        peers = self._peers()
        ready: dict[str, asyncio.Event] = {name: asyncio.Event() for name in self.services}
        failures: list[ProbeResult] = []

        async def bring_up(running: RunningService) -> None:
            for dep in running.planned.spec.depends_on:
                await ready[dep].wait()
            await self._start_one(stack, running, peers)
            result = await self._wait_ready(running)
            running.ready = result
            if not result.ok:
                failures.append(result)
                self.emit(ServiceNotReady(running.name, result))
                raise NotReadyError(
                    f"{running.name} ({format_hostport(running.address, running.port)}) "
                    f"was not ready: {result.detail}",
                    f"See its log with `sandbox logs {self.name} {running.name}`.",
                )
            if running.state == "starting":
                running.state = "ready"
                self._write_soon()
            self.emit(ServiceReady(running.name, running.url, time.perf_counter() - t0))
            ready[running.name].set()

        # Starting registers cleanups on the shared stack in start order, so unwinding stops
        # services in reverse; a failure cancels the rest and the stack unwinds them all.
        try:
            async with asyncio.TaskGroup() as group:
                for running in self.services.values():
                    group.create_task(bring_up(running))
        except BaseExceptionGroup as group_error:
            raise _first_expected(group_error) from None

    @functools.cached_property
    def _profile_dir(self) -> Path | None:
        # One Path for every service: a thousand stubs need not make a thousand.
        return Path(self.profile.source).parent if self.profile.source else None

    async def _start_one(
        self, stack: AsyncExitStack, running: RunningService, peers: dict[str, Peer]
    ) -> None:
        from sandbox.services import serve

        self.emit(ServiceStarting(running.name, running.kind, running.url))
        log = running.log = self._logger(running)
        ctx = ServiceContext(
            name=running.name,
            address=running.address,
            port=running.port,
            url=running.url,
            profile_dir=self._profile_dir,
            peers=peers,
            log=log,
            counter=self._journal_counter,
            certificate=self.authority.certificates.get(running.name) if self.authority else None,
            ca_bundle=self.ca_bundle,
            log_requests=self.request_log and getattr(running.planned.spec, "log_requests", True),
        )
        spec = running.planned.spec
        if spec.kind == "command":
            from sandbox.services.command import start_command

            ctx.data_dir, ctx.tmp_dir = self._folders(stack, running.name)
            program = await start_command(
                spec,
                ctx,
                env=self._environment(running),
                forced=lambda: self.forced,
                held=running._sock,
                on_restart=lambda program: self._restarted(running, program),
                on_change=lambda program: self._changed(running, program),
            )
            self._on_stop(running, program.close)
            running.program = program
            running.max_restarts = program.max_restarts if program.restart != "no" else 0
            running.pid, running.pgid = program.pid, program.pgid
            running.start_time = program.start_time
            running.give_up = program.exited
            running.argv = tuple(program.argv)
            running.log_ready = program.log_matched if program.log_pattern else None
            self._write_record("starting")
            return
        assert running._sock is not None
        # Proven before it serves: the stub's server never sees the proof's connection
        # (0.2 ms and 5 KiB a stub); a client that came first is served as if accepted.
        running.proof, others = prove_listener(running._sock)
        try:
            server = await serve(spec, running._sock, ctx)
        except BaseException:
            for conn in others:
                conn.close()
            raise
        for conn in others:
            server.adopt(conn)
        running.server, running.ctx = server, ctx
        self.stubs.add(server)
        running.pid = os.getpid()
        self._on_stop(running, server.close)

    def _folders(self, stack: AsyncExitStack, service: str) -> tuple[Path, Path]:
        """{data} and {tmp} of a command service. Recorded sandboxes keep {data} in the state
        root across runs; without a state root both live in one scratch folder per run."""
        if self._state is not None:
            return self._state.data_dir(service), self._state.tmp_dir(service)
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix=f"sandbox-{self.name}-"))
            stack.callback(shutil.rmtree, self._scratch, ignore_errors=True)
        data, tmp = self._scratch / "data" / service, self._scratch / "tmp" / service
        data.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        return data, tmp

    def _restarted(self, running: RunningService, program: Program) -> None:
        running.pid, running.pgid = program.pid, program.pgid
        running.start_time, running.restarts = program.start_time, program.restarts
        was_ready = running.ready is not None and running.ready.ok
        running.state = "starting"
        self._write_record(self._status)
        if was_ready:  # during `up` the first readiness wait is still watching it
            task = asyncio.create_task(self._ready_again(running, program))
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    def _changed(self, running: RunningService, program: Program) -> None:
        running.state, running.exit_code = program.state, program.exit_code
        self._write_record(self._status)

    def _on_stop(self, running: RunningService, close: Callable[[], Awaitable[None]]) -> None:
        self._stops.append((self._level(running.name), running, close))

    def _level(self, name: str) -> int:
        """0 for a service without dependencies, else one more than its deepest dependency."""
        deps = self.services[name].planned.spec.depends_on
        return 1 + max(map(self._level, deps)) if deps else 0

    async def _stop_services(self) -> None:
        """Stop what started: the deepest dependents first, each level's services at once
        (a thousand stubs stop in one round, not one after the other)."""
        stops, self._stops = self._stops, []
        for level in sorted({lvl for lvl, _, _ in stops}, reverse=True):
            batch = [(running, close) for lvl, running, close in stops if lvl == level]
            outcomes = await asyncio.gather(
                *((running.close or close)() for running, close in batch),
                return_exceptions=True,
            )
            for (running, _), outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    raise outcome
                self.emit(ServiceStopped(running.name))

    async def _ready_again(self, running: RunningService, program: Program) -> None:
        """After a restart of a program that was ready: `ready` again once it answers."""
        try:
            result = await self._wait_ready(running)
        except SandboxError as exc:  # someone else's listener answered: say so, stay starting
            running.log(f"[sandbox] {exc.message}")
            return
        if result.ok and running.state == "starting" and program.state == "starting":
            program.state = running.state = "ready"
            running.log(f"[sandbox] ready again: {result.detail}")
            self._write_record(self._status)

    async def restart(self, names: Sequence[str]) -> dict[str, ProbeResult]:
        """Restart the named services, one after the other, each until ready again; the
        others keep their processes and sockets. A program gets its whole group stopped and
        started again; a stub closes and serves anew on its address:port. Returns each
        service's readiness result. Raises SandboxError for an unknown name (before
        anything restarts), BindError if a port was taken meanwhile.
        """
        if self._stack is None:
            raise SandboxError(f'sandbox "{self.name}" is not running (yet, or any more).')
        chosen = [self._get(name) for name in names]
        results: dict[str, ProbeResult] = {}
        for running in chosen:
            running.state = "starting"
            self._write_record(self._status)
            program = running.program
            if program is not None:
                await program.restart_now()
                running.pid, running.pgid = program.pid, program.pgid
                running.start_time = program.start_time
            else:
                await self._restart_stub(running)
            self._write_record(self._status)
            result = await self._wait_ready(running)
            running.ready = result
            if program is not None and program.state != "starting":
                running.state = program.state  # it exited again, or (a job) completed
            elif result.ok:
                running.state = "ready"
                if program is not None:
                    program.state = "ready"
            self._write_record(self._status)
            results[running.name] = result
        return results

    async def _restart_stub(self, running: RunningService) -> None:
        from sandbox.net.sockets import bind_listener
        from sandbox.services import serve

        assert running.server is not None
        assert running.ctx is not None
        await running.server.close()
        sock = bind_listener(running.address, running.port, service=running.name)
        try:
            running.server = await serve(running.planned.spec, sock, running.ctx)
        except BaseException:
            sock.close()
            raise
        server = running.server
        self.stubs.add(server)  # the control API's journal and state follow the new server
        running.close = server.close

    async def _wait_ready(self, running: RunningService) -> ProbeResult:
        from sandbox.runtime.readiness import readiness

        async def gated(probe: Awaitable[ProbeResult]) -> ProbeResult:
            async with self._probe_gate:
                return await probe

        check = readiness(running, self.wait_timeout, self.ca_bundle)
        done = check.now() if check.now is not None else None
        running.proof = None  # used now or never: a restart proves itself anew
        if done is not None:
            return done
        result = await wait_ready(
            lambda: gated(check.probe()),
            timeout=check.timeout,
            interval=check.interval,
            max_interval=check.max_interval,
            give_up=running.give_up,
        )
        if result.ok and running.planned.spec.kind == "command" and not running.job:
            self._check_owner(running)
        return result

    def _check_owner(self, running: RunningService) -> None:
        """A program's port must be held by its own process tree: anyone else's is a conflict.
        And the tree must listen on loopback only: a wildcard or outside address is one too."""
        from sandbox.net.conflicts import blockers
        from sandbox.proc.processes import descendants
        from sandbox.runtime.exposure import exposed, exposure_error

        assert running.pid is not None
        # The table first, the family after: a child forked between the two (nginx's worker,
        # which may be the one the table names) is then in the family, never a stranger.
        table = self._table_reader()
        family = {running.pid, *(ref.pid for ref in descendants(running.pid))}
        address = running.planned.address
        outside = exposed(table, family)
        if outside:
            raise exposure_error(running.name, running.argv, running.address, running.port, outside)
        if not running.port:
            return
        for blocker in blockers(address, running.port, table):
            owner = blocker.listener.owner
            if owner is None or owner.pid is None or owner.pid in family:
                continue
            raise ConflictError(
                f"{running.name} ({format_hostport(running.address, running.port)}) answered, "
                f"but the listener is {blocker.reason}, not the program the sandbox started.",
                blocker.fix,
            )

    def _environment(self, running: RunningService) -> dict[str, str]:
        env = service_environment(self.services.values(), running, ca_bundle=self.ca_bundle)
        if self.control_url is not None:
            env.setdefault("SANDBOX_CONTROL_URL", self.control_url)
        return env

    # -- logs and state -----------------------------------------------------------------

    def _logger(self, running: RunningService) -> Callable[[str], None]:
        write = None
        if running.log_path is not None:
            shared = running.kind != "command"
            write = self._logs.open(running.log_path, running.name if shared else None)
        name, emit = running.name, self.emit
        if emit is ignore or not self.log_lines:  # nobody streams them: the file is all
            return write if write is not None else discard

        def log(line: str) -> None:
            if write is not None:
                write(line)
            emit(LogLine(name, line))

        return log

    def _close_logs(self) -> None:
        self._logs.close()

    def record(self) -> SandboxRecord:
        """What the state folder holds about this sandbox now."""
        return SandboxRecord(
            name=self.name,
            profile=self.profile.name,
            profile_path=self.profile.source,
            supervisor=ref_for(os.getpid()),
            started_at=self.started_at or time.time(),
            status=self._status,  # type: ignore[arg-type]
            services=tuple(s.record() for s in self.services.values()),
            foreground=self.foreground,
            control=self.control_url,
        )

    def _remove_state(self) -> None:
        self._gone = True  # a late change (a restart answered while stopping) writes nothing
        assert self._state is not None
        self._state.remove()

    def _write_record(self, status: str) -> None:
        self._status = status
        if self._pending_write is not None:
            self._pending_write.cancel()
            self._pending_write = None
        if self._state is None or self._gone:
            return
        started = time.perf_counter()
        self._state.write(self.record())
        self._write_took = time.perf_counter() - started

    def _write_soon(self) -> None:
        """Record a change soon: within WRITE_DELAY, or twenty times as long as the last
        write took, so that writing takes at most a twentieth of the time. A thousand stubs
        becoming ready one after the other make a few writes of state.json, not a thousand
        (each one of every service)."""
        if self._state is None or self._pending_write is not None:
            return

        def write() -> None:
            self._pending_write = None
            self._write_record(self._status)

        delay = max(WRITE_DELAY, 20 * self._write_took)
        self._pending_write = asyncio.get_running_loop().call_later(delay, write)

    def _get(self, service: str) -> RunningService:
        try:
            return self.services[service]
        except KeyError:
            known = ", ".join(self.services) or "none"
            raise SandboxError(
                f'sandbox "{self.name}" has no service "{service}" (services: {known}).'
            ) from None


def _close_all(socks: Iterable[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def _first_expected(group_error: BaseExceptionGroup[BaseException]) -> BaseException:
    """Unwrap a TaskGroup failure: the sandbox errors combined, else the first error."""
    expected = [e for e in _leaves(group_error) if isinstance(e, SandboxError)]
    if not expected:
        return next(iter(_leaves(group_error)))
    if len(expected) == 1:
        return expected[0]
    first = expected[0]
    combined = "\n  ".join(e.message for e in expected)
    return type(first)(f"{len(expected)} services failed:\n  {combined}", first.hint)


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]
