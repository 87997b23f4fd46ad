"""What `up` started, on disk: the state directory, atomic JSON records and the per-sandbox lock."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Literal, get_args

from sandbox.errors import ConflictError, StateError, UsageError
from sandbox.proc.ref import ProcessRef as ProcessRef
from sandbox.runtime.private import (  # re-exported: records hold them
    check_private,
    open_private,
    private_dir,
)
from sandbox.runtime.private import state_root as state_root  # re-exported

Status = Literal["starting", "running", "stopping"]
STATE_FILE = "state.json"
_MAX_RECORD = 64 << 20  # a record of ten thousand services is a few MiB
LOCK_FILE = "lock"
LAST_RUN = ".last-run"  # root/.last-run/NAME: the logs of a sandbox's last run, and its record
DATA = ".data"  # root/.data/NAME/SERVICE: each service's {data} folder, kept across runs
_BAD_HINT = (
    "The file is damaged or was written by another version of sandbox: read it, stop the "
    "processes it lists by hand (`sandbox ports` shows listeners), then delete its folder."
)


def _check_name(name: str, what: str = "sandbox") -> str:
    # Names become folder and file names: no separators, no hidden or relative names.
    if not name or name.startswith(".") or "/" in name or "\0" in name or len(name) > 200:
        raise UsageError(
            f"{name!r} is not a valid {what} name.",
            hint="Use letters, digits, '-', '_' and '.', not starting with '.'.",
        )
    return name


# -- records ------------------------------------------------------------------------------

_NONE = type(None)


def _decode(cls: type[Any], data: object, source: str) -> dict[str, Any]:
    """`data`'s fields for `cls`, checked against `cls._KINDS` (an int passes as a float).

    Unknown keys and missing keys without a default raise StateError naming `source`.
    """
    what = cls.__name__
    if not isinstance(data, dict):
        raise _invalid(source, f"a {what} is {type(data).__name__}, not an object")
    kinds: dict[str, tuple[type, ...]] = cls._KINDS
    unknown = sorted(str(k) for k in set(data) - set(kinds))
    if unknown:
        raise _invalid(source, f"unknown key(s) in {what}: {', '.join(unknown)}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in data and f.default is dataclasses.MISSING
    ]
    if missing:
        raise _invalid(source, f"missing key(s) in {what}: {', '.join(missing)}")
    out = {}
    for key, value in data.items():
        allowed = kinds[key]
        if isinstance(value, int) and not isinstance(value, bool) and float in allowed:
            value = float(value)
        elif isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
            names = " or ".join("null" if k is _NONE else k.__name__ for k in allowed)
            raise _invalid(source, f"{what}.{key} is {json.dumps(value)}, expected {names}")
        out[key] = value
    return out


def _invalid(source: str, detail: str) -> StateError:
    return StateError(f"{source} is not a valid sandbox record: {detail}.", hint=_BAD_HINT)


_INT, _FLOAT, _STR = (int,), (float,), (str,)


@dataclass(frozen=True)
class ServiceRecord:
    """One started service: where it listens, its log, and its process (for `command`s)."""

    _KINDS: ClassVar = {
        **dict.fromkeys(["name", "kind", "address", "url", "log", "state"], _STR),
        "port": _INT, "restarts": _INT, "max_restarts": _INT,
        "pid": (int, _NONE), "pgid": (int, _NONE), "start_time": (float, _NONE),
        "exit_code": (int, _NONE), "job": (bool,),
    }  # fmt: skip
    name: str
    kind: str
    address: str
    port: int
    url: str
    log: str
    pid: int | None = None
    pgid: int | None = None
    start_time: float | None = None
    restarts: int = 0
    # The service's life, kept current by the supervisor: starting, ready, exited,
    # restarting, gave up, completed (a job that exited 0). `exit_code` is the last exit
    # of a program (negative: the signal that killed it).
    state: str = "starting"
    exit_code: int | None = None
    max_restarts: int = 0
    job: bool = False

    @property
    def process(self) -> ProcessRef | None:
        """The recorded process, if both its pid and start time are known."""
        if self.pid is None or self.start_time is None:
            return None
        return ProcessRef(self.pid, self.start_time)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; `from_json` reads it back."""
        # Every field is a plain value: no deep copy (asdict's cost times 3000 services).
        return {name: getattr(self, name) for name in self._KINDS}

    @classmethod
    def from_json(cls, data: object, source: str = "<record>") -> ServiceRecord:
        """Raises StateError naming `source` on unknown, missing or mistyped keys."""
        return cls(**_decode(cls, data, source))


