"""Service-wide HTTP stub behaviour: body limit, default headers, CORS, charsets, status."""

from __future__ import annotations

import codecs
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import hdrs, web

from sandbox.errors import StubConfigError
from sandbox.profile.models import HttpService
from sandbox.services.templates import RenderError, Text, compile_text

if TYPE_CHECKING:
    from sandbox.services.http_routes import Incoming

CORS_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_MAX_AGE = "600"


def _env_of(spec: HttpService, name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """What `env` holds in templates: the service's `env:` and the `pass_env` names, only."""
    missing = [key for key in spec.pass_env if key not in environ]
    if missing:
        raise StubConfigError(
            f"services.{name}.pass_env names {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} not set in sandbox's environment.",
            hint="Set it before `sandbox up`, or give the value in the service's env: block.",
        )
    return {**{key: environ[key] for key in spec.pass_env}, **spec.env}


@dataclass(frozen=True)
class Extras:
    """The service-wide settings of one http stub; swapped whole by a reload."""

    max_body: int
    headers: tuple[tuple[str, str], ...] = ()
    cors: bool = False
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: HttpService, name: str, environ: Mapping[str, str] | None = None) -> Extras:
        """Raises StubConfigError when a `pass_env` variable is not set."""
        return cls(
            max_body=spec.max_body,
            headers=tuple(spec.headers.items()),
            cors=spec.cors,
            env=_env_of(spec, name, os.environ if environ is None else environ),
        )

    @property
    def decorates(self) -> bool:
        """Whether `decorate` adds anything to a response."""
        return bool(self.headers) or self.cors

    def variables(self, req: Incoming) -> dict[str, Any]:
        """Template variables added to the request's: `query_all` and `env`."""
        query_all: dict[str, list[str]] = {}
        for key, value in req.query.items():
            query_all.setdefault(key, []).append(value)
        return {"query_all": query_all, "env": dict(self.env)}


class ExtrasHolder:
    """The current Extras of a stub; a reload replaces `current` between two requests."""

    __slots__ = ("current",)

    def __init__(self, extras: Extras) -> None:
        self.current = extras


def preflight(request: web.BaseRequest, current: Extras) -> web.Response | None:
    """The 204 answer to a CORS preflight when the service has `cors: true`, else None.

    The caller answers with it unless a route of the profile takes OPTIONS itself.
    """
    if not (
        current.cors
        and request.method == hdrs.METH_OPTIONS
        and hdrs.ORIGIN in request.headers
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    ):
        return None
    asked = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_HEADERS)
    headers = {
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: CORS_METHODS,
        hdrs.ACCESS_CONTROL_MAX_AGE: CORS_MAX_AGE,
    }
    if asked:
        headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = asked
    return web.Response(status=204, headers=headers)


def decorate(request: web.BaseRequest, response: web.StreamResponse, current: Extras) -> None:
    """Add the service's default headers, and CORS headers for a request with an Origin
    (what the response carries when it is sent; called just before)."""
    for name, value in current.headers:
        if name not in response.headers:
            response.headers[name] = value
    origin = request.headers.get(hdrs.ORIGIN)
    if current.cors and origin:
        # The origin itself, not `*`, so that requests with credentials are allowed too.
        response.headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_ORIGIN, origin)
        response.headers.setdefault(hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS, "true")
        exposed = [name for name in response.headers if not name.lower().startswith("access-")]
        if exposed:
            response.headers.setdefault(hdrs.ACCESS_CONTROL_EXPOSE_HEADERS, ", ".join(exposed))
        response.headers.add(hdrs.VARY, hdrs.ORIGIN)


def charset_of(content_type: str | None) -> str:
    """The charset a Content-Type declares (`text/plain; charset=latin-1`), else utf-8."""
    for param in (content_type or "").split(";")[1:]:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            return value.strip().strip('"')
    return "utf-8"


def encode(text: str, content_type: str | None, where: str) -> bytes:
    """`text` in the charset its Content-Type declares. Raises RenderError when the charset
    is unknown or a character has no place in it."""
    return encode_as(text, charset_of(content_type), where)


def encode_as(text: str, charset: str, where: str) -> bytes:
    """`text` in `charset`. Raises RenderError as `encode` does."""
    try:
        return text.encode(charset)
    except LookupError:
        raise RenderError(where, text, f"unknown charset {charset!r} in the Content-Type") from None
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise RenderError(where, text, f"{bad!r} cannot be written in {charset}") from None


def check_charset(content_type: str, where: str) -> None:
    """At start: a literal Content-Type must name a charset Python knows."""
    charset = charset_of(content_type)
    try:
        codecs.lookup(charset)
    except LookupError:
        raise StubConfigError(
            f"{where}: unknown charset {charset!r}.",
            hint="Name one like utf-8, latin-1, iso-8859-15, cp1252, utf-16.",
        ) from None


def compile_status(status: int | str, where: str) -> int | Text:
    """A literal status, or a template to render per request."""
    return status if isinstance(status, int) else compile_text(status, where)


def render_status(status: int | Text, variables: Mapping[str, Any]) -> int:
    """The status for this request. Raises RenderError unless it renders to 100..599."""
    if isinstance(status, int):
        return status
    text = status.render(variables).strip()
    if not text.isdigit() or not 100 <= int(text) <= 599:
        raise RenderError(status.where, status.source, f"{text!r} is not a status (100..599)")
    return int(text)
