"""`sandbox ping` for people: lines as the system ping prints them, then what a reply means."""

from __future__ import annotations

from sandbox.output.printer import Printer
from sandbox.teach.ping import PAYLOAD_BYTES, PingReply, PingReport


def _header(report: PingReport, out: Printer) -> None:
    name = report.host if report.host == report.address else f"{report.host} ({report.address})"
    how = "an unprivileged ICMP socket" if report.method == "dgram" else "a raw socket"
    out.line(f"PING {name}: {PAYLOAD_BYTES} data bytes, ICMP echo over {how}")


def _reply_line(address: str, reply: PingReply, out: Printer) -> None:
    if reply.rtt_ms is None:
        out.line(out.paint(f"no reply from {address}: icmp_seq={reply.seq}", "red"))
    else:
        size = PAYLOAD_BYTES + 8
        out.line(f"{size} bytes from {address}: icmp_seq={reply.seq} time={reply.rtt_ms:.3f} ms")


def render_progress(partial: PingReport, out: Printer) -> None:
    """For `on_reply`: the header with the first reply, then one line per reply as it comes."""
    if len(partial.replies) == 1:
        _header(partial, out)
    if partial.replies:
        _reply_line(partial.address, partial.replies[-1], out)


def render(report: PingReport, out: Printer, *, streamed: bool = False) -> None:
    """The header and one line per reply (unless render_progress printed them), then the
    statistics as the system ping prints them, and what a loopback ping does and does not say."""
    if not streamed:
        _header(report, out)
        for reply in report.replies:
            _reply_line(report.address, reply, out)
    out.line(f"--- {report.address} ping statistics ---")
    out.line(f"{report.sent} sent, {report.received} received, {report.loss:.0f}% loss")
    if report.min_ms is not None and report.avg_ms is not None and report.max_ms is not None:
        times = f"{report.min_ms:.3f}/{report.avg_ms:.3f}/{report.max_ms:.3f}"
        out.line(f"round-trip min/avg/max = {times} ms")
    out.note(
        "The kernel answered on its own: a loopback packet never leaves this machine. A reply "
        "says the address is up, not that a port listens (every 127.x answers ping); "
        "`sandbox probe ADDRESS:PORT` checks a port."
    )
