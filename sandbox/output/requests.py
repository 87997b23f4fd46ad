"""Views of stub journals (`sandbox requests`): a table, streamed rows, or JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from sandbox.output.printer import Printer
from sandbox.services.journal import Entry

HEADERS = ("#", "TIME", "SERVICE", "CLIENT", "REQUEST", "STATUS", "ROUTE", "MS")
# Streamed rows cannot be measured in advance: these widths fit common values.
STREAM_WIDTHS = (5, 12, 10, 21, 32, 6, 0, 0)


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def _request(entry: Entry) -> str:
    if entry.method == "TCP":
        return f"TCP {entry.body_size}B in, {entry.sent_size}B out"
    query = "&".join(f"{k}={v}" for k, v in entry.query)
    return f"{entry.method} {entry.path}" + (f"?{query}" if query else "")


def _answer(entry: Entry) -> str:
    if entry.fault:
        return entry.fault
    if entry.cancelled:
        return "gone"
    return "-" if entry.status is None else str(entry.status)


def _route(entry: Entry) -> str:
    if entry.method == "TCP":
        return ", ".join(f"[{r}]" for r in entry.rules) or "no rule"
    if entry.route is not None:
        return f"[{entry.route}] {entry.route_name}"
    if entry.miss is not None:
        return f"none; nearest [{entry.miss.route}] {entry.miss.name}: {entry.miss.why}"
    return "none"


def entry_row(entry: Entry) -> tuple[str, ...]:
    """One entry as the cells of HEADERS."""
    return (
        str(entry.seq),
        _clock(entry.time),
        entry.service,
        entry.client,
        _request(entry),
        _answer(entry),
        _route(entry),
        f"{entry.latency_ms:.1f}",
    )


def _paint_status(out: Printer, text: str) -> str:
    word = text.strip()
    if word.isdigit():
        code = int(word)
        return out.paint(text, "green" if code < 400 else "yellow" if code < 500 else "red")
    return text if word == "-" else out.paint(text, "red")


def requests_table(out: Printer, entries: Sequence[Entry]) -> None:
    """The journal as a table, or a sentence when it is empty."""
    if not entries:
        out.note("No requests received (since the start or the last reset).")
        return
    out.table(HEADERS, [entry_row(e) for e in entries])


def stream_header(out: Printer) -> None:
    out.line(out.paint(_fixed(HEADERS), "bold"))


def stream_row(out: Printer, entry: Entry) -> None:
    """One entry as a row of fixed widths, printed as soon as it arrives."""
    out.line(_fixed(entry_row(entry), out))


def _fixed(cells: Sequence[str], out: Printer | None = None) -> str:
    padded = [c.ljust(w) for c, w in zip(cells, STREAM_WIDTHS, strict=True)]
    if out is not None:  # colour after padding, so escape codes do not count as width
        padded[5] = _paint_status(out, padded[5])
    return "  ".join(padded).rstrip()


def requests_json(out: Printer, entries: Sequence[Entry]) -> None:
    out.json({"entries": [e.to_json() for e in entries]})


def request_json_line(out: Printer, entry: Entry) -> None:
    """One entry as one line of JSON (JSON Lines), for following from a script."""
    out.line(json.dumps(entry.to_json(), ensure_ascii=False))
