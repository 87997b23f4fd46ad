"""The error tree and exit codes: library code raises these, only the CLI turns them into exits."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Documented exit codes of every `sandbox` command."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    INVALID_PROFILE = 3
    CONFLICT = 4
    NOT_READY = 5
    TEARDOWN_INCOMPLETE = 6
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # stdout's reader went away (`sandbox ports | head`), as for SIGPIPE
    TERMINATED = 143  # a foreground `up` stopped by SIGTERM, as a shell reports it


class SandboxError(Exception):
    """An expected problem: `message` is a full sentence, `hint` says what to do about it."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class UsageError(SandboxError):
    """The command line or an argument is wrong (a bad target, an unknown name)."""

    exit_code = ExitCode.USAGE


class ProfileNotFound(UsageError):
    """No profile of that name or path could be found."""


class ProfileError(SandboxError):
    """A profile failed to load: every problem, each with FILE:LINE:COL and a field path."""

    exit_code = ExitCode.INVALID_PROFILE

    def __init__(self, source: str, problems: list[str]) -> None:
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source} is not a valid profile ({count} {noun}).")
        self.source = source
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  {p}" for p in self.problems)])


class ConflictError(SandboxError):
    """An address:port the sandbox needs is taken, or the sandbox is already running."""

    exit_code = ExitCode.CONFLICT


class BindError(ConflictError):
    """Binding a service's socket failed; the message says why (in use, not available, denied)."""

    def __init__(self, message: str, hint: str | None = None, *, errno: int | None = None) -> None:
        super().__init__(message, hint)
        self.errno = errno


class NotReadyError(SandboxError):
    """A service did not become ready before its deadline, or exited first."""

    exit_code = ExitCode.NOT_READY


class TeardownError(SandboxError):
    """`down` finished but something survived: a listener still answers or a process lives."""

    exit_code = ExitCode.TEARDOWN_INCOMPLETE


class StateError(SandboxError):
    """The state directory or a state record is unusable."""


class TargetError(UsageError, ValueError):
    """A probe target that cannot be probed; the message says why and how to write it."""

    def __init__(
        self,
        message: str,
        hint: str | None = "write HOST:PORT, [::1]:PORT or http://HOST:PORT/PATH.",
    ) -> None:
        super().__init__(message, hint)


class ResolveError(UsageError, ValueError):
    """A name did not resolve; `state` is "unresolved", or "timeout" when resolving was too slow."""

    def __init__(self, message: str, hint: str | None, state: str = "unresolved") -> None:
        super().__init__(message, hint)
        self.state = state


class HostsFileError(SandboxError):
    """A hosts file could not be read or rewritten, or its sandbox block is damaged."""


class PingUnavailable(SandboxError):
    """No ICMP socket may be opened here (or sending failed); the message says why, the hint
    what to change."""


class StubConfigError(SandboxError):
    """A stub's routes cannot be built: a bad path pattern or template syntax."""

    exit_code = ExitCode.INVALID_PROFILE


class CommandConfigError(SandboxError):
    """A command service's `run`, `env` or `cwd` cannot be used as written."""

    exit_code = ExitCode.INVALID_PROFILE


class SourceError(SandboxError):
    """A file given to `import` or `export` cannot be read as its format; names file and place.

    Missing, not a regular file, over the size limit, or not valid in its format: like an
    invalid profile, this is bad input in a file, so it shares that exit code.
    """

    exit_code = ExitCode.INVALID_PROFILE


class StrictError(SandboxError):
    """`--strict` and an import or export lost something: every loss is named, nothing written."""

    exit_code = ExitCode.INVALID_PROFILE


class ContainerModeError(UsageError):
    """`--container-listen` outside a container: it would listen beyond loopback."""


class VerificationError(SandboxError, AssertionError):
    """A stub did not receive what a test expected; the message lists what it did receive
    and the nearest misses. An AssertionError, so pytest reports it as a failed assertion."""

    verdict: dict[str, object] | None = None  # the control API's verdict, when there is one

    def __init__(self, message: str, verdict: dict[str, object] | None = None) -> None:
        super().__init__(message)
        if verdict is not None:  # unset otherwise, so the error crosses a pipe unchanged
            self.verdict = verdict


class ReloadRefused(UsageError):
    """A profile edit cannot be applied while the sandbox runs: it needs a re-bind or restart."""


# -- across a pipe ----------------------------------------------------------------------------
# The detached supervisor reports the error it stopped with as one JSON line; the CLI side
# rebuilds the same class, so `except ConflictError` and the exit code hold across processes.

_JSONABLE = (str, int, float, bool, type(None))


def error_to_json(exc: SandboxError) -> dict[str, object]:
    """The error as JSON: its class name, sentence, hint, exit code and its own fields."""
    fields = {
        key: value
        for key, value in vars(exc).items()
        if key not in ("message", "hint", "exit_code") and _plain(value)
    }
    return {
        "error": type(exc).__name__,
        "message": exc.message,
        "hint": exc.hint,
        "exit_code": int(exc.exit_code),
        "fields": fields,
    }


def error_from_json(data: dict[str, object]) -> SandboxError:
    """Rebuild an error from `error_to_json`; an unknown class becomes a SandboxError with
    the same message, hint and exit code."""
    cls = _error_classes().get(str(data.get("error")), SandboxError)
    exc = cls.__new__(cls)
    message = str(data.get("message", ""))
    Exception.__init__(exc, message)
    exc.message = message
    hint = data.get("hint")
    exc.hint = None if hint is None else str(hint)
    fields = data.get("fields")
    if isinstance(fields, dict):
        for key, value in fields.items():
            setattr(exc, str(key), value)
    code = data.get("exit_code")
    if isinstance(code, int) and code != int(cls.exit_code):
        try:
            exc.exit_code = ExitCode(code)
        except ValueError:
            exc.exit_code = ExitCode.UNEXPECTED
    return exc


def _plain(value: object) -> bool:
    if isinstance(value, _JSONABLE):
        return True
    return isinstance(value, list | tuple) and all(isinstance(v, _JSONABLE) for v in value)


def _error_classes() -> dict[str, type[SandboxError]]:
    found: dict[str, type[SandboxError]] = {}
    pending: list[type[SandboxError]] = [SandboxError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found
