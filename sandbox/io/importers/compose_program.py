"""A compose service's program: `entrypoint` + `command` as `run:`, or a stand-in for an image."""

from __future__ import annotations

import re
import shlex
from typing import Any

from sandbox.errors import SourceError
from sandbox.io.importers.compose_context import ComposeContext
from sandbox.io.importers.compose_refs import escape_braces, rewrite_hosts, rewrite_own

# Images whose program is commonly installed locally: the command that stands in for them.
KNOWN_IMAGES = {
    "redis": "redis-server --bind {address} --port {port} --save ''",
    "valkey/valkey": "valkey-server --bind {address} --port {port} --save ''",
}
_SAFE_WORD = re.compile(r"[^\s'\"\\]+")


def join_words(words: list[str]) -> str:
    """Words as one `run:` line: quoted only where splitting needs it, so placeholders read."""
    return " ".join(w if _SAFE_WORD.fullmatch(w) else shlex.quote(w) for w in words)


def _words(value: object, where: str) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise SourceError(f"{where}: {value!r} cannot be split into words: {exc}.") from None
    return []


def program(ctx: ComposeContext, cname: str, pname: str, spec: dict[str, Any]) -> str:
    """The `run:` line of a service, reporting the local program it needs.

    Raises SourceError for a command or entrypoint string that cannot be split into words.
    """
    where = ctx.at("services", cname)
    entry = _words(spec.get("entrypoint"), f"{where}/entrypoint")
    command = _words(spec.get("command"), f"{where}/command")
    words = entry + command
    image = spec.get("image") if isinstance(spec.get("image"), str) else None
    if "build" in spec:
        ctx.result.drop(f"{where}/build", "the image is not built: its program runs here")
    if not words:
        return _placeholder(ctx, cname, pname, image, where)
    if image is not None and not (entry and command):
        missing = "ENTRYPOINT" if not entry else "CMD"
        ctx.result.approximate(
            f"{where}/{'command' if command else 'entrypoint'}",
            f"the image's {missing}, if it has one, is not known and not added",
        )
    out: list[str] = []
    changed = False
    hosts: set[str] = set()
    for word in words:
        text, names = rewrite_hosts(
            escape_braces(word), ctx.first_replicas(), ctx.main, whole=False
        )
        hosts.update(names)
        text, own = rewrite_own(text, ctx.main[cname])
        changed = changed or own
        out.append(text)
    ctx.result.approximate(
        f"{where}/{'command' if command else 'entrypoint'}",
        f"needs a local program: `{words[0]}` runs on this machine"
        + (f", not in the image {image}" if image else "")
        + (f"; hosts {', '.join(sorted(hosts))} became their addresses" if hosts else "")
        + ("; its wildcard bind or container port became {address} / {port}" if changed else "")
        + ("" if changed or not ctx.targets[cname]
           else "; it must listen on {address}:{port}: pass them in its arguments"),
    )  # fmt: skip
    return join_words(out)


def _placeholder(ctx: ComposeContext, cname: str, pname: str, image: str | None, where: str) -> str:
    name = (image or "").split("@")[0].rsplit(":", 1)[0].removeprefix("docker.io/")
    name = name.removeprefix("library/")
    if name in KNOWN_IMAGES:
        program = KNOWN_IMAGES[name].split()[0]
        ctx.result.approximate(
            f"{where}/image",
            f"needs a local program: image {image} became `{program}`, run on this machine",
        )
        return KNOWN_IMAGES[name]
    what = f"the image {image}" if image else "an image built from source"
    ctx.result.drop(
        f"{where}/image",
        f"needs a local program: `{pname}` ran {what} with no command; its `run:` is a "
        "placeholder that fails at `up` until you write the program to run",
    )
    message = f"sandbox: service {pname} needs a local program in place of {what}"
    return join_words(["sh", "-c", f'echo "{message}" >&2; exit 127'])
