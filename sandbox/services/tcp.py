"""TCP stubs: a banner, expect/send rules over the bytes received, a default, and faults."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.net.addresses import format_hostport
from sandbox.profile.models import Fault, TcpService, TcpSpec
from sandbox.services.bounded import Bounded, PatternTimeout
from sandbox.services.context import ServiceContext
from sandbox.services.faults import inflict
from sandbox.services.journal import Entry, Journal
from sandbox.services.templates import RenderError, Text, compile_text

if TYPE_CHECKING:
    from regex import Match

READ_SIZE = 64 * 1024
BUFFER_LIMIT = 64 * 1024  # unanswered bytes kept per connection (the newest ones)


class _GivenUp(Exception):
    """A connection whose input an `expect` could not search in time: close it."""


CLOSE_DEADLINE = 2.0  # how long close() waits for connections and the server to finish
PREVIEW = 40  # bytes of each chunk shown in the log


def to_bytes(text: str) -> bytes:
    """Text as bytes: one byte per character up to U+00FF (so "\\r\\n" and "\\x00" are exact);
    text with characters beyond that is sent as UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


def _payload(text: str | None, hex_text: str | None) -> bytes | None:
    if hex_text is not None:
        return bytes.fromhex(hex_text)
    return None if text is None else to_bytes(text)


def _send_template(send: str | None, where: str) -> Text | None:
    """`send` compiled when it is a template. Raises StubConfigError for a syntax error."""
    if send is None or compile_text(send, where).template is None:
        return None
    # Jinja2 turns \r\n in a template's text into \n; a protocol's line ends must survive.
    return compile_text(send.replace("\r", "{{ '\\r' }}"), where)


def _preview(data: bytes) -> str:
    shown = repr(data[:PREVIEW])[2:-1]
    return shown + ("..." if len(data) > PREVIEW else "")


@dataclass(frozen=True)
class _Rule:
    index: int  # in the profile's rules, for the journal
    expect: Bounded[bytes]  # searched in up to 64 KiB kept: with a time limit
    send: bytes | None
    close: bool
    delay: float
    fault: Fault | None
    template: Text | None = None  # `send` when it holds {{ }}: rendered per match


def _match_variables(found: Match[bytes]) -> dict[object, str]:
    """`match` in a `send` template: match[0] is the whole match, match[1].. the groups,
    match.NAME a named group; bytes are read one byte to one character (latin-1)."""
    groups: dict[object, str] = {0: found.group(0).decode("latin-1")}
    for index, value in enumerate(found.groups(), start=1):
        groups[index] = (value or b"").decode("latin-1")
    for name, value in found.groupdict().items():
        groups[name] = (value or b"").decode("latin-1")
    return groups


class _Conn:
    """One client connection's bookkeeping: what came and went (capped for the journal),
    the rules that answered, the fault that fired, log lines."""

    def __init__(self, peer: str, stub: TcpStub) -> None:
        self.peer = peer
        self.stub = stub
        self.bytes_in = self.bytes_out = 0
        self.kept_in, self.kept_out = bytearray(), bytearray()
        self.rules: list[int] = []
        self.fault: Fault | None = None
        self.wall, self.started = time.time(), time.monotonic()

    def received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._keep(self.kept_in, data)
        self.stub.traffic(f"{self.peer} -> {len(data)}B {_preview(data)}")

    async def send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.bytes_out += len(data)
        self._keep(self.kept_out, data)
        self.stub.traffic(f"{self.peer} <- {len(data)}B {_preview(data)}")

    def _keep(self, kept: bytearray, data: bytes) -> None:
        room = self.stub.journal.body_max - len(kept)
        if room > 0:
            kept += data[:room]

    def closed(self) -> Entry:
        """Log the end of the connection and return its journal entry."""
        latency = (time.monotonic() - self.started) * 1000
        fault = f", fault={self.fault}" if self.fault else ""
        self.stub.traffic(
            f"{self.peer} closed after {latency:.1f}ms "
            f"(in {self.bytes_in}B, out {self.bytes_out}B{fault})"
        )
        journal = self.stub.journal
        return Entry(
            time=self.wall,
            client=self.peer,
            method="TCP",
            path="",
            seq=journal.next_seq(),
            service=journal.service,
            body=bytes(self.kept_in),
            body_size=self.bytes_in,
            latency_ms=latency,
            fault=self.fault,
            sent=bytes(self.kept_out),
            sent_size=self.bytes_out,
            rules=tuple(self.rules),
        )

    async def drain(self, reader: asyncio.StreamReader) -> None:
        """Read and ignore until the client closes: how a hanging connection waits."""
        while data := await reader.read(READ_SIZE):
            self.received(data)


