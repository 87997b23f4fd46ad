"""Compose's `${VAR}` interpolation and its `.env` file syntax, as the compose spec says."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.errors import SourceError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(?:[=:]\s*(.*))?$")


@dataclass
class Interpolator:
    """Substitutes variables from `env`; remembers the names that were unset (empty then)."""

    env: Mapping[str, str]
    unset: set[str] = field(default_factory=set)

    def __call__(self, text: str, where: str) -> str:
        """`text` with `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`, `${VAR?e}`,
        `${VAR:+r}`, `${VAR+r}` substituted and `$$` written as `$`.

        Raises SourceError naming `where` for `${VAR:?err}` on an unset variable or a bad `$`.
        """
        out: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char != "$":
                out.append(char)
                i += 1
                continue
            nxt = text[i + 1 : i + 2]
            if nxt == "$":
                out.append("$")
                i += 2
            elif nxt == "{":
                end = _closing(text, i + 2, where)
                out.append(self._braced(text[i + 2 : end], where))
                i = end + 1
            elif found := _NAME.match(text, i + 1):
                out.append(self._value(found.group(0)) or "")
                i = found.end()
            else:  # a lone `$` (before a space, a digit or the end) stays as written
                out.append("$")
                i += 1
        return "".join(out)

    def _value(self, name: str) -> str | None:
        if name in self.env:
            return self.env[name]
        self.unset.add(name)
        return None

    def _braced(self, inner: str, where: str) -> str:
        found = _NAME.match(inner)
        if found is None:
            raise SourceError(f"{where}: `${{{inner}}}` is not a valid variable reference.")
        name, rest = found.group(0), inner[found.end() :]
        if not rest:
            return self._value(name) or ""
        for op in (":-", "-", ":?", "?", ":+", "+"):
            if rest.startswith(op):
                arg = rest[len(op) :]
                break
        else:
            raise SourceError(f"{where}: `${{{inner}}}` has an unknown operator after {name}.")
        value = self.env.get(name)
        missing = value is None or (op.startswith(":") and value == "")
        if op in (":-", "-"):
            return self(arg, where) if missing else str(value)
        if op in (":+", "+"):
            return "" if missing else self(arg, where)
        if missing:
            message = self(arg, where) or f"{name} is required"
            raise SourceError(
                f"{where}: variable {name} is not set: {message}.",
                f"Set {name} in the environment or in the .env file beside the compose file.",
            )
        return str(value)


def _closing(text: str, start: int, where: str) -> int:
    """The index of the `}` that closes a `${` whose body begins at `start` (nesting allowed)."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise SourceError(f"{where}: `${{` is never closed in {text!r}.")


def parse_env_file(path: Path) -> dict[str, str]:
    """`KEY=VALUE` lines (comments, blank lines, `export`, quotes) as compose reads them.

    Raises SourceError naming the file and line for a line that is not an assignment.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read env file {path}: {exc}.") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = _ENV_LINE.match(line)
        if found is None:
            raise SourceError(
                f"{path}:{number}: {line.strip()!r} is not a KEY=VALUE line.",
                "Write one assignment per line; `#` starts a comment.",
            )
        key, raw = found.group(1), found.group(2)
        values[key] = _unquote(raw or "")
    return values


def _unquote(raw: str) -> str:
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        if raw[0] == "'":
            return inner
        return re.sub(r"\\([nrt\\\"])", lambda m: _ESCAPES[m.group(1)], inner)
    # An unquoted value ends at ` #` (an inline comment).
    return re.split(r"\s+#", raw, maxsplit=1)[0].rstrip()
