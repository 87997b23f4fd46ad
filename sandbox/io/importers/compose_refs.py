"""Rewrite compose text for loopback: service host names to addresses, own binds to {address}."""

from __future__ import annotations

import re
from collections.abc import Mapping

# `{name}` in the source would read as a profile placeholder: double it to keep it literal.
_BRACES = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_.\-]*)\}")
_WILDCARD = re.compile(r"(?<![\w.:])(?:0\.0\.0\.0|\[::\])(?![\w.])|^::$")


def escape_braces(text: str) -> str:
    """`text` with `{x}` written as `{{x}}`, so the sandbox passes it on unchanged."""
    return _BRACES.sub(r"{{\1}}", text)


def host_pattern(compose_name: str, *, whole: bool) -> re.Pattern[str]:
    """Where `compose_name` is used as a host: `name:PORT`, `//name`, `@name`, `--host=name`,
    and with `whole` also a text that is just the name (an environment value like `db`).
    """
    name = re.escape(compose_name)
    starts = r"(?<=//)|(?<=@)|(?<=--host=)|(?<=--hostname=)" + (r"|^" if whole else "")
    return re.compile(
        rf"(?:{starts})(?<![\w.-]){name}(?P<port>:\d+)?(?![\w.-])(?=[/?#\s,;]|$)"
        rf"|(?<![\w.-]){name}(?P<port2>:\d+)(?![\w.-])"
    )


def rewrite_hosts(
    text: str,
    targets: Mapping[str, str],
    ports: Mapping[str, set[int]],
    *,
    whole: bool,
) -> tuple[str, list[str]]:
    """Replace each compose service name used as a host by `{services.X.address}`.

    `targets` maps a compose service name to the profile service that stands for it (the
    first replica); `NAME:PORT` with one of that service's container `ports` becomes
    `{services.X.address}:{services.X.port}`. Returns the text and the names replaced.
    """
    replaced: list[str] = []
    for compose_name in sorted(targets, key=len, reverse=True):
        profile_name = targets[compose_name]

        def one(
            found: re.Match[str], compose_name: str = compose_name, pn: str = profile_name
        ) -> str:
            port = found.group("port") or found.group("port2")
            replaced.append(compose_name)
            address = f"{{services.{pn}.address}}"
            if port is None:
                return address
            if int(port[1:]) in ports.get(compose_name, set()):
                return f"{address}:{{services.{pn}.port}}"
            return address + port

        text = host_pattern(compose_name, whole=whole).sub(one, text)
    return text, sorted(set(replaced))


def rewrite_own(text: str, targets: set[int]) -> tuple[str, bool]:
    """A wildcard bind (`0.0.0.0`, `[::]`) as `{address}` and a container port as `{port}`."""
    out = _WILDCARD.sub("{address}", text)
    for port in sorted(targets):
        out = re.sub(rf"(?<![\w.{{]){port}(?![\w.])", "{port}", out)
    return out, out != text
