"""The profile format as strict pydantic models: unknown keys and bad values are errors."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sandbox.net.addresses import loopback_problem
from sandbox.profile.durations import parse_duration as parse_duration  # re-exported
from sandbox.profile.patterns import check_path_patterns, check_pattern
from sandbox.profile.stubs import (
    DEFAULT_MAX_BODY,
    AbsentSpec,
    ByteSize,
    EnvNames,
    Status,
    check_add_prefix,
    check_nested_regexes,
)

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Fault = Literal["reset", "close", "empty", "garbage", "hang"]
Port = Annotated[int, Field(ge=1, le=65535, strict=True)] | Literal["auto"]


def _check_address(value: object) -> str:
    if value == "auto":
        return "auto"
    if not isinstance(value, str):
        raise ValueError(
            "an address is `auto` or a literal loopback address like 127.0.0.10 or ::1"
        )
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IP address: write `auto`, a 127.x.y.z address or ::1 "
            "(names like localhost are not allowed: they may resolve to either family)"
        ) from None
    problem = loopback_problem(addr, value)  # the one loopback rule, in net/addresses
    if problem is not None:
        raise ValueError(problem.rstrip("."))
    return str(addr)


Address = Annotated[str, BeforeValidator(_check_address)]


class Strict(BaseModel):
    """Base of every profile model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Ready(Strict):
    """How to tell that a service is ready; without it a TCP connect (or `GET /`) is used."""

    http: str | None = Field(None, description="Path to GET; ready when the status matches.")
    status: int = Field(200, ge=100, le=599, description="Expected HTTP status for `http`.")
    tcp: bool | None = Field(None, description="Ready when a TCP connect succeeds.")
    log: str | None = Field(None, description="Regex over a command's output (command only).")
    timeout: Duration = Field(10.0, description="Deadline, e.g. 5s or 750ms.")
    command: str | None = Field(
        None, description="A check to run, like `redis-cli -h {address} -p {port} ping`."
    )
    expect: str | None = Field(None, description="Regex the check's output must match.")
    interval: Duration = Field(0.2, gt=0, description="Pause between two runs of `command`.")
    attempt_timeout: Duration = Field(
        2.0, gt=0, description="How long one run of `command` may take before it is killed."
    )

    @model_validator(mode="after")
    def _one_check(self) -> Ready:
        checks = ("http", "tcp", "log", "command")
        chosen = [k for k in checks if getattr(self, k) not in (None, False)]
        if len(chosen) > 1:
            raise ValueError(f"choose one readiness check, not {' and '.join(chosen)}")
        if self.http is not None and not self.http.startswith("/"):
            raise ValueError("`http` is a path and must start with /")
        if self.log is not None:
            _compile(self.log, "log")
        if self.command is not None and not self.command.strip():
            raise ValueError("`command` is empty: give the check to run")
        if self.expect is not None:
            if self.command is None:
                raise ValueError("`expect` goes with `command`: the check whose output it matches")
            _compile(self.expect, "expect")
        return self


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    return check_pattern(pattern, what)  # invalid or catastrophic: a ValueError naming `what`


class Match(Strict):
    """Extra conditions a request must meet for a route to answer; every value is a regex."""

    query: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    json_: dict[str, Any] = Field(
        default_factory=dict,
        alias="json",
        description="Top-level JSON fields: a string is a regex, anything else must be equal.",
    )
    body: str | None = Field(None, description="Regex over the request body as text.")
    # Presence conditions and nested JSON (checked in profile/stubs.py).
    absent: AbsentSpec | None = Field(
        None, description="Headers and query parameters that must not be present."
    )
    exact_query: bool = Field(
        False, description="No query parameter other than those named in `query`."
    )

    @model_validator(mode="after")
    def _nested(self) -> Match:
        check_nested_regexes(self.json_)
        return self

    @model_validator(mode="after")
    def _regexes(self) -> Match:
        for where, mapping in (("query", self.query), ("headers", self.headers)):
            for key, pattern in mapping.items():
                _compile(pattern, f"{where}.{key}")
        for key, value in self.json_.items():
            if isinstance(value, str):
                _compile(value, f"json.{key}")
        if self.body is not None:
            _compile(self.body, "body")
        return self


class Response(Strict):
    """One HTTP answer. `body`, `json` and `file` are alternatives; text may use templates."""

    status: Status = Field(200, description="100..599, or a template rendering to one.")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_: Any = Field(None, alias="json")
    file: str | None = Field(None, description="A file inside the profile's folder.")
    delay: Duration = 0.0

    @model_validator(mode="after")
    def _one_body(self) -> Response:
        given = [k for k in ("body", "json_", "file") if getattr(self, k) is not None]
        if len(given) > 1:
            names = " and ".join(k.rstrip("_") for k in given)
            raise ValueError(f"a response has one of body, json or file, not {names}")
        return self


