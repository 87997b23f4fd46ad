"""Reading an importer's source safely: regular files only, a size budget, JSON with positions."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

from sandbox.errors import SourceError

MAX_SOURCE_BYTES = 20 * 1024 * 1024  # a whole source (all files read) may not exceed this
_NAME_RUN = re.compile(r"[^a-z0-9_-]+")


class Budget:
    """Bytes still allowed to be read from one source, across all its files."""

    def __init__(self, limit: int = MAX_SOURCE_BYTES) -> None:
        self.limit = limit
        self.left = limit

    def read(self, path: Path, shown: str) -> bytes:
        """The bytes of a regular file, charged to the budget.

        Raises SourceError when the file is not a regular file or the budget runs out.
        """
        kind = file_kind(path)
        if kind != "file":
            raise SourceError(
                f"{shown} is {kind}, not a regular file.",
                hint="Point the import at a JSON file or a folder of them.",
            )
        size = path.stat().st_size
        if size > self.left:
            raise SourceError(
                f"{shown} would take the source over the {self.limit // (1024 * 1024)} MiB "
                "an import reads.",
                hint="Import a smaller set of files.",
            )
        with path.open("rb") as handle:
            data = handle.read(self.left + 1)
        if len(data) > self.left:  # the file grew while we read it
            raise SourceError(f"{shown} grew past the import size limit while read.")
        self.left -= len(data)
        return data


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


def parse_json(data: bytes, shown: str) -> Any:
    """JSON from bytes; raises SourceError naming FILE:LINE:COL of a syntax error."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{shown} is not UTF-8 text (byte {exc.start}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(
            f"{shown}:{exc.lineno}:{exc.colno} is not valid JSON: {exc.msg}."
        ) from None
    except RecursionError:
        raise SourceError(f"{shown} is nested too deeply to read.") from None


def require_source(source: Path) -> str:
    """The kind of `source` (`file` or `folder`); raises SourceError for anything else."""
    kind = file_kind(source)
    if kind not in ("file", "folder"):
        raise SourceError(
            f"{source} is {kind}: an import reads a regular file or a folder.",
            hint="Check the path.",
        )
    return kind


def profile_name(source: Path, fallback: str) -> str:
    """A valid profile name from a file or folder name (`My Stubs.json` -> `my-stubs`)."""
    stem = source.stem if source.suffix else source.name
    name = _NAME_RUN.sub("-", stem.lower()).strip("-_")
    if not name or not name[0].isalpha():
        name = f"{fallback}-{name}" if name else fallback
    return name[:63].rstrip("-_")


def pointer(*parts: object) -> str:
    """A JSON pointer (`/request/bodyPatterns/0`) with `~` and `/` escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)
