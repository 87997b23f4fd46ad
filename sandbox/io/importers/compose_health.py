"""A compose `healthcheck` as the profile's `ready:` check: what maps, and what is only close."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "::"}
# Programs whose health check amounts to "the port accepts connections".
_TCP_LIKE = {"pg_isready", "redis-cli", "mysqladmin", "nc", "mongosh", "mongo", "cqlsh"}
_URL_HOST = re.compile(r"[a-z][a-z0-9+.-]*://\[?([^/\]:?#\s'\"]*)")
_LOCAL_WORD = re.compile(r"(?<![\w.:-])(localhost|127\.0\.0\.1|0\.0\.0\.0)(?![\w.-])")
DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}


@dataclass(frozen=True)
class Readiness:
    """The `ready:` mapping (None: nothing expressible) and a sentence on what did not map."""

    ready: dict[str, Any] | None
    loss: str | None
    exact: bool = False


def compose_seconds(value: object) -> float | None:
    """`1m30s`, `10s`, `500ms` or a number of seconds; None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT[u] for n, u in parts)


def seconds_text(seconds: float) -> str:
    """A duration as the profile writes it: `90s`, `1.5s`, `250ms`."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


def test_command(test: object) -> tuple[list[str], str] | None:
    """The health test as (argv, how): how is CMD or CMD-SHELL; None for NONE or an empty test."""
    if isinstance(test, str):
        return (["sh", "-c", test], "CMD-SHELL") if test.strip() else None
    if not isinstance(test, list) or not test or not all(isinstance(x, str) for x in test):
        return None
    head, rest = test[0], list(test[1:])
    if head == "CMD" and rest:
        return rest, "CMD"
    if head == "CMD-SHELL" and rest:
        return ["sh", "-c", " ".join(rest)], "CMD-SHELL"
    return None


def deadline(check: Mapping[str, Any]) -> float:
    """How long compose would take, at most, to call the service unhealthy: the wait's deadline."""
    values = dict(DEFAULTS)
    for key in ("interval", "start_period"):
        seconds = compose_seconds(check.get(key))
        if seconds is not None:
            values[key] = seconds
    retries = check.get("retries")
    if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
        values["retries"] = retries
    return max(1.0, values["start_period"] + values["retries"] * values["interval"])


def readiness(check: Mapping[str, Any]) -> Readiness:
    """Map a compose healthcheck to `ready:`, saying what was approximated or dropped."""
    if check.get("disable") is True:
        return Readiness(None, "the health check is disabled; the default TCP check is used")
    parsed = test_command(check.get("test"))
    if parsed is None:
        return Readiness(None, "the health check has no test (or NONE): the default check is used")
    argv, how = parsed
    words = _words(argv, how)
    timeout = seconds_text(deadline(check))
    if words[:2] == ["sandbox", "probe"] and len(words) == 3:
        return _sandbox_probe(words[2], timeout)
    if url := _local_url(words):
        path = urlsplit(url).path or "/"
        query = urlsplit(url).query
        ready = {"http": path + (f"?{query}" if query else ""), "timeout": timeout}
        return Readiness(
            ready,
            f"`{' '.join(words)}` became GET {ready['http']} on the service's own address, "
            "expecting 200 (the check's program, and a success on other statuses, are not kept); "
            f"the deadline {timeout} is start_period + retries x interval",
        )
    command = _command_readiness(argv, timeout)
    if command is not None:
        return command
    if words and words[0].rsplit("/", 1)[-1] in _TCP_LIKE:
        return Readiness(
            {"tcp": True, "timeout": timeout},
            f"`{' '.join(words)}` became a TCP connect to the service's own port "
            "(a protocol-level check is not kept: it names no local host to point at the "
            "service's address)",
        )
    return Readiness(
        None,
        f"the health check runs `{shlex.join(argv)}`, which names no local host to point at "
        "the service's address; the default TCP check is used",
    )


def _sandbox_probe(target: str, timeout: str) -> Readiness:
    """What `sandbox export` writes: `sandbox probe http://127.0.0.1:P/PATH` or `127.0.0.1:P`."""
    if target.startswith("http://"):
        parts = urlsplit(target)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Readiness(
            {"http": path, "timeout": timeout},
            "`sandbox probe` accepts any status; the profile's http check expects 200",
        )
    return Readiness({"tcp": True, "timeout": timeout}, None, exact=True)


def _command_readiness(argv: list[str], timeout: str) -> Readiness | None:
    """A health check that names a local host runs as `ready: {command: ...}` on the
    machine, pointed at the service's own address (inside a container `localhost` is the
    service itself): a protocol check such as `redis-cli -h localhost ping` sees what a TCP
    connect cannot (redis still LOADING). None when it names no local host, or any other
    host: a readiness check never reaches beyond this machine."""
    text = " ".join(argv)
    if any(host not in _LOCAL_HOSTS for host in _URL_HOST.findall(text)):
        return None
    literal = [word.replace("{", "{{").replace("}", "}}") for word in argv]
    words = [_LOCAL_WORD.sub("{address}", word) for word in literal]
    if words == literal:
        return None
    command = shlex.join(words)
    needs = "its programs" if argv[0] == "sh" else f"`{argv[0]}`"
    return Readiness(
        {"command": command, "timeout": timeout},
        f"the health check `{shlex.join(argv)}` runs on the machine as `{command}`, with the "
        f"service's own address where the container said localhost; it needs {needs} here",
    )


def _words(argv: list[str], how: str) -> list[str]:
    if how == "CMD-SHELL":
        try:
            return shlex.split(argv[-1])
        except ValueError:
            return argv[-1].split()
    return argv


def _local_url(words: list[str]) -> str | None:
    if not words or words[0].rsplit("/", 1)[-1] not in ("curl", "wget"):
        return None
    for word in words[1:]:
        if word.startswith(("http://", "https://")) or (
            "://" not in word and word.split("/", 1)[0].split(":", 1)[0] in _LOCAL_HOSTS
        ):
            url = word if "://" in word else "http://" + word
            host = urlsplit(url).hostname or ""
            if host in _LOCAL_HOSTS:
                return url
    return None