# -- what a stub remembers: its journal, scenario states and variables ---------------------

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|KB|MB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024**2, "KB": 1000, "MB": 1000**2}
VAR_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_size(value: object) -> int:
    """`64KiB`, `1MiB`, `500B` or a plain number of bytes -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (found := _SIZE.match(value)):
        return int(found.group(1)) * _SIZE_UNITS[found.group(2)]
    raise ValueError(f"{value!r} is not a size: write bytes like 65536, 64KiB or 1MiB")


Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _SIZE.pattern}]}
    ),
]


class JournalSpec(Strict):
    """How much a stub remembers of what it received (the newest entries are kept)."""

    max: int = Field(1000, ge=0, le=1_000_000, description="Entries kept; 0 keeps none.")
    body_max: Size = Field(
        64 * 1024, le=16 * 1024**2, description="Bytes of each body kept, e.g. 64KiB."
    )


class ScenarioStep(Strict):
    """A route that belongs to a scenario: it answers only `when` the scenario is in that
    state (any state if unset), and moves the scenario to `then` once it answered."""

    name: str = Field(min_length=1, max_length=100)
    when: str | None = Field(None, min_length=1, description="Required state; starts `Started`.")
    then: str | None = Field(None, min_length=1, description="The state after this route answered.")


def _check_vars(values: dict[str, Any]) -> dict[str, Any]:
    for key in values:
        if not re.fullmatch(VAR_NAME, key):
            raise ValueError(f"{key!r} is not a variable name (letters, digits and _)")
    return values


class Route(Strict):
    """A route answers with exactly one of response, responses (in turn), proxy or fault."""

    method: str = Field("*", description="HTTP method, or * for any.")
    path: str
    match: Match | None = None
    response: Response | None = None
    responses: list[Response] | None = Field(None, min_length=1)
    proxy: str | None = Field(None, description="Name of a service of this profile.")
    strip_prefix: str | None = Field(
        None, description="With proxy: remove this from the front of the path before forwarding."
    )
    fault: Fault | None = None
    scenario: ScenarioStep | None = None
    set_: dict[str, Any] = Field(
        default_factory=dict,
        alias="set",
        description="Service variables to set when this route answers; values may be templates.",
    )

    @field_validator("set_")
    @classmethod
    def _set_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_vars(value)

    add_prefix: str | None = Field(
        None, description="With proxy: put this in front of the path before forwarding."
    )

    @model_validator(mode="after")
    def _add_prefix(self) -> Route:
        check_add_prefix(self.add_prefix, self.proxy)
        return self

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        upper = value.upper()
        if upper != "*" and not re.fullmatch(r"[A-Z]+", upper):
            raise ValueError(f"{value!r} is not an HTTP method")
        return upper

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a route path must start with /")
        check_path_patterns(value)
        return value

    @model_validator(mode="after")
    def _one_action(self) -> Route:
        given = [k for k in ("response", "responses", "proxy", "fault") if getattr(self, k)]
        if len(given) != 1:
            what = " and ".join(given) if given else "none"
            raise ValueError(
                f"a route needs exactly one of response, responses, proxy or fault (got {what})"
            )
        if self.strip_prefix is not None:
            if self.proxy is None:
                raise ValueError("strip_prefix only goes with proxy")
            if not self.strip_prefix.startswith("/"):
                raise ValueError("strip_prefix must start with /")
        return self


class TcpRule(Strict):
    """When what the client sent matches `expect`, answer with `send` (or a fault)."""

    expect: str = Field(description="Regex over the bytes received so far (latin-1 text).")
    send: str | None = Field(None, description="Text to send; YAML escapes like \\r\\n work.")
    send_hex: str | None = Field(None, description="Bytes to send, as hex: 2b504f4e470d0a.")
    then: Literal["keep", "close"] = "keep"
    delay: Duration = 0.0
    fault: Fault | None = None

    @model_validator(mode="after")
    def _check(self) -> TcpRule:
        _compile(self.expect, "expect")
        if self.send is not None and self.send_hex is not None:
            raise ValueError("a rule has send or send_hex, not both")
        if self.send_hex is not None:
            _hex(self.send_hex, "send_hex")
        return self


def _hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"`{what}` is not hex bytes (like 2b504f4e470d0a)") from None


class TcpSpec(Strict):
    """Behaviour of a TCP stub: a banner on connect, rules in order, and a default."""

    banner: str | None = None
    banner_hex: str | None = None
    rules: list[TcpRule] = Field(default_factory=list)
    default: Literal["echo", "silent", "close"] = "echo"
    fault: Fault | None = Field(None, description="Apply this fault to every connection.")

    @model_validator(mode="after")
    def _check(self) -> TcpSpec:
        if self.banner is not None and self.banner_hex is not None:
            raise ValueError("a tcp service has banner or banner_hex, not both")
        if self.banner_hex is not None:
            _hex(self.banner_hex, "banner_hex")
        return self


class ServiceBase(Strict):
    """What every service has, whatever its kind."""

    description: str = ""
    address: Address = Field("auto", description="`auto` (from the pool), 127.x.y.z or ::1.")
    port: Port = Field("auto", description="1..65535, or `auto` for a port the kernel picks.")
    depends_on: list[str] = Field(default_factory=list)
    ready: Ready | None = None
    env: dict[str, str] = Field(default_factory=dict)


class HttpService(ServiceBase):
    """A stub HTTP service served in-process by aiohttp."""

    kind: Literal["http"]
    routes: list[Route] = Field(default_factory=list)
    journal: JournalSpec = Field(default_factory=JournalSpec)
    vars: dict[str, Any] = Field(
        default_factory=dict, description="Variables' values at start and after a reset."
    )

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_vars(value)

    # Service-wide stub options (checked in profile/stubs.py).
    max_body: ByteSize = Field(
        DEFAULT_MAX_BODY, description="Largest request body accepted (else 413), e.g. 10MiB."
    )
    tls: bool = Field(False, description="Serve HTTPS with a certificate of the sandbox's CA.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Headers added to every answer that lacks them."
    )
    cors: bool = Field(False, description="Answer CORS preflights; allow any origin.")
    pass_env: EnvNames = Field(
        default_factory=list,
        description="Variables of sandbox's environment that templates may read as env.NAME.",
    )
    log_requests: bool = Field(True, description="Write a line per request to the service's log.")


class TcpService(ServiceBase):
    """A stub TCP service served in-process by asyncio."""

    kind: Literal["tcp"]
    tcp: TcpSpec = Field(default_factory=TcpSpec)
    journal: JournalSpec = Field(default_factory=JournalSpec)
    log_requests: bool = Field(
        True, description="Write a line per connection and per chunk to the service's log."
    )


class CommandService(ServiceBase):
    """A real program, started in its own process group and supervised."""

    kind: Literal["command"]
    run: str = Field(min_length=1, description="Command line; {address} {port} {url} work.")
    cwd: str | None = Field(None, description="Working folder, relative to the profile.")
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGKILL"] = "SIGTERM"
    stop_timeout: Duration = 5.0
    restart: Literal["no", "on-failure"] = "no"
    max_restarts: int = Field(3, ge=0, le=100)
    port: Port | Literal["none"] = Field(  # type: ignore[assignment]
        "auto", description="As for every service, or `none` for a program that listens nowhere."
    )
    job: bool = Field(
        False, description="A one-shot task: done when it exits 0; dependents start after it."
    )
    tty: bool = Field(False, description="Give the program a pseudo-terminal for its output.")
    scheme: Literal["http", "https", "tcp"] | None = Field(
        None, description="What the program speaks, for its URL; `ready.http` implies http."
    )

    @model_validator(mode="before")
    @classmethod
    def _job_listens_nowhere(cls, data: Any) -> Any:
        # A job (a migration, a seed) listens nowhere unless it says otherwise.
        if isinstance(data, dict) and data.get("job") is True and "port" not in data:
            return {**data, "port": "none"}
        return data

    @model_validator(mode="after")
    def _portless(self) -> CommandService:
        ready = self.ready
        if self.port == "none" and ready is not None and (ready.http is not None or ready.tcp):
            raise ValueError("a service with `port: none` cannot be probed by http or tcp")
        if self.job and self.restart != "no":
            raise ValueError("a job runs once: `restart` cannot be on-failure")
        return self


Service = Annotated[HttpService | TcpService | CommandService, Field(discriminator="kind")]
ServiceName = Annotated[str, Field(pattern=NAME_PATTERN)]


class Profile(Strict):
    """A named set of services, each on its own loopback address."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    pool: ipaddress.IPv4Network | None = Field(
        None, description="Where `address: auto` draws from; a network inside 127.0.0.0/8."
    )
    services: dict[ServiceName, Service] = Field(min_length=1)

    _source: str | None = PrivateAttr(default=None)

    @field_validator("pool")
    @classmethod
    def _pool(cls, value: ipaddress.IPv4Network | None) -> ipaddress.IPv4Network | None:
        if value is not None and not value.subnet_of(ipaddress.IPv4Network("127.0.0.0/8")):
            raise ValueError(f"the pool {value} must lie inside 127.0.0.0/8 (loopback)")
        return value

    @property
    def source(self) -> str | None:
        """The file this profile was loaded from, if any."""
        return self._source

    def with_source(self, source: str | None) -> Profile:
        """Return this profile remembering the file it came from."""
        self._source = source
        return self
