"""Recorded sandboxes by name: start one detached, status of all, `down` many, read logs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError, UsageError
from sandbox.runtime.state import STUBS_LOG, StateDir, list_sandboxes
from sandbox.runtime.status import sandbox_status
from sandbox.runtime.teardown import DownReport, down

if TYPE_CHECKING:  # only annotations: `status` and `down` need not import pydantic
    from sandbox.plan import OnConflict
    from sandbox.profile.models import Profile


def up_detached(
    profile: Profile,
    *,
    name: str | None,
    state_root: Path,
    on_conflict: OnConflict,
    wait_timeout: float,
    request_log: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Start a supervisor in its own session; return the sandbox's status once it is ready
    (as the supervisor's readiness probes found it: nothing is probed twice), with
    `moves`: what --on-conflict moved. `on_progress` hears of each service ready."""
    from sandbox.runtime.launch import Launch, ready_status

    if profile.source is None:
        raise UsageError("a detached sandbox needs a profile file; this one was built in memory.")
    sandbox_name = name or profile.name
    started = Launch(
        profile,
        name=sandbox_name,
        state_root=state_root,
        on_conflict=on_conflict,
        wait_timeout=wait_timeout,
        request_log=request_log,
    )
    return ready_status(started.ready(on_progress))


async def statuses(state_root: Path, name: str | None) -> list[dict[str, Any]]:
    """Status JSON of every recorded sandbox (or one), each with a live probe of its services."""
    dirs = [StateDir(state_root, name)] if name else list_sandboxes(state_root)
    found = await asyncio.gather(*(sandbox_status(d) for d in dirs))
    return [s.to_json() for s in found if s is not None]


def sandbox_name(state_root: Path, ref: str) -> str:
    """The sandbox that `ref` names, as `up` would: a profile file's path (or a profile name)
    stands for the profile's `name:`; a recorded sandbox's name stands for itself.

    Raises ProfileNotFound / ProfileError for a path that is not a loadable profile.
    """
    looks_like_path = "/" in ref or ref.endswith((".yaml", ".yml"))
    if not looks_like_path and StateDir(state_root, ref).read() is not None:
        return ref  # the common case needs no profile loader (pydantic, ~0.2 s to import)
    from sandbox.profile.loader import find_profile, load_profile

    if looks_like_path:
        return load_profile(ref).name
    try:
        return load_profile(find_profile(ref)).name
    except SandboxError:  # no such profile either: `down` says that `ref` is not running
        return ref


async def down_many(state_root: Path, name: str | None, *, grace: float) -> list[DownReport]:
    """`down` one sandbox, or every recorded one when `name` is None."""
    dirs = [StateDir(state_root, name)] if name else list_sandboxes(state_root)
    reports = await asyncio.gather(*(down(d, grace=grace) for d in dirs))
    return [r for r in reports if r.stopped or r.survivors or r.supervisor_was_alive]


def last_run_ended(state_root: Path, name: str) -> float | None:
    """When the kept last run of sandbox `name` ended, if it is not running and one was kept;
    None while it runs (or when nothing was kept)."""
    state = StateDir(state_root, name)
    if state.read() is not None:
        return None
    kept = state.last_run()
    return kept[1].stat().st_mtime if kept is not None else None


