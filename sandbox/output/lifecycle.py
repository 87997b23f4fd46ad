"""Views of running sandboxes: the services table, `status`, `down` reports, `up` progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sandbox.output.printer import Printer

if TYPE_CHECKING:  # annotations only: `status` and `down` need not import the runtime early
    from sandbox.runtime.events import Event
    from sandbox.runtime.reload import ReloadReport
    from sandbox.runtime.teardown import DownReport


_UNDER_WAY = frozenset({"starting", "restarting"})


def _state_colour(service: dict[str, Any]) -> str:
    if service.get("ok", service["reachable"]):
        return "green"
    return "yellow" if service["state"] in _UNDER_WAY else "red"


def services_table(out: Printer, services: Sequence[dict[str, Any]]) -> None:
    """The table `up`, `status` and `up -d` print: where each service is and its life
    (ready, exited (code 3), restarting (1 of 3), completed, ...)."""
    out.table(
        ["SERVICE", "KIND", "URL", "STATE", "LATENCY"],
        [
            (
                s["name"],
                s["kind"],
                s["url"] or "-",
                out.paint(s.get("detail") or s["state"], _state_colour(s)),
                f"{s['latency_ms']:.2f} ms" if s["latency_ms"] is not None else None,
            )
            for s in services
        ],
    )


def restarted(out: Printer, name: str, services: Sequence[dict[str, Any]]) -> None:
    """`restart`: each service ready again, or why not."""
    for service in services:
        if service["ok"]:
            out.ok(f"{name}: {service['name']} restarted and ready ({service['detail']})")
        else:
            out.warn(f"{name}: {service['name']} restarted but not ready: {service['detail']}")


def last_run_note(out: Printer, name: str, ended: float) -> None:
    """`logs` of a sandbox that is not running: say so before the kept lines."""
    import time

    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended))
    out.note(f'sandbox "{name}" is not running; these are the logs of its last run (ended {when})')


def detached(out: Printer, status: dict[str, Any]) -> None:
    """`up -d`: where everything is, and how to stop it."""
    services_table(out, status["services"])
    out.note(f"running in the background; stop it with `sandbox down {status['name']}`")


def event(out: Printer, item: Event, *, width: int, started: bool, json_: bool) -> None:
    """One event of a foreground `up`: a service's log line, ready, or not ready."""
    from sandbox.runtime.events import LogLine, ServiceNotReady, ServiceReady

    if isinstance(item, LogLine) and started:
        out.service_line(item.service, item.text, width)
    elif isinstance(item, ServiceReady) and not json_:
        out.note(f"ready: {item.service} at {item.url} ({item.seconds * 1000:.0f} ms)")
    elif isinstance(item, ServiceNotReady):
        out.warn(f"{item.service}: {item.result.detail}")


def all_ready(out: Printer, name: str, count: int, seconds: float, status: dict[str, Any]) -> None:
    """A foreground `up` once every service answers."""
    out.note(f"{name}: all {count} services ready in {seconds:.2f}s; Ctrl-C stops them")
    services_table(out, status["services"])


def statuses(out: Printer, found: Sequence[dict[str, Any]], name: str | None) -> None:
    """`status`: each sandbox with its supervisor and a live probe of every service."""
    if not found:
        out.line(f'sandbox "{name}" is not running.' if name else "No sandbox is running.")
        return
    for sandbox in found:
        state = sandbox["state"]
        colour = "green" if state == "running" else "red"
        out.line(
            f"{out.paint(sandbox['name'], 'bold')} ({out.paint(state, colour)}, "
            f"supervisor pid {sandbox['supervisor_pid']}, up {sandbox['uptime_s']:.0f}s)"
        )
        services_table(out, sandbox["services"])
        if sandbox.get("control") and state != "stale":
            out.line(out.paint(f"control API {sandbox['control']}", "dim"))
        if state == "running" and not sandbox.get("ok", True):
            out.warn(
                f"{sandbox['name']}: not every service is ready; `sandbox logs "
                f"{sandbox['name']} SERVICE` shows why"
            )
        if state == "stale":
            out.warn(f"its supervisor is gone; `sandbox down {sandbox['name']}` cleans up")


def down_reports(out: Printer, reports: Sequence[DownReport], name: str | None) -> None:
    """`down`: stopped and verified, or what survived."""
    if not reports:
        out.line(f'sandbox "{name}" is not running.' if name else "No sandbox is running.")
    for report in reports:
        if report.clean:
            out.ok(
                f"{report.name}: stopped {len(report.stopped)} services; every port refuses "
                f"connections ({report.seconds:.2f}s)"
            )
        else:
            for survivor in report.survivors:
                out.warn(f"{report.name}: {survivor}")


def reloaded(out: Printer, name: str, report: ReloadReport, *, json_: bool) -> None:
    """`reload`: which services took the edit, and which were unchanged."""
    if json_:
        out.json({"sandbox": name, "reloaded": report.reloaded, "unchanged": report.unchanged})
        return
    done = ", ".join(report.reloaded) or "nothing changed"
    rest = f"; unchanged: {', '.join(report.unchanged)}" if report.unchanged else ""
    out.ok(f"{name}: reloaded: {done}{rest}")
