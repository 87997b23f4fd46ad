"""Reload: which stub services a profile edit changes, and the channel that asks for it.

A running sandbox with a state folder listens on a unix socket there (`reload.sock`; the
folder is 0700, so only its owner can connect). `sandbox reload` sends one JSON line,
`{"service": null}` or `{"service": "api"}`, and reads one JSON line back: the report, or
the error with its exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import (
    ReloadRefused,
    SandboxError,
    UsageError,
    error_from_json,
    error_to_json,
)
from sandbox.profile.models import Profile
from sandbox.services.context import StubServer

CHANNEL = "reload.sock"
REQUEST_LIMIT = 64 * 1024
_SUN_PATH_MAX = 107  # bytes of a unix socket path, NUL excluded (Linux)
# What a running stub can take without its socket changing hands. `ready` and `depends_on`
# only matter at `up`, so a change to them is accepted and has no effect until the next one.
_SWAPPABLE = {
    "http": {
        "routes", "max_body", "headers", "cors", "pass_env", "env",
        "description", "ready", "depends_on",
    },
    "tcp": {"tcp", "env", "description", "ready", "depends_on"},
}  # fmt: skip


@dataclass(frozen=True)
class ReloadReport:
    """What a reload did: stub services whose behaviour was swapped, and the others."""

    reloaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def changed_services(old: Profile, new: Profile, only: str | None = None) -> list[str]:
    """The stub services whose spec differs between `old` and `new` (just `only`, if given).

    Raises ReloadRefused naming every change that needs a restart: a service added or
    removed, another name or pool, and for a service: its kind, address, port or tls, or
    any change to a command service.
    """
    if only is not None and only not in old.services:
        known = ", ".join(old.services)
        raise UsageError(f"the sandbox has no service {only!r} (services: {known}).")
    problems: list[str] = []
    if only is None:
        added = sorted(set(new.services) - set(old.services))
        removed = sorted(set(old.services) - set(new.services))
        problems += [f"service {name!r} was added" for name in added]
        problems += [f"service {name!r} was removed" for name in removed]
        if new.pool != old.pool:
            problems.append(f"pool changed from {old.pool} to {new.pool}")
    elif only not in new.services:
        problems.append(f"service {only!r} was removed")
    changed: list[str] = []
    for name in [only] if only is not None else sorted(set(old.services) & set(new.services)):
        if name not in new.services:
            continue
        before, after = old.services[name], new.services[name]
        if before == after:
            continue
        if before.kind != after.kind:
            problems.append(f"{name}.kind changed from {before.kind} to {after.kind}")
            continue
        swappable = _SWAPPABLE.get(before.kind)
        if swappable is None:
            problems.append(
                f"{name} is a {before.kind} service: a program is restarted, not reloaded"
            )
            continue
        for key in sorted(type(before).model_fields):
            old_value, new_value = getattr(before, key), getattr(after, key)
            if key not in swappable and old_value != new_value:
                problems.append(f"{name}.{key} changed from {old_value!r} to {new_value!r}")
        changed.append(name)
    if problems:
        raise ReloadRefused(
            "The profile cannot be reloaded while the sandbox runs: "
            + "; ".join(problems)
            + ". Nothing was changed.",
            "These need the sockets bound again: `sandbox down` then `sandbox up`.",
        )
    return changed


def swap_stubs(
    old: Profile, new: Profile, stubs: Mapping[str, StubServer], only: str | None = None
) -> list[str]:
    """Give every changed stub (or `only`) its spec from `new`; return their names.

    All or nothing: every stub is built before any is swapped, and the swaps run with no
    await between them. Raises what `changed_services` raises, or StubConfigError.
    """
    changed = changed_services(old, new, only)
    commits = [stubs[name].prepare_reload(new.services[name]) for name in changed]
    for commit in commits:
        commit()
    return changed


# -- the channel ---------------------------------------------------------------------------

Handler = Callable[[str | None], Awaitable[ReloadReport]]


def channel_path(state_folder: Path) -> Path:
    return state_folder / CHANNEL


async def open_channel(state_folder: Path, handler: Handler) -> asyncio.Server | None:
    """Listen for reload requests in `state_folder`; None when its path is too long for a
    unix socket (then `sandbox reload` says so)."""
    path = channel_path(state_folder)
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        return None
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line[:REQUEST_LIMIT] or b"{}")
                service = request.get("service") if isinstance(request, dict) else None
                report = await handler(service if isinstance(service, str) else None)
                reply: dict[str, Any] = {"ok": True, **asdict(report)}
            except SandboxError as exc:
                reply = {"ok": False, "error": error_to_json(exc)}
            writer.write((json.dumps(reply) + "\n").encode())
            await writer.drain()
        except (OSError, ValueError):
            pass  # the client went away, or sent something that is not a request
        finally:
            writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    os.chmod(path, 0o600)
    return server


def request_reload(state_folder: Path, service: str | None, timeout: float = 30.0) -> ReloadReport:
    """Ask the sandbox whose state is in `state_folder` to reload (blocking).

    Raises what the reload raised (ProfileError, ReloadRefused, StubConfigError...) and
    SandboxError when the sandbox cannot be reached.
    """
    import socket

    path = channel_path(state_folder)
    if len(os.fsencode(path)) > _SUN_PATH_MAX:
        raise SandboxError(
            f"The sandbox cannot be reached for a reload: its state folder {state_folder} "
            f"is too long a path for a unix socket ({_SUN_PATH_MAX} bytes at most).",
            "Set SANDBOX_STATE_DIR to a shorter folder before `sandbox up`.",
        )
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps({"service": service}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise SandboxError(
            f"The sandbox does not answer reload requests ({exc.strerror}).",
            "Is it running? `sandbox status` shows it.",
        ) from None
    except TimeoutError:
        raise SandboxError(f"The sandbox did not answer the reload within {timeout:g}s.") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise SandboxError("The sandbox closed the reload request without answering.") from None
    if not reply.get("ok"):
        raise error_from_json(reply["error"])
    return ReloadReport(reloaded=reply["reloaded"], unchanged=reply["unchanged"])


def mtime_of(path: Path) -> int | None:
    """The file's modification time in ns, None when it is missing (an editor mid-save)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def changes(
    path: Path, *, interval: float = 0.5, sleep: Callable[[float], None] | None = None
) -> Iterator[None]:
    """Yield each time `path`'s modification time changes (polling every `interval`); runs
    until the caller stops iterating (Ctrl-C in `sandbox reload --watch`)."""
    import time

    pause = sleep or time.sleep
    last = mtime_of(path)
    while True:
        pause(interval)  # polling a file's mtime; not a readiness wait
        now = mtime_of(path)
        if now is not None and now != last:
            last = now
            yield


def running_profile(state_root: Path, name: str, service: str | None = None) -> Path:
    """The profile file of the running sandbox `name` (checking that it has `service`).

    Raises UsageError when it is not running, has no such service, or no profile file.
    """
    from sandbox.runtime.state import StateDir, is_locked

    record = StateDir(state_root, name).read()
    if record is None or not is_locked(state_root, name):
        raise UsageError(
            f'sandbox "{name}" is not running, so there is nothing to reload.',
            "`sandbox status` lists the running sandboxes.",
        )
    names = [s.name for s in record.services]
    if service is not None and service not in names:
        raise UsageError(
            f'sandbox "{name}" has no service "{service}" (services: {", ".join(names)}).'
        )
    if record.profile_path is None:
        raise UsageError(f'sandbox "{name}" was not started from a profile file.')
    return Path(record.profile_path)


def reload_running(state_root: Path, name: str, service: str | None) -> ReloadReport:
    """`sandbox reload NAME [SERVICE]`: ask the running sandbox `name` to reload.

    Raises UsageError when it is not running, and what `request_reload` raises.
    """
    from sandbox.runtime.state import StateDir

    running_profile(state_root, name, service)
    return request_reload(StateDir(state_root, name).path, service)
