"""What happened to one HTTP request, gathered while it is answered, as its journal entry."""

from __future__ import annotations

import time

from aiohttp import web

from sandbox.services.journal import Entry, Journal, Miss


class Outcome:
    """One request on its way through the dispatcher; `entry()` is what the journal keeps.

    Made for every request, so it holds only what cannot be read from the request later.
    """

    __slots__ = (
        "body",
        "fault",
        "finished",
        "miss",
        "peername",
        "request",
        "route",
        "route_name",
        "sent_size",
        "started",
        "status",
        "wall",
    )

    def __init__(self, request: web.BaseRequest) -> None:
        self.request = request
        self.wall, self.started = time.time(), time.monotonic()
        # Read now: once the client has left (a cancelled request) the transport is gone.
        transport = request.transport
        self.peername = transport.get_extra_info("peername") if transport is not None else None
        self.body = b""
        self.route: int | None = None
        self.route_name: str | None = None
        self.miss: Miss | None = None
        self.status: int | None = None
        self.fault: str | None = None
        self.sent_size = 0
        self.finished = False

    def ended(self, response: web.StreamResponse, fault: str | None) -> None:
        self.finished = True
        self.fault = fault
        if fault is None:  # after a fault the response is a placeholder nobody receives
            self.status = response.status
            body = response.body if isinstance(response, web.Response) else None
            self.sent_size = len(body) if isinstance(body, bytes) else 0

    def entry(self, journal: Journal) -> Entry:
        request = self.request
        peername = self.peername
        if peername:
            host, port = peername[0], peername[1]
            client = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        else:
            client = ""
        body = self.body
        # Positional, in Entry's field order: one is made per request.
        return Entry._make(
            (
                self.wall,  # time
                client,
                request.method,
                request.path,
                journal.next_seq(),  # seq
                journal.service,
                tuple(request.query.items()) if request.query_string else (),
                tuple(request.headers.items()),
                body[: journal.body_max],
                len(body),  # body_size
                self.status,
                (time.monotonic() - self.started) * 1000,  # latency_ms
                self.route,
                self.route_name,
                self.miss,
                self.fault,
                b"",  # sent (TCP only)
                self.sent_size,
                (),  # rules (TCP only)
                not self.finished,  # cancelled
            )
        )

    def log_line(self, entry: Entry) -> str:
        """The line the service log gets for this request."""
        shown = "-" if entry.status is None else entry.status
        extra = f" fault={entry.fault}" if entry.fault else ""
        if entry.cancelled:
            extra += " (cancelled: the client left or the server is closing)"
        return f"{entry.method} {self.request.path_qs} {shown} {entry.latency_ms:.1f}ms{extra}"
