"""Container mode: inside a container a stub listens on the container's interface, nowhere else."""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from sandbox.errors import BindError, ContainerModeError

LISTEN = "0.0.0.0"  # every interface of the container's own network namespace
MARKERS = (".dockerenv", "run/.containerenv")  # Docker's and Podman's, relative to /
BACKLOG = 512

Binder = Callable[[Sequence[tuple[object, int, str]]], list[socket.socket]]


def container_evidence(env: Mapping[str, str] | None = None, root: Path = Path("/")) -> str | None:
    """Why this looks like a container (a marker file, or `$container`), or None."""
    for marker in MARKERS:
        if (root / marker).exists():
            return f"/{marker} exists"
    value = (os.environ if env is None else env).get("container")
    if value:
        return f"$container is {value!r}"
    return None


def container_binder(env: Mapping[str, str] | None = None, root: Path = Path("/")) -> Binder:
    """The binder `Sandbox(bind=...)` uses in container mode: each port on the container's
    interface (the planned loopback address stays how the engine probes it from inside).

    Raises ContainerModeError outside a container, where that would reach every network the
    machine is on.
    """
    evidence = container_evidence(env, root)
    if evidence is None:
        raise ContainerModeError(
            "--container-listen makes stubs listen on every interface, which is only safe "
            "inside a container (its own network namespace); this is not one: none of "
            "/.dockerenv, /run/.containerenv or $container is present.",
            "Run `sandbox up PROFILE` without --container-listen: on a machine, services "
            "listen on loopback. The image `sandbox export` writes sets $container.",
        )
    return bind_on_interface


def bind_on_interface(requests: Sequence[tuple[object, int, str]]) -> list[socket.socket]:
    """Bind LISTEN:port for every (planned address, port, service), all or none.

    Raises BindError (a conflict, exit 4) for a port that is taken; closes what it opened.
    """
    opened: list[socket.socket] = []
    try:
        for _address, port, service in requests:
            opened.append(_bind(port, service))
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


def _bind(port: int, service: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LISTEN, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        reason = "is in use" if exc.errno == errno.EADDRINUSE else f"failed: {exc.strerror}"
        raise BindError(
            f"{service}: binding the container's port {port} {reason}.",
            "Inside a container each stub needs its own port; check the profile's ports.",
            errno=exc.errno,
        ) from None
    return sock
