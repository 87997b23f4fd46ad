"""`sandbox hosts`: hosts-file lines naming each service, and a marked block written atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sandbox.errors import HostsFileError as HostsFileError  # old home, still importable
from sandbox.errors import ProfileNotFound, SandboxError, UsageError
from sandbox.net.addresses import parse_loopback
from sandbox.runtime.state import SandboxRecord

if TYPE_CHECKING:
    from sandbox.profile.models import Profile

DOMAIN = "test"  # RFC 6761: reserved for testing, so no real name ever ends in it
NSSWITCH = Path("/etc/nsswitch.conf")
Action = Literal["printed", "written", "unchanged", "removed", "absent"]
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


@dataclass(frozen=True)
class HostsEntry:
    """One hosts-file line: a service's name and its loopback address."""

    address: str
    name: str
    service: str
    port: int
    kind: str = "tcp"

    @property
    def line(self) -> str:
        return f"{self.address} {self.name}"

    @property
    def url(self) -> str | None:
        """How a client dials the service by name (the port still comes from the service)."""
        scheme = "http" if self.kind == "http" else "tcp"
        return f"{scheme}://{self.name}:{self.port}" if self.port else None

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "name": self.name,
            "service": self.service,
            "port": self.port,
            "url": self.url,
            "line": self.line,
        }


def hostname(service: str, sandbox: str) -> str:
    """`api.web-db-api.test`; `_` (allowed in service names, not in host names) becomes `-`."""
    return f"{service}.{sandbox}.{DOMAIN}".replace("_", "-")


def hosts_lines(source: Profile | SandboxRecord) -> list[HostsEntry]:
    """One entry per service: from a running sandbox's record, or from a profile's plan.

    Raises UsageError if two services would get the same name (`a_b` and `a-b`).
    """
    if isinstance(source, SandboxRecord):
        name = source.name
        found = [(s.name, s.address, s.port, s.kind) for s in source.services]
    else:
        from sandbox.plan import make_plan

        name = source.name
        order = list(source.services)  # as the profile lists them, not in start order
        planned = sorted(make_plan(source).services, key=lambda s: order.index(s.name))
        found = [(s.name, str(s.address), s.port, s.kind) for s in planned]
    entries = [
        HostsEntry(addr, hostname(svc, name), svc, port, kind) for svc, addr, port, kind in found
    ]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise UsageError(f"Two services of {name} get the same host name ({', '.join(names)}).")
    return entries


