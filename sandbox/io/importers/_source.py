"""Reading an importer's source safely: regular files only, a size budget, JSON with positions."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from sandbox.errors import SourceError

MAX_SOURCE_BYTES = 20 * 1024 * 1024  # a whole source (all files read) may not exceed this
_MIB = 1024 * 1024


def _subject(shown: str, what: str) -> str:
    """How a message names the source: `the HAR file shop.har`, or just the path."""
    return f"the {what} {shown}" if what else shown


def _limit_text(limit: int) -> str:
    return f"{limit // _MIB} MiB" if limit % _MIB == 0 else f"{limit} bytes"


class Budget:
    """Bytes still allowed to be read from one source, across all its files."""

    def __init__(self, limit: int = MAX_SOURCE_BYTES) -> None:
        self.limit = limit
        self.left = limit

    def read(self, path: Path, shown: str, what: str = "") -> bytes:
        """The bytes of a regular file, charged to the budget.

        Raises SourceError when the file cannot be read, is not a regular file, or the budget
        runs out. The size is checked before and while reading, so a file that grows (or a FIFO
        posing as a file) cannot make the import read without bound.
        """
        subject = _subject(shown, what)
        kind = file_kind(path)
        if kind == "missing" or kind.startswith("unreadable"):
            raise SourceError(f"cannot read {subject}: it is {kind}.", hint="Check the path.")
        if kind != "file":
            raise SourceError(
                f"{subject} is {kind}, not a regular file.",
                hint="Give the path of a regular file.",
            )
        try:
            size = path.stat().st_size
            if size > self.left:
                raise SourceError(
                    f"{subject} is {size} bytes: it would take the source over the import "
                    f"limit of {_limit_text(self.limit)}.",
                    hint="Split it, or import a smaller set of files.",
                )
            with path.open("rb") as handle:
                data = handle.read(self.left + 1)
        except OSError as exc:
            raise SourceError(f"cannot read {subject}: {exc.strerror or exc}.") from None
        if len(data) > self.left:  # the file grew while we read it
            raise SourceError(
                f"{subject} grew past the import limit of {_limit_text(self.limit)} while read."
            )
        self.left -= len(data)
        return data


def read_source(source: Path, what: str, *, limit: int = MAX_SOURCE_BYTES) -> bytes:
    """The bytes of a one-file source (`what` names it in messages); see `Budget.read`."""
    return Budget(limit).read(source, str(source), what)


def file_kind(path: Path) -> str:
    """`file`, `folder`, or a phrase naming what else the path is (missing, a device...)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def parse_json(data: bytes, shown: str, what: str = "") -> Any:
    """JSON from bytes; raises SourceError naming FILE:LINE:COL of a syntax error.

    With `what` (`HAR file`) the messages also say what kind of source it is.
    """
    subject = _subject(shown, what)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(
            f"{subject} is not UTF-8 text (byte {exc.start}: {exc.reason})."
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{shown}:{exc.lineno}:{exc.colno}"
        where = f"{where}: the {what}" if what else where
        raise SourceError(f"{where} is not valid JSON: {exc.msg}.") from None
    except RecursionError:
        raise SourceError(f"{subject} is nested too deeply to read.") from None


def require_source(source: Path) -> str:
    """The kind of `source` (`file` or `folder`); raises SourceError for anything else."""
    kind = file_kind(source)
    if kind not in ("file", "folder"):
        raise SourceError(
            f"{source} is {kind}: an import reads a regular file or a folder.",
            hint="Check the path.",
        )
    return kind
