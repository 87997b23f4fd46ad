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


class VerificationError(SandboxError, AssertionError):
    """A stub did not receive what a test expected; the message lists what it did receive
    and the nearest misses. An AssertionError, so pytest reports it as a failed assertion."""

    def __init__(self, message: str, verdict: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.verdict = verdict or {}