@dataclass(frozen=True)
class SandboxRecord:
    """Everything `down` needs, from any directory, without the profile."""

    _KINDS: ClassVar = {
        "name": _STR, "profile": _STR, "profile_path": (str, _NONE),
        "supervisor": (dict, _NONE), "started_at": _FLOAT, "status": _STR,
        "services": (list,), "foreground": (bool,), "control": (str, _NONE),
    }  # fmt: skip
    name: str
    profile: str
    profile_path: str | None
    supervisor: ProcessRef | None
    started_at: float
    status: Status
    services: tuple[ServiceRecord, ...]
    foreground: bool = False
    control: str | None = None  # the control API's URL (http://127.0.0.1:PORT)

    def replace(self, **changes: Any) -> SandboxRecord:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)

    def with_service(self, rec: ServiceRecord) -> SandboxRecord:
        """A copy where the service named `rec.name` is replaced by `rec` (or added last)."""
        others = [s if s.name != rec.name else rec for s in self.services]
        if rec not in others:
            others.append(rec)
        return self.replace(services=tuple(others))

    def service(self, name: str) -> ServiceRecord | None:
        """The service record named `name`, if any."""
        return next((s for s in self.services if s.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (services as a list); `from_json` reads it back."""
        data = {name: getattr(self, name) for name in self._KINDS}
        data["supervisor"] = self.supervisor.to_json() if self.supervisor else None
        data["services"] = [s.to_json() for s in self.services]
        return data

    @classmethod
    def from_json(cls, data: object, source: str = "<record>") -> SandboxRecord:
        """Raises StateError naming `source` on unknown, missing or mistyped keys."""
        fields = _decode(cls, data, source)
        if fields["status"] not in get_args(Status):
            raise _invalid(source, f"SandboxRecord.status is {json.dumps(fields['status'])}")
        if fields["supervisor"] is not None:
            fields["supervisor"] = ProcessRef(**_decode(ProcessRef, fields["supervisor"], source))
        fields["services"] = tuple(ServiceRecord.from_json(s, source) for s in fields["services"])
        return cls(**fields)


# -- the folder of one sandbox -------------------------------------------------------------


def _write_all(text: str, stream: IO[str]) -> None:
    stream.write(text)


STUBS_LOG = "_stubs.log"


class StateDir:
    """`root/NAME/`: `state.json` (the record), `lock`, `logs/SERVICE.log` for programs and
    `logs/_stubs.log` shared by the in-process stubs."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = Path(root)
        self.name = _check_name(name)
        self.path = self.root / name
        self.state_file = self.path / STATE_FILE
        self.lock_file = self.path / LOCK_FILE
        self.logs_dir = self.path / "logs"

    def __repr__(self) -> str:
        return f"StateDir({str(self.root)!r}, {self.name!r})"

    def log_path(self, service: str) -> Path:
        """Where `service` logs (the folder exists once a record has been written)."""
        return self.logs_dir / f"{_check_name(service, 'service')}.log"

    @property
    def stubs_log(self) -> Path:
        """The one log every in-process stub writes to, each line tagged with its name (a
        name no service can have: they start with a letter)."""
        return self.logs_dir / STUBS_LOG

    @property
    def last_run_dir(self) -> Path:
        """Where the logs of the last run go when the sandbox is removed (`root/.last-run/NAME`)."""
        return self.root / LAST_RUN / self.name

    def data_dir(self, service: str) -> Path:
        """`service`'s {data} folder, kept across runs (`root/.data/NAME/SERVICE`), created 0700."""
        path = self.root / DATA / self.name / _check_name(service, "service")
        private_dir(path)
        check_private(path)
        return path

    def tmp_dir(self, service: str) -> Path:
        """`service`'s {tmp} folder, inside the sandbox's folder: removed with it, created 0700."""
        path = self.path / "tmp" / _check_name(service, "service")
        private_dir(path)
        check_private(path)
        return path

    def last_run(self) -> tuple[SandboxRecord, Path] | None:
        """The record and logs folder of the last run, if one was kept. Raises StateError if
        its record is unusable."""
        folder = self.last_run_dir
        if not os.path.lexists(folder / STATE_FILE):
            return None
        check_private(folder)
        source = str(folder / STATE_FILE)
        fd = open_private(folder / STATE_FILE, os.O_RDONLY)
        with os.fdopen(fd, "rb") as stream:
            raw = stream.read(_MAX_RECORD + 1)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid(source, f"it cannot be read ({exc})") from exc
        return SandboxRecord.from_json(data, source), folder

    def _keep_last_run(self) -> None:
        """Move `logs/` (with the record) to `last_run_dir`, replacing the run before: logs
        outlive `down` and a failed `up`, and only one run's worth is ever kept."""
        if not self.logs_dir.is_dir() or self.logs_dir.is_symlink():
            return
        dest = self.last_run_dir
        private_dir(dest.parent)
        check_private(dest.parent)
        if os.path.lexists(dest):
            if dest.is_symlink() or not dest.is_dir():
                os.unlink(dest)
            else:
                shutil.rmtree(dest)
        if self.state_file.is_file() and not self.state_file.is_symlink():
            os.replace(self.state_file, self.logs_dir / STATE_FILE)
        os.rename(self.logs_dir, dest)

    def write(
        self, record: SandboxRecord, *, _dump: Callable[[str, IO[str]], None] = _write_all
    ) -> None:
        """Replace state.json atomically (temp file, fsync, rename, fsync the folder).

        A crash at any point leaves either the previous record or the new one, never a
        partial file. Creates the folder and `logs/` (0700). Raises StateError if the disk
        refuses; `_dump` is a test seam that writes the text into the temp file.
        """
        if record.name != self.name:
            raise ValueError(f"record {record.name!r} does not belong in {self.path}")
        # Not indented: only json's C encoder is fast, and it does not indent (0.2 s for
        # a record of 3000 services otherwise, written twice on the way up).
        text = json.dumps(record.to_json(), allow_nan=False) + "\n"
        private_dir(self.logs_dir)
        check_private(self.path)
        check_private(self.logs_dir)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=self.path)
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                _dump(text, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, self.state_file)
            tmp = None
            _fsync_dir(self.path)
        except OSError as exc:
            raise StateError(
                f"Could not write {self.state_file} ({exc.strerror}).",
                hint="Check free space and permissions, or set SANDBOX_STATE_DIR elsewhere.",
            ) from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    def read(self) -> SandboxRecord | None:
        """The record, or None if there is none. Raises StateError (naming the file) if unusable."""
        source = str(self.state_file)
        if not os.path.lexists(self.path):
            return None
        check_private(self.path)
        try:
            fd = open_private(self.state_file, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            with os.fdopen(fd, "rb") as stream:
                raw = stream.read(_MAX_RECORD + 1)
            if len(raw) > _MAX_RECORD:
                raise _invalid(source, f"it is larger than {_MAX_RECORD} bytes")
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _invalid(source, f"it cannot be read ({exc})") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _invalid(source, f"invalid JSON at line {exc.lineno} column {exc.colno}") from exc
        record = SandboxRecord.from_json(data, source)
        if record.name != self.name:
            raise _invalid(source, f"it names sandbox {record.name!r}, not {self.name!r}")
        return record

    def remove(self) -> None:
        """Delete the folder with its logs. Nothing happens if it is already gone.

        Refuses (StateError) a folder that is a symlink or not directly under the root, so a
        bad name or a planted link never deletes anything else. Call it while holding the lock.
        """
        if not os.path.lexists(self.path):
            return
        if self.path.is_symlink() or self.path.resolve().parent != self.root.resolve():
            raise StateError(
                f"Refusing to delete {self.path}: it is not a folder inside {self.root}.",
                hint="Remove it by hand if it really is a sandbox's state.",
            )
        try:
            self._keep_last_run()
            shutil.rmtree(self.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StateError(
                f"Could not delete {self.path} ({exc.strerror}).",
                hint="Check its permissions, then delete it by hand.",
            ) from exc

    def lock(self) -> SandboxLock:
        """The (not yet acquired) lock of this sandbox."""
        return SandboxLock(self.root, self.name)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_sandboxes(root: Path) -> list[StateDir]:
    """Every sandbox folder under `root` that holds a state.json, sorted by name."""
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        if (entry / STATE_FILE).is_file():
            found.append(StateDir(root, entry.name))
    return sorted(found, key=lambda s: s.name)


# -- the lock --------------------------------------------------------------------------------


class SandboxLock:
    """An exclusive flock on `root/NAME/lock`, holding the holder's pid.

    The kernel drops an flock when its holder dies, even by SIGKILL, so a record whose lock
    is free is stale. The descriptor is close-on-exec: programs we start never inherit it
    (but a plain `os.fork()` child shares it until it closes it).
    """

    def __init__(self, root: Path, name: str) -> None:
        self.name = _check_name(name)
        self.path = Path(root) / name / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, *, wait: float = 0.25) -> SandboxLock:
        """Take the lock, retrying for up to `wait` seconds, and write our pid into it.

        The short wait absorbs `is_locked` probes, which hold the lock for an instant.
        Raises ConflictError if another process holds it, StateError if the folder cannot
        be created or opened. Creates `root/NAME/` (0700) and the lock file.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this SandboxLock")
        deadline = time.monotonic() + wait
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise self._conflict() from None
                time.sleep(0.01)
                continue
            except BaseException:
                os.close(fd)
                raise
            # A `down` may have deleted the folder between our open and our flock: then we
            # locked an orphaned inode that nobody else will ever look at; start over.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (nothing happens if it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    def __enter__(self) -> SandboxLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _open(self) -> int:
        try:
            private_dir(self.path.parent)
            check_private(self.path.parent)
            return open_private(self.path, os.O_RDWR | os.O_CREAT)
        except StateError:
            raise
        except OSError as exc:
            raise StateError(
                f"Could not open the lock {self.path} ({exc.strerror}).",
                hint="Check the permissions of the state directory (SANDBOX_STATE_DIR).",
            ) from exc

    def _conflict(self) -> ConflictError:
        holder = _read_pid(self.path)
        who = f"supervisor pid {holder}" if holder else f"its supervisor holds {self.path}"
        return ConflictError(
            f'sandbox "{self.name}" is already running ({who}).',
            hint=f"See it with `sandbox status {self.name}`, "
            f"or stop it with `sandbox down {self.name}`.",
        )


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_pid(path: Path) -> int | None:
    try:
        fd = open_private(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as stream:
            text = stream.read(64).decode("ascii").strip()
    except (OSError, UnicodeDecodeError, StateError):
        return None
    return int(text) if text.isdigit() else None


def is_locked(root: Path, name: str) -> bool:
    """Whether a live process holds the lock of sandbox `name`. Creates nothing.

    Probes with a shared lock taken and dropped at once, so probes never block each other.
    """
    try:
        fd = open_private(Path(root) / _check_name(name) / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
