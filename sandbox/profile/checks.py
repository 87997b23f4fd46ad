"""Checks across fields that pydantic cannot make one at a time: dependencies, proxies, clashes."""

from __future__ import annotations

import heapq
from pathlib import PureWindowsPath

from sandbox.errors import ProfileError
from sandbox.profile.limits import check_limits, http_routes, route_answers
from sandbox.profile.models import CommandService, Profile, Response, TcpService
from sandbox.profile.placeholders import check_placeholders

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]


def check_profile(profile: Profile) -> list[Problem]:
    """Every cross-field problem of `profile` as (field path, message); empty when it is sound."""
    return [
        *_dependencies(profile),
        *_cycles(profile),
        *_routes(profile),
        *_collisions(profile),
        *_readiness(profile),
        *check_placeholders(profile),
        *check_limits(profile),
    ]


def dependency_order(profile: Profile) -> list[str]:
    """Service names so that each comes after what it depends on; declaration order where free.

    Start services in this order and stop them in reverse. Unknown and self dependencies are
    ignored (`check_profile` reports them). Raises ProfileError if the dependencies form a cycle.
    """
    names = list(profile.services)
    index = {name: i for i, name in enumerate(names)}
    waiting: dict[str, int] = {}
    dependents: dict[str, list[str]] = {name: [] for name in names}
    for name, service in profile.services.items():
        deps = {d for d in service.depends_on if d in index and d != name}
        waiting[name] = len(deps)
        for dep in deps:
            dependents[dep].append(name)
    # A heap of declaration indices makes the order stable: the earliest declared service
    # whose dependencies are all placed goes next.
    free = [index[name] for name in names if waiting[name] == 0]
    heapq.heapify(free)
    order: list[str] = []
    while free:
        name = names[heapq.heappop(free)]
        order.append(name)
        for other in dependents[name]:
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(free, index[other])
    if len(order) < len(names):
        cycles = [f"{'.'.join(map(str, path))}: {message}" for path, message in _cycles(profile)]
        raise ProfileError(profile.source or profile.name, cycles or ["dependency cycle"])
    return order


def _unknown(profile: Profile, name: str, target: str) -> str:
    others = ", ".join(n for n in profile.services if n != name)
    return (
        f'unknown service "{target}" ({f"services: {others}" if others else "no other services"})'
    )


def _dependencies(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    for name, service in profile.services.items():
        for i, dep in enumerate(service.depends_on):
            path: FieldPath = ("services", name, "depends_on", i)
            if dep == name:
                problems.append((path, f'"{name}" cannot depend on itself'))
            elif dep not in profile.services:
                problems.append((path, _unknown(profile, name, dep)))
    return problems


def _cycles(profile: Profile) -> list[Problem]:
    """One problem per dependency cycle, found by an iterative depth-first search."""
    graph = {
        name: [d for d in s.depends_on if d in profile.services and d != name]
        for name, s in profile.services.items()
    }
    order = {name: i for i, name in enumerate(graph)}
    on_path: list[str] = []
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    seen: set[tuple[str, ...]] = set()
    problems: list[Problem] = []
    for root in graph:
        if root in state:
            continue
        stack = [iter(graph[root])]
        on_path.append(root)
        state[root] = "open"
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[on_path.pop()] = "done"
                stack.pop()
            elif state.get(nxt) == "open":
                cycle = on_path[on_path.index(nxt) :]
                # Rotate so a cycle reads from its earliest declared service, whichever
                # service the search happened to enter it by.
                first = min(range(len(cycle)), key=lambda i: order[cycle[i]])
                cycle = cycle[first:] + cycle[:first]
                if tuple(cycle) not in seen:
                    seen.add(tuple(cycle))
                    start, then = cycle[0], cycle[1 % len(cycle)]
                    at = profile.services[start].depends_on.index(then)
                    text = " -> ".join([*cycle, start])
                    problems.append(
                        (("services", start, "depends_on", at), f"dependency cycle: {text}")
                    )
            elif nxt not in state:
                state[nxt] = "open"
                on_path.append(nxt)
                stack.append(iter(graph[nxt]))
    return problems


def _routes(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    for name, at, route in http_routes(profile):
        if route.proxy is not None:
            problems.extend(_proxy(profile, name, route.proxy, (*at, "proxy")))
        for where, response in route_answers(route, at):
            problems.extend(_file(response, (*where, "file")))
    return problems


def _proxy(profile: Profile, name: str, target: str, path: FieldPath) -> list[Problem]:
    other = profile.services.get(target)
    if other is None:
        return [(path, _unknown(profile, name, target))]
    if target == name:
        return [(path, f'"{name}" cannot proxy to itself: every request would loop back')]
    if other.kind == "tcp":
        return [
            (
                path,
                f'"{target}" is a tcp stub; a proxy forwards HTTP requests, '
                "so it must name an http service or a command service that speaks HTTP",
            )
        ]
    return []


def _file(response: Response, path: FieldPath) -> list[Problem]:
    file = response.file
    if file is None:
        return []
    if file.startswith(("/", "\\")) or PureWindowsPath(file).drive:
        return [(path, f"{file!r} is absolute; `file:` is relative to the profile's folder")]
    if ".." in file.replace("\\", "/").split("/"):
        return [(path, f"{file!r} leaves the profile's folder (..); `file:` must stay inside it")]
    if any(marker in file for marker in ("{{", "{%", "{#")):
        return [
            (
                path,
                f"{file!r} looks like a template, but `file:` is a path read as it is (never "
                "rendered); name one file, and put templates in `body:` or `json:`",
            )
        ]
    return []


def _collisions(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    taken: dict[tuple[str, int], str] = {}
    for name, service in profile.services.items():
        # "auto" ports are picked by the kernel and "auto" addresses are drawn from the pool
        # later, distinct by construction: only two literals can collide.
        if service.address == "auto" or not isinstance(service.port, int):
            continue
        key = (service.address, service.port)
        first = taken.setdefault(key, name)
        if first == name:
            continue
        if service.address == "::1":
            problems.append(
                (
                    ("services", name, "port"),
                    f'[::1]:{service.port} is also used by "{first}": ::1 is the only IPv6 '
                    "loopback address, so services on ::1 need distinct ports",
                )
            )
        else:
            problems.append(
                (
                    ("services", name, "address"),
                    f'{service.address}:{service.port} is also used by "{first}"; give one '
                    "of them another address (or `address: auto`) or another port",
                )
            )
    return problems


def _readiness(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    for name, service in profile.services.items():
        if isinstance(service, CommandService) or service.ready is None:
            continue
        if service.ready.log is not None:
            instead = "`ready: {tcp: true}`"
            if not isinstance(service, TcpService):
                instead = "`ready: {http: /path}` or " + instead
            problems.append(
                (
                    ("services", name, "ready", "log"),
                    "`ready.log` waits for a line of a program's output, so only command "
                    f"services have it; for this {service.kind} service use {instead}",
                )
            )
    return problems