def read_logs(
    state_root: Path, name: str, service: str | None, *, tail: int, follow: bool
) -> Generator[tuple[str, str], None, None]:
    """Yield (service, line): the last `tail` lines of each log, then new lines if following."""
    state = StateDir(state_root, name)
    record = state.read()
    folder = state.logs_dir
    if record is None:
        kept = state.last_run()
        if kept is None:
            raise UsageError(
                f'sandbox "{name}" is not running, and no logs of an earlier run were kept.',
                "`sandbox status` lists the running sandboxes.",
            )
        record, folder = kept
        follow = False  # nothing writes to a finished run's logs
    names = [s.name for s in record.services]
    if service is not None and service not in names:
        raise UsageError(
            f'sandbox "{name}" has no service "{service}" (services: {", ".join(names)}).'
        )
    chosen = [service] if service else names
    # A record names each service's log in the live folder; a kept run's are in `folder`.
    paths = {
        s.name: folder / (Path(s.log).name if s.log else state.log_path(s.name).name)
        for s in record.services
    }
    files: dict[Path, _LogFile] = {}
    for svc in chosen:
        path = paths[svc]
        if path not in files and path.exists():
            files[path] = _LogFile(path, shared=path.name == STUBS_LOG)
    try:
        # The last `tail` lines of each service, service after service.
        for svc in chosen:
            log = files.get(paths[svc])
            if log is not None:
                lines = log.backlog(svc, whole=not follow)
                for line in lines[-tail:] if tail > 0 else []:
                    yield svc, line
        wanted = set(chosen)
        while follow and files:
            quiet = True
            for log in files.values():
                for svc, line in log.new_lines():
                    if svc in wanted:
                        quiet = False
                        yield svc, line
            if quiet:
                if state.read() is None:
                    return
                time.sleep(0.2)  # polling a file for new lines; not a readiness signal
    finally:
        for log in files.values():
            log.close()


class _LogFile:
    """One open log: a service's own, or the stubs' shared one whose lines carry the name
    after the time stamp (`12:00:01 api GET / 200 0.3ms`), which `sandbox logs` removes.

    Followed across rotation: when the writer renames a full file to NAME.1 and starts a new
    one, the rest of the old file is read, then the new one from its start. A line still
    being written is held back until its end arrives.
    """

    def __init__(self, path: Path, *, shared: bool) -> None:
        self.path = path
        self.shared = shared
        self.service = "" if shared else path.stem
        self.handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        self._read: dict[str, list[str]] | None = None
        self._last = ""  # the service of the previous line of a shared file
        self._partial = ""  # the start of a line whose end is not written yet

    def _split(self, line: str) -> tuple[str, str]:
        if not self.shared:
            return self.service, line
        stamp, _, rest = line.partition(" ")
        name, _, text = rest.partition(" ")
        if name and name[0].isalpha():
            self._last = name
            return name, f"{stamp} {text}"
        return self._last, line  # a continuation of the line before (a line break in it)

    def _whole_lines(self, text: str) -> list[str]:
        text, self._partial = self._partial + text, ""
        lines = text.split("\n")
        self._partial = lines.pop()  # "" when the text ends with a line break
        return lines

    def backlog(self, service: str, *, whole: bool = False) -> list[str]:
        """Every line of `service` so far (the file is read once for all its services).
        `whole`: the file is read once and for all, so a last line without its line break
        is a line too (a crash may have cut it)."""
        if self._read is None:
            self._read = {}
            lines = self._whole_lines(self.handle.read())
            if whole and self._partial:
                lines.append(self._partial)
                self._partial = ""
            for line in lines:
                svc, text = self._split(line)
                self._read.setdefault(svc, []).append(text)
        return self._read.get(service if self.shared else self.service, [])

    def new_lines(self) -> list[tuple[str, str]]:
        text = self.handle.read()
        if self._rotated():
            # The writer closes the old file before renaming it: what it wrote last is read
            # now, then the new file from its start.
            text += self.handle.read()
            self.handle.close()
            self.handle = open(self.path, encoding="utf-8", errors="replace")  # noqa: SIM115
            text += self.handle.read()
        return [self._split(line) for line in self._whole_lines(text)]

    def _rotated(self) -> bool:
        """Whether the log's path now names another file than the one being read."""
        try:
            return os.stat(self.path).st_ino != os.fstat(self.handle.fileno()).st_ino
        except FileNotFoundError:  # between the rename and the new file: not yet
            return False

    def close(self) -> None:
        self.handle.close()
