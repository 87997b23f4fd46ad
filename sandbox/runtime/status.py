"""What runs, where, and is it answering: status of recorded sandboxes with a live probe."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.probe import ProbeResult, probe_all, probe_tcp
from sandbox.proc.processes import is_alive
from sandbox.runtime.state import SandboxRecord, ServiceRecord, StateDir, list_sandboxes


@dataclass(frozen=True)
class ServiceStatus:
    record: ServiceRecord
    probe: ProbeResult

    def to_json(self) -> dict[str, object]:
        rec = self.record
        return {
            "name": rec.name,
            "kind": rec.kind,
            "address": rec.address,
            "port": rec.port,
            "url": rec.url,
            "pid": rec.pid,
            "restarts": rec.restarts,
            "state": self.probe.state.value,
            "reachable": self.probe.ok,
            "latency_ms": self.probe.latency_ms,
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
    results = await probe_all(
        probe_tcp(s.address, s.port, timeout=timeout, target=s.name) for s in record.services
    )
    services = tuple(ServiceStatus(s, r) for s, r in zip(record.services, results, strict=True))
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