def block_lines(name: str, entries: Sequence[HostsEntry]) -> list[str]:
    """The marked block, markers included. Raises ValueError for a bad name or entry."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a sandbox name (a-z, 0-9, '-' and '_').")
    for entry in entries:
        parse_loopback(entry.address)  # only loopback ever goes into a hosts file
        if not _HOSTNAME.fullmatch(entry.name):
            raise ValueError(f"{entry.name!r} is not a valid host name.")
    begin, end = _markers(name)
    width = max((len(e.address) for e in entries), default=0)
    lines = [f"{e.address:<{width}} {e.name}" for e in entries]
    note = f"# written by `sandbox hosts {name} --write FILE`; `... --remove` takes it out"
    return [begin, note, *lines, end]


def _markers(name: str) -> tuple[str, str]:
    return f"# >>> sandbox {name} >>>", f"# <<< sandbox {name} <<<"


def write_block(path: Path, name: str, entries: Sequence[HostsEntry]) -> bool:
    """Put the block of sandbox `name` into the file at `path`, replacing the old one in place.

    Every other line stays byte for byte (a missing final newline is added before a block that
    follows it). The file is replaced atomically (temp file, fsync, rename) keeping its mode and
    owner, and created (0644) if missing. Returns False when the file already held exactly
    this. Raises HostsFileError if it cannot be read or written or a block is unclosed,
    ValueError for a bad name or entry.
    """
    target, data = _read(path)
    lines = [] if data is None else data.splitlines(keepends=True)
    spans = _spans(lines, name, target)
    newline = b"\r\n" if lines and lines[0].endswith(b"\r\n") else b"\n"
    block = [line.encode() + newline for line in block_lines(name, entries)]
    if spans:
        at, kept = spans[0][0], _without(lines, spans)
        new = kept[:at] + block + kept[at:]  # where the first block was
    else:
        if lines and not lines[-1].endswith((b"\n", b"\r")):
            lines[-1] += newline  # the block must start on a line of its own
        new = lines + block
    text = b"".join(new)
    if text == data:
        return False
    _replace(target, text, data is not None)
    return True


def remove_block(path: Path, name: str) -> bool:
    """Take the block of sandbox `name` out of the file at `path`; every other line stays.

    Returns False (and writes nothing) when there is no such block or no such file. Raises
    HostsFileError as write_block does.
    """
    target, data = _read(path)
    if data is None:
        return False
    lines = data.splitlines(keepends=True)
    spans = _spans(lines, name, target)
    if not spans:
        return False
    _replace(target, b"".join(_without(lines, spans)), True)
    return True


def _without(lines: list[bytes], spans: list[tuple[int, int]]) -> list[bytes]:
    return [line for k, line in enumerate(lines) if not any(a <= k <= b for a, b in spans)]


def _spans(lines: list[bytes], name: str, target: Path) -> list[tuple[int, int]]:
    """(first, last) line numbers of each block of `name`, markers included."""
    begin, end = (m.encode() for m in _markers(name))
    spans, k = [], 0
    while k < len(lines):
        if lines[k].rstrip() == begin:
            close = next((j for j in range(k + 1, len(lines)) if lines[j].rstrip() == end), None)
            if close is None:
                raise HostsFileError(
                    f"{target}:{k + 1} opens the block of sandbox {name}, but no line closes it.",
                    f"Add the line `{end.decode()}` where the block ends, or remove it by hand.",
                )
            spans.append((k, close))
            k = close
        k += 1
    return spans


_MAX_HOSTS = 16 << 20  # far beyond any real hosts file


def _read(path: Path) -> tuple[Path, bytes | None]:
    # Follow a symlink: replacing the link itself would cut it loose from its target.
    target = Path(os.path.realpath(path))
    try:
        # Without blocking, and checked by what was opened: a FIFO must not hang us.
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        return target, None
    except OSError as exc:
        raise HostsFileError(f"Cannot read {target}: {exc.strerror}.") from exc
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise HostsFileError(
                f"{target} is not a regular file (a FIFO, device or folder).",
                "Give the path of a hosts file.",
            )
        os.set_blocking(fd, True)
        try:
            data = stream.read(_MAX_HOSTS + 1)
        except OSError as exc:
            raise HostsFileError(f"Cannot read {target}: {exc.strerror}.") from exc
    if len(data) > _MAX_HOSTS:
        raise HostsFileError(f"{target} is larger than {_MAX_HOSTS} bytes: not a hosts file.")
    return target, data


def _replace(target: Path, data: bytes, existed: bool) -> None:
    tmp: str | None = None
    try:
        before = os.stat(target) if existed else None
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, stat.S_IMODE(before.st_mode) if before else 0o644)
        if before is not None:
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(tmp, before.st_uid, before.st_gid)
        os.replace(tmp, target)
        tmp = None
    except OSError as exc:
        hint = "Run it with the rights to write there (sudo for /etc/hosts)."
        if exc.errno in (errno.EBUSY, errno.EXDEV):
            hint = (
                f"{target} is a mount point (as /etc/hosts is in a container), which cannot "
                "be replaced atomically: paste the printed lines into it by hand."
            )
        raise HostsFileError(f"Cannot rewrite {target}: {exc.strerror}.", hint) from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@dataclass(frozen=True)
class HostsReport:
    """The entries of one sandbox, where they came from, what was done to a file, and why."""

    sandbox: str
    source: Literal["plan", "running"]
    entries: tuple[HostsEntry, ...]
    action: Action
    file: str | None
    nsswitch: str | None  # the `hosts:` line of nsswitch.conf, if found
    sentences: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "sandbox": self.sandbox,
            "source": self.source,
            "action": self.action,
            "file": self.file,
            "entries": [e.to_json() for e in self.entries],
            "block": block_lines(self.sandbox, self.entries),
            "nsswitch": self.nsswitch,
            "sentences": list(self.sentences),
        }


def hosts(
    ref: str,
    *,
    state_root: Path | None,
    write: Path | None = None,
    remove: bool = False,
    nsswitch: Path = NSSWITCH,
) -> HostsReport:
    """The hosts lines of profile or sandbox `ref` (a running sandbox's addresses win over the
    plan's); with `write`, put them into that file, or with `remove` too, take them out.

    Never touches a file but `write`. Raises UsageError for `remove` without `write` or an
    unknown profile, ProfileError for an invalid one, HostsFileError as write_block does.
    """
    if remove and write is None:
        raise UsageError("--remove needs the file to take the block out of.", "Add --write FILE.")
    record = _running(ref, state_root)
    entries: list[HostsEntry] = []
    if record is not None:
        name, entries = record.name, hosts_lines(record)
    else:
        from sandbox.profile.loader import load_profile

        try:
            profile = load_profile(ref)
        except ProfileNotFound:
            if not (remove and _NAME.fullmatch(ref)):
                raise
            name = ref  # the profile is gone, but its block can still be taken out
        else:
            name = profile.name
            record = _running(name, state_root)
            entries = hosts_lines(record if record is not None else profile)
    action: Action = "printed"
    if write is not None and remove:
        action = "removed" if remove_block(write, name) else "absent"
    elif write is not None:
        action = "written" if write_block(write, name, entries) else "unchanged"
    line = _nsswitch_hosts(nsswitch)
    source: Literal["plan", "running"] = "running" if record is not None else "plan"
    file = None if write is None else str(write)
    sentences = _sentences(name, source, entries, action, file, line, nsswitch)
    return HostsReport(name, source, tuple(entries), action, file, line, tuple(sentences))


def _running(name: str, state_root: Path | None) -> SandboxRecord | None:
    if state_root is None or not _NAME.fullmatch(name):
        return None
    from sandbox.proc.processes import is_alive
    from sandbox.runtime.state import StateDir

    try:
        record = StateDir(state_root, name).read()
    except SandboxError:
        return None
    alive = record is not None and record.supervisor is not None and is_alive(record.supervisor)
    return record if alive else None  # a stale record's addresses may be taken by now


def _nsswitch_hosts(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("hosts:"):
            return " ".join(line.split())
    return None


def _sentences(
    name: str,
    source: str,
    entries: Sequence[HostsEntry],
    action: Action,
    file: str | None,
    line: str | None,
    nsswitch: Path,
) -> list[str]:
    out = []
    words = line.split()[1:] if line else []
    if "files" in words and ("dns" not in words or words.index("files") < words.index("dns")):
        out.append(
            f"{nsswitch} says `{line}`: the system resolver reads the hosts file before "
            "asking DNS, so these lines answer at once and no query leaves the machine."
        )
    elif line:
        out.append(
            f"{nsswitch} says `{line}`: the hosts file is not read first here, so a "
            "name may be asked of DNS before these lines are seen."
        )
    else:
        out.append(
            f"No `hosts:` line was found in {nsswitch}; most systems read the hosts file "
            "before DNS (`hosts: files dns`)."
        )
    out.append(
        f".{DOMAIN} is reserved by RFC 6761 for testing: no real name ends in it, so these "
        "names can never hide a real site."
    )
    example = next((e for e in entries if e.url and e.kind == "http"), None)
    example = example or next((e for e in entries if e.url), None)
    if example is not None:
        out.append(f"A hosts file maps names to addresses, never ports: dial {example.url}.")
    where = "the running sandbox's record" if source == "running" else "the profile's plan"
    if source == "plan":
        where += " (where `sandbox up` puts them, unless --on-conflict moves one)"
    out.append(f"The addresses come from {where}.")
    done = {
        "printed": "Nothing was written: add the lines to /etc/hosts, or use --write FILE.",
        "written": f"Wrote them to {file}, between the marker lines; no other line's text changed.",
        "unchanged": f"{file} already holds exactly this block: nothing was changed.",
        "removed": f"Took the block of {name} out of {file}; no other line's text changed.",
        "absent": f"{file} holds no block of {name}: nothing was changed.",
    }
    out.append(done[action])
    return out
