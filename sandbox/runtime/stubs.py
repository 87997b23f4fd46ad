"""The stubs of a running sandbox, and what tests ask of them (journal, verify, reset, state),
as JSON documents: the control API serves these, the in-process Python API calls them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from sandbox.errors import UsageError
from sandbox.runtime.verify import Expectation, verify
from sandbox.services.context import StubServer
from sandbox.services.journal import Entry, select


def loopback_only(address: str) -> str:
    """`address` if it is a loopback literal (where the control API may listen), else
    UsageError: nothing the sandbox opens may be reachable from another machine."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return address
    except ValueError:
        pass
    raise UsageError(f"the control API listens only on a loopback address, not {address!r}.")


class UnknownStub(UsageError):
    """A service name that is not one of the sandbox's stubs."""


class StubRegistry:
    """Every HTTP and TCP stub of one sandbox, by service name. Use it from the sandbox's loop."""

    def __init__(self, sandbox: str) -> None:
        self.sandbox = sandbox
        self.stubs: dict[str, StubServer] = {}

    def add(self, stub: StubServer) -> None:
        self.stubs[stub.name] = stub

    def get(self, service: str) -> StubServer:
        """The stub of `service`. Raises UsageError naming the stubs there are."""
        try:
            return self.stubs[service]
        except KeyError:
            known = ", ".join(sorted(self.stubs)) or "none"
            raise UnknownStub(
                f'sandbox "{self.sandbox}" has no stub named "{service}" (stubs: {known}).',
                hint="Only http and tcp services keep a journal; command services are programs.",
            ) from None

    def _chosen(self, service: str | None) -> list[StubServer]:
        return [self.get(service)] if service else list(self.stubs.values())

    def entries(
        self,
        service: str | None = None,
        *,
        method: str | None = None,
        path: str | None = None,
        since: int = 0,
    ) -> list[Entry]:
        """Journal entries of one service (or all), oldest first, numbered above `since`."""
        found = [
            entry
            for stub in self._chosen(service)
            for entry in select(stub.journal, method=method, path=path, since=since)
        ]
        return sorted(found, key=lambda e: e.seq)

    def journal_json(self, query: Mapping[str, str]) -> dict[str, Any]:
        """GET /journal: `{"entries": [...], "last": N}`; `last` is the highest number
        handed out so far, to pass as `since` next time."""
        since = query.get("since", "0")
        if not since.isdigit():
            raise UsageError(f"`since` is an entry number, not {since!r}.")
        entries = self.entries(
            query.get("service") or None,
            method=query.get("method") or None,
            path=query.get("path") or None,
            since=int(since),
        )
        last = max((e.seq for stub in self.stubs.values() for e in stub.journal), default=0)
        return {"entries": [e.to_json() for e in entries], "last": max(last, int(since))}

    def verify_json(self, document: Any) -> dict[str, Any]:
        """POST /verify: the verdict as JSON (its `ok` says whether the expectation held)."""
        expect = Expectation.from_json(document)
        return verify(expect, self.entries(expect.service)).to_json()

    def reset(self, service: str | None = None) -> list[str]:
        """Forget journals and put scenario states and variables back; the names reset."""
        chosen = self._chosen(service)
        for stub in chosen:
            stub.reset()
        return [stub.name for stub in chosen]

    def state_json(self, service: str | None = None) -> dict[str, Any]:
        """GET /state: `{service: {"scenarios": {...}, "vars": {...}}}` for stubs with state."""
        return {
            stub.name: stub.state.to_json()
            for stub in self._chosen(service)
            if stub.state is not None
        }

    def put_state(self, service: str, document: Any) -> dict[str, Any]:
        """PUT /state/SERVICE: replace the scenarios and/or vars given; the new state."""
        state = self.get(service).state
        if state is None:
            raise UsageError(f'"{service}" is a tcp stub: it keeps no scenarios or variables.')
        if not isinstance(document, dict) or set(document) - {"scenarios", "vars"}:
            raise UsageError('the state is a JSON object with "scenarios" and/or "vars".')
        scenarios, variables = document.get("scenarios"), document.get("vars")
        if scenarios is not None and not (
            isinstance(scenarios, dict) and all(isinstance(v, str) for v in scenarios.values())
        ):
            raise UsageError('"scenarios" maps each scenario name to its state (text).')
        if variables is not None and not isinstance(variables, dict):
            raise UsageError('"vars" is a JSON object of variable names and values.')
        state.replace(scenarios=scenarios, vars=variables)
        return state.to_json()

    def ask(self, op: str, args: Mapping[str, Any]) -> Any:
        """One operation of the Python API, as the control API would answer it."""
        if op == "journal":
            return self.journal_json({k: str(v) for k, v in args.items() if v is not None})
        if op == "verify":
            return self.verify_json(dict(args))
        if op == "reset":
            return {"reset": self.reset(args.get("service"))}
        if op == "state":
            return self.state_json(args.get("service"))
        if op == "put_state":
            return self.put_state(str(args["service"]), args["state"])
        raise ValueError(f"unknown operation {op!r}")
