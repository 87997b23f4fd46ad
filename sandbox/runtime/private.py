"""State folders only the user can write: checked before use, files opened in them by
descriptor without following links."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from sandbox.errors import StateError


def private_dir(target: Path) -> None:
    """Create `target` and its missing parents as 0700; an existing folder is left as it is."""
    missing, path = [], target
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    try:
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
                folder.chmod(0o700)  # mkdir's mode is filtered by the umask
        if not target.is_dir():
            raise NotADirectoryError(20, "it is not a directory")
    except OSError as exc:
        raise StateError(
            f"The state directory {target} cannot be created ({exc.strerror}).",
            hint="Set SANDBOX_STATE_DIR to a folder you can write to.",
        ) from exc


def check_private(path: Path, *, follow: bool = False) -> None:
    """Refuse (StateError) a state folder that someone else could have prepared for us.

    It must be a folder (not a symbolic link, unless `follow`), owned by the user running
    sandbox, and not writable by group or others: otherwise another user could plant links
    that make us overwrite their choice of file, or forge a record for `down` to act on.
    """
    try:
        info = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        raise StateError(
            f"The state folder {path} cannot be examined ({exc.strerror}).",
            hint="Set SANDBOX_STATE_DIR to a folder you own.",
        ) from exc
    _check_info(path, info, "folder")


def _check_info(path: Path, info: os.stat_result, what: str) -> None:
    problem = None
    if stat.S_ISLNK(info.st_mode):
        problem = "it is a symbolic link"
    elif what == "folder" and not stat.S_ISDIR(info.st_mode):
        problem = "it is not a folder"
    elif what == "file" and not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_uid != os.getuid():
        problem = f"it belongs to uid {info.st_uid}, not to you (uid {os.getuid()})"
    elif info.st_mode & 0o022:
        problem = f"it is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    if problem:
        raise StateError(
            f"Refusing the state {what} {path}: {problem}.",
            hint="sandbox keeps its state in folders only you can write (mode 0700): "
            "remove or fix it, or set SANDBOX_STATE_DIR to a folder of your own.",
        )


def open_private(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open the file `path` inside a checked state folder, never following a symbolic link.

    The folder is opened first and checked by its descriptor, then the file is opened
    relative to it with O_NOFOLLOW and checked by what was opened (a regular file of ours).
    Returns the descriptor (close-on-exec). Raises FileNotFoundError if it does not exist
    (and O_CREAT is not in `flags`), StateError if anything is not as it should be.
    """
    try:
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _cannot_open(path, exc) from exc
    try:
        _check_info(path.parent, os.fstat(folder), "folder")
        try:
            fd = os.open(
                path.name,
                flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY,
                mode,
                dir_fd=folder,
            )
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _check_info(path, os.lstat(path), "file")  # says: a symbolic link
            raise _cannot_open(path, exc) from exc
    finally:
        os.close(folder)
    try:
        _check_info(path, os.fstat(fd), "file")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _cannot_open(path: Path, exc: OSError) -> StateError:
    return StateError(
        f"Could not open {path} ({exc.strerror}).",
        hint="Check the permissions of the state directory (SANDBOX_STATE_DIR).",
    )


def open_log(path: Path) -> IO[str]:
    """`path` (a log in a state folder) opened for appending lines, links never followed."""
    private_dir(path.parent)
    check_private(path.parent)
    fd = open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


def open_log_fd(path: Path) -> int:
    """`path` (a log in a state folder) opened for appending, links never followed: the
    descriptor (for the shared log writer, which batches its own writes)."""
    private_dir(path.parent)
    check_private(path.parent)
    return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)


def state_root(env: Mapping[str, str] = os.environ) -> Path:
    """The folder holding every sandbox's state, created (with missing parents) as mode 0700.

    `$SANDBOX_STATE_DIR`, else `$XDG_STATE_HOME/sandbox` (only if absolute, as the XDG spec
    says), else `~/.local/state/sandbox`. Raises StateError if it cannot be created.
    """
    if env.get("SANDBOX_STATE_DIR"):
        root = Path(env["SANDBOX_STATE_DIR"]).expanduser()
    elif env.get("XDG_STATE_HOME", "").startswith("/"):
        root = Path(env["XDG_STATE_HOME"]) / "sandbox"
    else:
        home = Path(env["HOME"]) if env.get("HOME") else Path.home()
        root = home / ".local" / "state" / "sandbox"
    root = root.absolute()
    private_dir(root)
    check_private(root, follow=True)
    return root
