"""What runs, where, and is it answering: status of recorded sandboxes with a live probe."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.probe import ProbeResult, probe_all, probe_tcp
from sandbox.proc.processes import is_alive
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir, list_sandboxes

# The states in which a service is what it should be; any other makes `status` exit 5.
GOOD_STATES = frozenset({"ready", "completed"})


def exit_text(code: int | None) -> str:
    """`code 3` or `signal 9, SIGKILL` for an exit status (negative: the signal)."""
    if code is None:
        return ""
    if code >= 0:
        return f"code {code}"
    try:
        return f"signal {-code}, {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


@dataclass(frozen=True)
class ServiceStatus:
    record: ServiceRecord
    probe: ProbeResult | None  # None for what has no port to probe (workers, jobs)
    supervised: bool = True  # the supervisor lives, so the recorded state is current

    @property
    def state(self) -> str:
        """The recorded life, checked against the live probe: a service recorded `ready`
        whose port refuses is `not answering`; `stale` once the supervisor is gone."""
        rec = self.record
        if not self.supervised:
            return "stale"
        if rec.state == "ready" and self.probe is not None and not self.probe.ok:
            return "not answering"
        return rec.state

    @property
    def detail(self) -> str:
        """The state in words: `exited (signal 9, SIGKILL)`, `restarting (1 of 3)`."""
        rec, state = self.record, self.state
        if state in ("exited", "gave up") and rec.exit_code is not None:
            return f"{state} ({exit_text(rec.exit_code)})"
        if state == "restarting" or (state == "starting" and rec.restarts):
            return f"{state} ({rec.restarts + (state == 'restarting')} of {rec.max_restarts})"
        return state

    @property
    def ok(self) -> bool:
        return self.state in GOOD_STATES

    def to_json(self) -> dict[str, object]:
        rec, probe = self.record, self.probe
        return {
            "name": rec.name,
            "kind": "job" if rec.job else rec.kind,
            "address": rec.address,
            "port": rec.port,
            "url": rec.url,
            "pid": rec.pid,
            "restarts": rec.restarts,
            "max_restarts": rec.max_restarts,
            "state": self.state,
            "detail": self.detail,
            "exit_code": rec.exit_code,
            "exit": exit_text(rec.exit_code) or None,
            "ok": self.ok,
            "probe": probe.state.value if probe is not None else None,
            "reachable": probe.ok if probe is not None else self.ok,
            "latency_ms": probe.latency_ms if probe is not None else None,
        }


@dataclass(frozen=True)
class SandboxStatus:
    record: SandboxRecord
    alive: bool  # the supervisor lives (pid and start time match the record)
    services: tuple[ServiceStatus, ...]

    @property
    def state(self) -> str:
        """`running`, `starting`/`stopping` in between, or `stale` when the supervisor died."""
        return self.record.status if self.alive else "stale"

    @property
    def ok(self) -> bool:
        """Every service is ready (or a job completed) and the supervisor lives."""
        return self.alive and all(s.ok for s in self.services)

    @property
    def uptime(self) -> float:
        return max(0.0, time.time() - self.record.started_at)

    def to_json(self) -> dict[str, object]:
        sup = self.record.supervisor
        return {
            "name": self.record.name,
            "profile": self.record.profile,
            "profile_path": self.record.profile_path,
            "state": self.state,
            "supervisor_pid": sup.pid if sup else None,
            "started_at": self.record.started_at,
            "uptime_s": round(self.uptime, 1),
            "ok": self.ok,
            "control": self.record.control,  # the control API's URL (journal, verify, reset)
            "services": [s.to_json() for s in self.services],
        }


async def sandbox_status(state: StateDir, *, timeout: float = 1.0) -> SandboxStatus | None:
    """Read the record and probe every service on its literal address; None if not recorded."""
    record = state.read()
    if record is None:
        return None
    return await status_of(record, timeout=timeout)


async def status_of(record: SandboxRecord, *, timeout: float = 1.0) -> SandboxStatus:
    alive = record.supervisor is not None and is_alive(record.supervisor)
    probed = [s for s in record.services if s.port and not s.job]
    results = await probe_all(
        probe_tcp(s.address, s.port, timeout=timeout, target=s.name) for s in probed
    )
    found = dict(zip((s.name for s in probed), results, strict=True))
    services = tuple(ServiceStatus(s, found.get(s.name), alive) for s in record.services)
    return SandboxStatus(record=record, alive=alive, services=services)


def recorded_pids(root: Path, *, programs: bool = False, skip: str | None = None) -> dict[int, str]:
    """Live pids of recorded sandboxes -> the sandbox's name, so a conflict can say "ours".

    Supervisors always; with `programs`, their command services too. A pid counts only while
    its start time matches the record (pids are reused). `skip` leaves one sandbox out.
    """
    found: dict[int, str] = {}
    for state in list_sandboxes(root):
        try:
            record = state.read()
        except SandboxError:
            continue
        if record is None or record.name == skip:
            continue
        refs = [record.supervisor]
        if programs:
            refs.extend(s.process for s in record.services)
        for ref in refs:
            if ref is not None and is_alive(ref):
                found[ref.pid] = record.name
    return found
