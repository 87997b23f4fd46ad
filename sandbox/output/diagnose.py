"""Views of what the machine looks like: `plan`, `probe`, `ports` and `doctor`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.net.addresses import format_hostport
from sandbox.output.printer import Printer

if TYPE_CHECKING:
    from sandbox.doctor import Check
    from sandbox.net.listeners import Listener
    from sandbox.plan import Plan
    from sandbox.probe import ProbeResult


def plan(out: Printer, name: str, result: Plan) -> None:
    """Where each service goes, what moved, what conflicts."""
    out.line(f"{name}: {len(result.services)} services, pool {result.pool}")
    out.table(
        ["SERVICE", "KIND", "ADDRESS", "PORT", "URL"],
        [
            (s.name, s.kind, s.address, s.port or _unbound(s.spec), s.url if s.port else "-")
            for s in result.services
        ],
    )
    for move in result.moves:
        out.line(out.paint("moved: ", "yellow") + move.sentence())
    for conflict in result.conflicts:
        out.line(out.paint("conflict: ", "red") + conflict.sentence())
    if result.ok:
        out.ok("no conflicts: every address:port is free")


def probes(out: Printer, results: Sequence[ProbeResult]) -> None:
    """One row per probed endpoint: state, latency, HTTP status, and why."""
    out.table(
        ["TARGET", "ADDRESS", "STATE", "LATENCY", "HTTP", "DETAIL"],
        [
            (
                r.target,
                _hostport(r.address, r.port),
                out.paint(r.state.value, "green" if r.ok else "red"),
                f"{r.latency_ms:.2f} ms" if r.latency_ms is not None else None,
                r.http_status,
                r.detail,  # bounded where it is made: owners quoted once, capped
            )
            for r in results
        ],
    )


def listeners_json(rows: Sequence[Listener]) -> dict[str, object]:
    return {
        "listeners": [
            {
                "address": str(x.address),
                "port": x.port,
                "protocol": x.protocol,
                "pid": x.owner.pid if x.owner else None,
                "process": x.owner.name if x.owner else None,
                "cmdline": x.owner.cmdline if x.owner else None,
                "user": x.owner.user if x.owner else None,
            }
            for x in rows
        ]
    }


def listeners(out: Printer, rows: Sequence[Listener]) -> None:
    """`ports`: who listens where, like `ss -ltnp`."""
    out.table(
        ["PROTO", "LISTEN", "PID", "PROCESS", "USER", "COMMAND"],
        [
            (
                x.protocol,
                x.hostport,
                x.owner.pid if x.owner else None,
                x.owner.name if x.owner else "(not visible)",
                x.owner.user if x.owner else None,
                _short(x.owner.cmdline if x.owner else None),
            )
            for x in rows
        ],
    )


_MARKS = {"ok": ("ok", "green"), "warning": ("warning", "yellow"), "problem": ("problem", "red")}


def checks(out: Printer, found: Sequence[Check]) -> None:
    """`doctor`: a verdict per check, and its fix."""
    for check in found:
        label, colour = _MARKS[check.status]
        out.line(f"{out.paint(f'{label:<8}', colour)} {check.title}: {check.summary}")
        if check.fix:
            out.line(f"{'':<8} fix: {check.fix}")


def _hostport(address: str | None, port: int | None) -> str:
    if address is None or port is None:
        return "-"
    return format_hostport(address, port)


def _short(text: str | None, width: int = 60) -> str | None:
    if text is None or len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _unbound(spec: Any) -> str:
    """A plan's port 0: `auto` (the kernel picks it at bind time) or `none` (listens nowhere)."""
    return "none" if getattr(spec, "port", None) == "none" else "auto"
