"""What happened to one HTTP request, gathered while it is answered, as its journal entry."""

from __future__ import annotations

import time

from aiohttp import web

from sandbox.net.addresses import format_hostport
from sandbox.services.journal import Entry, Journal, Miss


class Outcome:
    """One request on its way through the dispatcher; `entry()` is what the journal keeps."""

    def __init__(self, request: web.Request, journal: Journal) -> None:
        self.request = request
        self.journal = journal
        self.wall, self.started = time.time(), time.monotonic()
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        self.client = format_hostport(*peername[:2]) if peername else ""
        self.body = b""
        self.body_size = 0
        self.route: int | None = None
        self.route_name: str | None = None
        self.miss: Miss | None = None
        self.status: int | None = None
        self.fault: str | None = None
        self.sent_size = 0
        self.finished = False

    def received(self, body: bytes) -> None:
        self.body, self.body_size = self.journal.cap(body), len(body)

    def answered_by(self, index: int, name: str) -> None:
        self.route, self.route_name = index, name

    def ended(self, response: web.StreamResponse, fault: str | None) -> None:
        self.finished = True
        self.fault = fault
        if fault is None:  # after a fault the response is a placeholder nobody receives
            self.status = response.status
            body = response.body if isinstance(response, web.Response) else None
            self.sent_size = len(body) if isinstance(body, bytes) else 0

    def entry(self) -> Entry:
        request = self.request
        return Entry(
            time=self.wall,
            client=self.client,
            method=request.method,
            path=request.path,
            seq=self.journal.next_seq(),
            service=self.journal.service,
            query=tuple(request.query.items()),
            headers=tuple(request.headers.items()),
            body=self.body,
            body_size=self.body_size,
            status=self.status,
            latency_ms=(time.monotonic() - self.started) * 1000,
            route=self.route,
            route_name=self.route_name,
            miss=self.miss,
            fault=self.fault,
            sent_size=self.sent_size,
            cancelled=not self.finished,
        )

    def log_line(self, entry: Entry) -> str:
        """The line the service log gets for this request."""
        shown = "-" if entry.status is None else str(entry.status)
        extra = f" fault={entry.fault}" if entry.fault else ""
        if entry.cancelled:
            extra += " (cancelled: the client left or the server is closing)"
        return f"{entry.method} {self.request.path_qs} {shown} {entry.latency_ms:.1f}ms{extra}"
