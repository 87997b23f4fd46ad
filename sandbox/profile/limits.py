"""Profile checks for what would only fail once started: NUL characters, environment names,
the address pool's size, the number of services and template arithmetic."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sandbox.net.addresses import default_pool, pool_addresses
from sandbox.profile.models import HttpService, Profile, Response, Route

if TYPE_CHECKING:
    import jinja2

FieldPath = tuple[str | int, ...]
Problem = tuple[FieldPath, str]

MAX_SERVICES = 5000  # each holds a socket and a log file open in one process (3000 are benched)
MAX_EXPONENT = 256  # `{{ 10**5000 }}` would make a number too long to print


@functools.cache
def _parser() -> jinja2.Environment:
    """Compiles like the stubs do, folding no arithmetic: a check must not build
    `'x' * 10**9` while reading a profile. Made on first use: jinja2 takes 20 ms to import,
    and most profiles hold no template."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    class Checker(SandboxedEnvironment):
        intercepted_binops = frozenset(["**", "*", "+", "-", "/", "//", "%"])

    return Checker(undefined=jinja2.StrictUndefined, autoescape=False)


_LITERAL = "for a literal {{ write {{ '{{' }}, or wrap the text in {% raw %}...{% endraw %}"
_MARKERS = ("{{", "{%", "{#")


def check_limits(profile: Profile) -> list[Problem]:
    """Problems that `up` would otherwise meet only while starting, as (field path, message)."""
    problems: list[Problem] = []
    # JSON writes a NUL as \u0000: one dump in pydantic's Rust code says whether the walk
    # that names where is needed (it took 0.1 s for a profile of 1000 services).
    if "\\u0000" in profile.model_dump_json(by_alias=True):
        problems += _nul_characters(profile.model_dump(by_alias=True))
    problems += _env_names(profile)
    problems += _pool(profile)
    if len(profile.services) > MAX_SERVICES:
        problems.append(
            (("services",), f"has {len(profile.services)} services; the most is {MAX_SERVICES}")
        )
    problems += _templates(profile)
    return problems


def _nul_characters(value: Any, path: FieldPath = ()) -> Iterator[Problem]:
    if isinstance(value, str):
        if "\0" in value:
            yield path, "contains a NUL character (\\0), which no command, file or header can hold"
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\0" in key:
                yield (*path, key), "the key contains a NUL character (\\0)"
            else:
                yield from _nul_characters(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _nul_characters(item, (*path, i))


def _env_names(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    for name, service in profile.services.items():
        for key in service.env:
            if not key or "=" in key:
                problems.append(
                    (
                        ("services", name, "env", key),
                        f"{key!r} cannot be an environment variable name: it must not be "
                        "empty or contain `=`",
                    )
                )
    return problems


def _pool(profile: Profile) -> list[Problem]:
    autos = [n for n, s in profile.services.items() if s.address == "auto"]
    if not autos:
        return []
    pool = profile.pool or default_pool(profile.name)
    literal = {str(s.address) for s in profile.services.values() if s.address != "auto"}
    usable = (a for a in pool_addresses(pool) if str(a) not in literal)
    free = sum(1 for _ in itertools.islice(usable, len(autos)))
    if free >= len(autos):
        return []
    where: FieldPath = ("pool",) if profile.pool else ("services",)
    return [
        (
            where,
            f"the address pool {pool} has {free} usable address{'es' if free != 1 else ''} "
            f"but {len(autos)} services take theirs from it (`address: auto`): choose a "
            "larger pool (a /24 holds 253)",
        )
    ]


def http_routes(profile: Profile) -> Iterator[tuple[str, FieldPath, Route]]:
    """Each route of each HTTP service, with the service's name and the route's field path."""
    for name, service in profile.services.items():
        if isinstance(service, HttpService):
            for i, route in enumerate(service.routes):
                yield name, ("services", name, "routes", i), route


def route_answers(route: Route, at: FieldPath) -> list[tuple[FieldPath, Response]]:
    """The `response` and each of the `responses` of a route, with their field paths."""
    answers = [((*at, "response"), route.response)] if route.response is not None else []
    return answers + [((*at, "responses", j), r) for j, r in enumerate(route.responses or [])]


def _templates(profile: Profile) -> list[Problem]:
    problems: list[Problem] = []
    for _, at, route in http_routes(profile):
        for where, response in route_answers(route, at):
            for path, text in _texts(response, where):
                problem = template_problem(text)
                if problem:
                    problems.append((path, problem))
    return problems


def _texts(response: Response, at: FieldPath) -> Iterator[tuple[FieldPath, str]]:
    if response.body is not None:
        yield (*at, "body"), response.body
    for key, value in response.headers.items():
        yield (*at, "headers", key), value
    stack: list[tuple[FieldPath, Any]] = [((*at, "json"), response.json_)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, j), v) for j, v in enumerate(value))


def template_problem(text: str) -> str | None:
    """Why the template `text` cannot be used (syntax, or a huge power), or None."""
    if not any(marker in text for marker in _MARKERS):
        return None
    import jinja2
    from jinja2 import nodes

    try:
        tree = _parser().parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return _syntax(exc)
    for power in tree.find_all(nodes.Pow):
        exponent = power.right
        value = exponent.value if isinstance(exponent, nodes.Const) else None
        if not isinstance(value, int | float) or abs(value) > MAX_EXPONENT:
            return (
                f"`**` is limited to a constant exponent of at most {MAX_EXPONENT}: "
                "larger powers make numbers too long to answer with"
            )
    try:  # some mistakes (an unknown test or filter) only show when compiling
        _parser().compile(text)
    except jinja2.TemplateSyntaxError as exc:
        return _syntax(exc)
    return None


def _syntax(exc: jinja2.TemplateSyntaxError) -> str:
    return f"the template is not valid Jinja2: {exc.message} (line {exc.lineno}); {_LITERAL}"
