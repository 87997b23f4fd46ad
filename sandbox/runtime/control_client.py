"""A client of the control API (stdlib only): how the Python API and `sandbox requests` reach
the stubs of a sandbox that runs in another process."""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

from sandbox.errors import SandboxError, UsageError
from sandbox.runtime.state import SandboxRecord, ServiceRecord
from sandbox.runtime.stub_access import StubAccess

TIMEOUT = 10.0  # seconds for one call; the API answers from memory, so this only bounds a hang


class ControlClient(StubAccess):
    """The stub operations of a sandbox, over its control API at `url`."""

    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.hostname is None or parts.port is None:
            raise UsageError(f"{url!r} is not a control API URL (http://127.0.0.1:PORT).")
        self.control_url = url
        self._host, self._port = parts.hostname, parts.port
        self._base = parts.path.rstrip("/")  # the API's secret path
        self._timeout = timeout

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request; (status, JSON document). Raises SandboxError if nothing answers."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, self._base + path, body=payload, headers=headers)
            response = conn.getresponse()
            status, text = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise SandboxError(
                f"the control API at {self.control_url} does not answer ({exc}).",
                hint="Is the sandbox still running? `sandbox status` says.",
            ) from None
        finally:
            conn.close()
        try:
            return status, json.loads(text)
        except ValueError:
            raise SandboxError(
                f"the control API at {self.control_url} answered {status} without JSON."
            ) from None

    def _ask(self, op: str, args: Mapping[str, Any]) -> Any:
        if op == "journal":
            query = urlencode({k: v for k, v in args.items() if v not in (None, "")})
            status, document = self.call("GET", "/journal" + (f"?{query}" if query else ""))
        elif op == "verify":
            status, document = self.call("POST", "/verify", dict(args))
            if status == 409:  # the verdict of a failed verification
                return document
        elif op == "reset":
            service = args.get("service")
            status, document = self.call("POST", "/reset", {"service": service} if service else {})
        elif op == "state":
            status, document = self.call("GET", f"/state/{args['service']}")
        elif op == "put_state":
            status, document = self.call("PUT", f"/state/{args['service']}", args["state"])
        else:
            raise ValueError(f"unknown operation {op!r}")
        if status in (400, 404):
            raise UsageError(str(document.get("error")), document.get("hint"))
        if status != 200:
            raise SandboxError(
                f"the control API at {self.control_url} answered {status}: {document}."
            )
        return document


class AttachedSandbox(ControlClient):
    """A sandbox running in another process (`sandbox up -d`), found through its record."""

    def __init__(self, record: SandboxRecord, *, timeout: float = TIMEOUT) -> None:
        if record.control is None:
            raise SandboxError(
                f'sandbox "{record.name}" has no control API (it was started without one, '
                "or by an older version of sandbox).",
                hint=f"Restart it: `sandbox down {record.name}`, then `sandbox up`.",
            )
        super().__init__(record.control, timeout=timeout)
        self.record = record

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.record.services]

    def url(self, service: str) -> str:
        return self._service(service).url

    def address(self, service: str) -> str:
        return self._service(service).address

    def port(self, service: str) -> int:
        return self._service(service).port

    def _service(self, service: str) -> ServiceRecord:
        found = self.record.service(service)
        if found is None:
            known = ", ".join(self.services) or "none"
            raise UsageError(
                f'sandbox "{self.name}" has no service "{service}" (services: {known}).'
            )
        return found
