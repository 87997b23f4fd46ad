"""What a test asks of a sandbox's stubs, in Python: `requests`, `verify`, `reset`, `state`.

One surface for every way of holding a sandbox: in the same loop (`Sandbox`), from another
thread (`RunningSandbox`), or in another process through the control API (`attach`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.errors import VerificationError
from sandbox.runtime.verify import Expectation
from sandbox.services.journal import Entry


class StubAccess:
    """Mixin: the stub operations, built on `_ask(op, args)` returning the control API's JSON."""

    def _ask(self, op: str, args: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def requests(
        self,
        service: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        since: int = 0,
    ) -> tuple[Entry, ...]:
        """What `service` (or every stub) received, oldest first, as frozen entries; narrowed
        by `method` (any case), exact `path` (without the query) and entry number `since`.

        Raises UsageError for a service that is not a stub of the sandbox.
        """
        args = {"service": service, "method": method, "path": path, "since": since}
        document = self._ask("journal", args)
        return tuple(Entry.from_json(entry) for entry in document["entries"])

    def verify(
        self,
        service: str,
        *,
        method: str | None = None,
        path: str | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        body: str | None = None,
        times: int | None = None,
        at_least: int | None = None,
        at_most: int | None = None,
    ) -> int:
        """Check that `service` received the requests described (`headers` and `body` are
        regexes) `times` times, or `at_least` / `at_most`; at least once by default.

        Returns how many it received. Raises VerificationError (an AssertionError) whose
        message lists what the service received and the nearest misses.
        """
        __tracebackhide__ = True  # pytest shows the test's line, not this one
        expect = Expectation(
            service=service,
            method=method,
            path=path,
            query=dict(query or {}),
            headers=dict(headers or {}),
            body=body,
            times=times,
            at_least=at_least,
            at_most=at_most,
        )
        verdict = self._ask("verify", expect.to_json())
        if not verdict["ok"]:
            raise VerificationError(str(verdict["message"]), verdict)
        return int(verdict["count"])

    def reset(self, service: str | None = None) -> list[str]:
        """Forget the journal of `service` (or every stub) and put its scenario states and
        variables back to their start; returns the services reset."""
        return list(self._ask("reset", {"service": service})["reset"])

    def state(self, service: str) -> dict[str, Any]:
        """`{"scenarios": {name: state}, "vars": {name: value}}` of an http stub."""
        return dict(self._ask("state", {"service": service}).get(service, {}))

    def set_state(
        self,
        service: str,
        *,
        scenarios: Mapping[str, str] | None = None,
        vars: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Replace the scenario states and/or the variables of an http stub; the new state."""
        state: dict[str, Any] = {}
        if scenarios is not None:
            state["scenarios"] = dict(scenarios)
        if vars is not None:
            state["vars"] = dict(vars)
        return dict(self._ask("put_state", {"service": service, "state": state}))