def _compiled(spec: TcpService, name: str) -> tuple[TcpSpec, bytes, list[_Rule]]:
    """The behaviour of a TCP stub. Raises StubConfigError for a bad `send` template."""
    tcp = spec.tcp
    rules = [
        _Rule(
            index=n,
            expect=Bounded(to_bytes(rule.expect)),
            send=_payload(rule.send, rule.send_hex),
            close=rule.then == "close",
            delay=rule.delay,
            fault=rule.fault,
            template=_send_template(rule.send, f"services.{name}.tcp.rules[{n}].send"),
        )
        for n, rule in enumerate(tcp.rules)
    ]
    return tcp, _payload(tcp.banner, tcp.banner_hex) or b"", rules


def _quiet(line: str) -> None:
    """The traffic log of a stub whose requests are not logged."""


class TcpStub:
    """A running TCP stub (a StubServer); `serve_tcp` makes one."""

    def __init__(self, spec: TcpService, ctx: ServiceContext) -> None:
        self.name = ctx.name
        self.log = ctx.log
        # A line per connection and per chunk, unless the profile or the user turned it off.
        self.traffic = ctx.log if ctx.log_requests else _quiet
        self._peers = ctx.peers
        self._spec, self._banner, self._rules = _compiled(spec, ctx.name)
        self._journal = Journal(ctx.name, spec.journal.max, spec.journal.body_max, ctx.counter)
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._server: asyncio.Server | None = None
        self._adopting: set[asyncio.Task[object]] | None = None  # made on first use
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    @property
    def journal(self) -> Journal:
        return self._journal

    @property
    def state(self) -> None:
        return None  # TCP rules keep no scenarios or variables

    def reset(self) -> None:
        """Forget the journal."""
        self._journal.clear()

    def prepare_reload(self, spec: TcpService) -> Callable[[], None]:
        """Build `spec`; the returned function makes it answer from the next bytes received
        on (open connections included). Raises StubConfigError, having changed nothing."""
        compiled = _compiled(spec, self.name)

        def commit() -> None:
            self._spec, self._banner, self._rules = compiled

        return commit

    async def start(self, sock: socket.socket) -> None:
        """Serve on `sock` (bound and listening); from now on close() closes it."""
        # A backlog of SOMAXCONN: asyncio calls listen() again and must not shrink the queue.
        self._server = await asyncio.start_server(self._handle, sock=sock, backlog=socket.SOMAXCONN)

    def adopt(self, conn: socket.socket) -> None:
        """Serve `conn`, accepted from this stub's socket elsewhere (see StubServer), as
        asyncio.start_server serves what it accepts."""
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.StreamReaderProtocol:
            return asyncio.StreamReaderProtocol(asyncio.StreamReader(), self._handle)

        task = loop.create_task(loop.connect_accepted_socket(protocol, sock=conn))
        if self._adopting is None:
            self._adopting = set()
        self._adopting.add(task)
        task.add_done_callback(self._adopting.discard)

    async def close(self) -> None:
        """Stop listening (the socket is closed), drop every connection, hanging ones
        included, and wait for them within CLOSE_DEADLINE. Idempotent."""
        if self._closing is None:
            self._closing = asyncio.create_task(self._shutdown())
        await asyncio.shield(self._closing)

    async def _shutdown(self) -> None:
        self._closed = True
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)  # connections accepted just before see _closed and leave
        for task, writer in list(self._connections.items()):
            writer.transport.abort()
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=CLOSE_DEADLINE)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), CLOSE_DEADLINE)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self._closed or task is None:
            writer.transport.abort()
            return
        self._connections[task] = writer
        peername = writer.get_extra_info("peername")
        conn = _Conn(format_hostport(*peername[:2]) if peername else "?", self)
        self.traffic(f"{conn.peer} connected")
        try:
            with contextlib.suppress(_GivenUp):  # (logged) closed like any other end
                await self._converse(reader, writer, conn)
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), CLOSE_DEADLINE)
        except OSError as exc:  # ConnectionResetError and the like: the client is gone
            self.log(f"{conn.peer} connection error: {exc}")
        except asyncio.CancelledError:
            # close() cancelled this connection. End the task normally: asyncio's stream
            # protocol calls task.exception() on it, which raises for a cancelled task.
            pass
        finally:
            writer.transport.abort()  # a no-op after a clean close; cuts a cancelled one
            del self._connections[task]
            entry = conn.closed()
            if entry.body_size or entry.fault:  # a bare connect (a port probe) says nothing
                self._journal.add(entry)

    async def _converse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: _Conn
    ) -> None:
        """Talk with one client until the connection should close; return to close it."""
        transport = writer.transport
        fault = self._spec.fault
        if fault is not None:
            conn.fault = fault
            # Unlike `empty`, `close` waits for the client to say something first.
            if fault == "close" and (data := await reader.read(READ_SIZE)):
                conn.received(data)
            await inflict(fault, transport, lambda: conn.drain(reader))
            return
        if self._banner:
            await conn.send(writer, self._banner)
        buffer = bytearray()
        while data := await reader.read(READ_SIZE):
            conn.received(data)
            buffer += data
            answered = False
            # Several requests may arrive in one read (pipelining): answer each in turn.
            while hit := self._matched(buffer, conn, allow_empty=not answered):
                rule, found = hit
                end = found.end()
                answered = True
                conn.rules.append(rule.index)
                send = self._rendered(rule, found, conn)
                del buffer[:end]
                if rule.delay:
                    await asyncio.sleep(rule.delay)
                if rule.fault is not None:
                    conn.fault = rule.fault
                    await inflict(rule.fault, transport, lambda: conn.drain(reader))
                    return
                if send:
                    await conn.send(writer, send)
                if rule.close:
                    return
                if end == 0:
                    break  # an empty match answers once per arrival, never in a loop
            if not answered:
                if self._spec.default == "close":
                    return
                if self._spec.default == "echo":
                    await conn.send(writer, bytes(buffer))
                    buffer.clear()
            del buffer[:-BUFFER_LIMIT]

    def _matched(
        self, buffer: bytearray, conn: _Conn, *, allow_empty: bool
    ) -> tuple[_Rule, Match[bytes]] | None:
        """`_first_rule`; when an `expect` search runs out of time, the connection is closed
        (raising _GivenUp, logged): its input would stall every stub again on each read."""
        try:
            return self._first_rule(buffer, allow_empty=allow_empty)
        except PatternTimeout as exc:
            self.log(f"{conn.peer}: expect {exc}; the connection is closed")
            raise _GivenUp from None

    def _first_rule(
        self, buffer: bytearray, *, allow_empty: bool
    ) -> tuple[_Rule, Match[bytes]] | None:
        """The first rule, in profile order, whose `expect` is found in `buffer`, and its
        match. An empty match counts only when `allow_empty`."""
        for rule in self._rules:
            found = rule.expect.search(buffer)
            if found and (allow_empty or found.end() > found.start()):
                return rule, found
        return None

    def _rendered(self, rule: _Rule, found: Match[bytes], conn: _Conn) -> bytes | None:
        """What `rule` sends for this match; a template that fails sends nothing (logged)."""
        if rule.template is None:
            return rule.send
        try:
            text = rule.template.render({"match": _match_variables(found), "services": self._peers})
        except RenderError as exc:
            self.log(f"{conn.peer} {exc.where}: template failed: {exc.detail}")
            return None
        return to_bytes(text)


async def serve_tcp(spec: TcpService, sock: socket.socket, ctx: ServiceContext) -> TcpStub:
    """Serve `spec` on `sock` (bound, listening); the returned stub owns the socket.

    On failure the socket stays open and remains the caller's to close.
    """
    stub = TcpStub(spec, ctx)
    await stub.start(sock)
    ctx.log(f"{ctx.name}: tcp stub serving on {format_hostport(ctx.address, ctx.port)}")
    return stub
