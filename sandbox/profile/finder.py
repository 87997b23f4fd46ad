"""Where a profile is: a path, or a name looked up in ./profiles, $SANDBOX_PROFILE_PATH and the
bundled folder; and, without parsing it, the name a profile file gives itself.

Light on purpose (no YAML, no pydantic): `sandbox up -d` finds the file and the sandbox's
name here, then lets the supervisor it starts load and validate the profile.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from sandbox.errors import ProfileNotFound

Origin = Literal["local", "path", "bundled"]

_SUFFIXES = (".yaml", ".yml")


def bundled_dir() -> Path:
    """The folder of the profiles that ship with sandbox."""
    from importlib import resources

    return Path(str(resources.files("sandbox") / "profiles"))


def profile_dirs(search: Sequence[Path] | None = None) -> list[tuple[Path, Origin]]:
    """Where names are looked up, in order: ./profiles, $SANDBOX_PROFILE_PATH, the bundled folder.

    `search` replaces that list. A folder listed twice (./profiles may be a link to the
    bundled folder) is kept once, at its first place.
    """
    bundled = bundled_dir()
    if search is None:
        env = os.environ.get("SANDBOX_PROFILE_PATH", "")
        extra = [Path(p).expanduser() for p in env.split(os.pathsep) if p]
        search = [Path("profiles"), *extra, bundled]
    local, bundled_real = _real(Path("profiles")), _real(bundled)
    dirs: list[tuple[Path, Origin]] = []
    seen: set[Path] = set()
    for folder in map(Path, search):
        real = _real(folder)
        if real not in seen:
            seen.add(real)
            origin: Origin = (
                "bundled" if real == bundled_real else "local" if real == local else "path"
            )
            dirs.append((folder, origin))
    return dirs


def find_profile(ref: str | os.PathLike[str], *, search: Sequence[Path] | None = None) -> Path:
    """The file `ref` names: a path (has a `/`, ends in .yaml/.yml, or is a file) or a name.

    A name NAME is NAME.yaml, then NAME.yml, in each folder of `profile_dirs(search)`.
    Raises ProfileNotFound naming every place it looked in.
    """
    text = os.fspath(ref)
    seps = {"/", os.sep, os.altsep or "/"}
    if not isinstance(ref, str) or any(s in text for s in seps) or text.endswith(_SUFFIXES):
        return Path(text).expanduser()
    if _is_file(Path(text)):
        return Path(text)
    dirs = profile_dirs(search)
    for folder, _ in dirs:
        for suffix in _SUFFIXES:
            if _is_file(folder / f"{text}{suffix}"):
                return folder / f"{text}{suffix}"
    labels = {"local": "local", "path": "from $SANDBOX_PROFILE_PATH", "bundled": "bundled"}
    places = ", ".join(f"{_dir(folder)} ({labels[origin]})" for folder, origin in dirs)
    known = {p.stem for folder, _ in dirs for p in _profile_files(folder)}
    import difflib

    close = difflib.get_close_matches(text, sorted(known), n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    raise ProfileNotFound(
        f'No profile named "{text}": looked for {text}.yaml and {text}.yml in {places}.',
        hint=hint + "`sandbox profiles` lists the profiles found; or pass the path of a YAML file",
    )


def _real(folder: Path) -> Path:
    try:
        return folder.resolve()
    except (OSError, RuntimeError):  # a symlink loop, or a folder we may not look into
        return folder.absolute()


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder we may not look into has no profile we could read
        return False


def _dir(folder: Path) -> str:
    return str(folder) if folder.is_absolute() or str(folder).startswith(".") else f"./{folder}"


def _profile_files(folder: Path) -> list[Path]:
    try:
        files = [
            p
            for p in folder.iterdir()
            if p.suffix in _SUFFIXES and not p.name.startswith(".") and _is_file(p)
        ]
    except OSError:
        return []
    return sorted(files, key=lambda p: (p.stem, _SUFFIXES.index(p.suffix)))


# A top-level `name: web` line: a plain scalar in the name alphabet, maybe a comment after.
_NAME_LINE = re.compile(r"name:[ \t]+([a-z][a-z0-9_-]{0,62})[ \t]*(?:#.*)?")
# Lines at the top level that make the file's structure more than plain `key: value` lines.
_UNPLAIN = ("---", "...", "%", "{", "[", "?", "&", "*", "!", "<<", '"name', "'name")
_PEEK_LIMIT = 1 << 20  # the loader's own limit on a profile file


def peek_name(path: Path) -> str | None:
    """The name a profile file gives itself, read from its one top-level `name: NAME` line;
    None when that is not certain (no such line, two, a quoted or tagged name, flow style,
    several documents, anything unusual) or the file is not a plain, small, readable file.
    The loader has the last word: what loads must carry the name this returned.
    """
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode) or info.st_size > _PEEK_LIMIT:
            return None
        text = path.read_bytes()[:_PEEK_LIMIT].decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    found: list[str] = []
    for line in text.splitlines():
        if not line or line[0] in " \t#":
            continue
        if line.startswith(_UNPLAIN):
            return None
        if line.startswith("name") and line[4:].lstrip(" \t").startswith(":"):
            match = _NAME_LINE.fullmatch(line.rstrip())
            if match is None:
                return None
            found.append(match.group(1))
    return found[0] if len(found) == 1 else None
