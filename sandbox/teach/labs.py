"""`sandbox lab`: small, named, reversible situations to practise on, each a bundled profile
run detached as the sandbox `lab-NAME`, with instructions filled in from what really started."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sandbox.errors import ConflictError, ExitCode, SandboxError, UsageError
from sandbox.runtime.teardown import DownReport

WAIT_TIMEOUT = 10.0  # seconds a lab's services may take to be ready
Facts = Callable[[dict[str, Any]], dict[str, object]]


@dataclass(frozen=True)
class Lab:
    """One lab: its name, what it shows, the bundled profile it runs and how to read it."""

    name: str
    title: str
    facts: Facts | None = None  # extra values for the instructions, read from the machine

    @property
    def sandbox(self) -> str:
        return f"lab-{self.name}"

    @property
    def profile(self) -> str:
        return f"lab-{self.name}"


def _holder_facts(status: dict[str, Any]) -> dict[str, object]:
    """Who holds the port, as `plan` will name it: the socket table's owner of the listener."""
    from sandbox.net.table import read_table

    service = status["services"][0]
    want = (ipaddress.ip_address(service["address"]), service["port"])
    owners = [x.owner for x in read_table(protocols=("tcp",)) if (x.address, x.port) == want]
    owner = owners[0] if owners else None
    return {"command": (owner.cmdline or owner.name) if owner else None}


def _localhost_facts(status: dict[str, Any]) -> dict[str, object]:
    """What this machine's resolver and hosts file say `localhost` is (doctor's own checks)."""
    from sandbox.doctor import check_hosts_file, check_localhost

    resolved = check_localhost().facts
    hosts = check_hosts_file(Path("/etc/hosts")).facts.get("lines")
    addresses = [str(a) for a in _items(resolved.get("addresses"))]
    port = int(status["services"][0]["port"])
    return {
        "localhost_resolves_to": addresses,
        "hosts_lines": [str(line["text"]) for line in _items(hosts) if isinstance(line, dict)],
        "localhost_case": localhost_case(addresses, port, resolved.get("error")),
    }


def _items(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


# The instructions of each lab, filled in with str.format_map: `{SERVICE.hostport}` and the
# other fields of each service's status (address, port, url, pid), and the lab's facts.
INSTRUCTIONS = {
    "port-taken": """
A plain program, not one of sandbox's stubs, now listens on {holder.hostport}: exactly
where web-db-api puts its `api` service. It is pid {holder.pid}, started as
  {command}
To `sandbox plan` it is what any program holding a port is: a pid and a command line.

See it:
  sandbox plan web-db-api           # the conflict, naming pid {holder.pid} and its command line
  sandbox ports                     # the same listener in the socket table
  sandbox explain {holder.hostport}   # the rule that blocks it, and the ways out
  sandbox probe {holder.hostport}     # open: something answers (so does `nc` to it)

Resolve it, three ways:
  1. Stop the holder (for a program of your own: `kill {holder.pid}`):
       sandbox lab stop port-taken
  2. Move api to another address of 127/8, on the same port:
       sandbox up web-db-api -d --on-conflict next-address
  3. Keep api's address, take the next free port:
       sandbox up web-db-api -d --on-conflict next-port
""",
    "same-port": """
Two services both want port {blue.port}, and both have it, each on its own address:
  blue   {blue.url}
  green  {green.url}
A port belongs to an address, not to the machine: {blue.hostport} and {green.hostport}
are two endpoints. Only a program asking for one of these exact pairs, or for
0.0.0.0:{blue.port} (every address at once), would clash with them.

Try:
  sandbox probe {blue.hostport} {green.hostport}   # both open
  curl {blue.url}/                  # blue answers; {green.url}/ is green
  sandbox ports                     # two listeners on one port, one address each
  sandbox explain {blue.hostport}   # taken: a third service needs an address of its own
""",
    "localhost": """
A server listens on {server.hostport} (IPv4) and nowhere else: nothing listens on
[::1]:{server.port}. `localhost` is a name, not an address: the hosts file and the resolver
decide what it means, and in which order a client tries the answers.

On this machine, {localhost_case}

Try:
  sandbox probe localhost:{server.port}     # every address localhost resolves to, in order
  sandbox probe {server.hostport}    # open
  sandbox probe [::1]:{server.port}        # refused: what a client that picks ::1 sees
  sandbox doctor                    # what localhost resolves to; the hosts file's lines
In a URL an IPv6 address needs brackets, http://[::1]:{server.port}/, since in ::1:{server.port}
the port would read as part of the address.
""",
    "one-address": """
A database stand-in listens on {db.hostport} and on no other address. Every address of
127.0.0.0/8 is this machine, but a socket bound to one address answers only there.

Try:
  sandbox probe {db.hostport}     # open (`nc {db.address} {db.port}`, then type PING)
  sandbox probe 127.40.0.8:{db.port}     # refused, and who listens on port {db.port} elsewhere
  sandbox probe localhost:{db.port}      # refused: localhost is 127.0.0.1, not "any 127"
"Connection refused" is an answer, and a fast one: the machine is there and nothing
listens on that address:port. A timeout would mean no answer at all (a firewall, or an
address that is not there).
""",
}


def localhost_case(addresses: list[str], port: int, error: object = None) -> str:
    """One sentence: which of the usual cases this machine is, for the `localhost` lab."""
    if not addresses:
        return f"localhost does not resolve ({error or 'no address'}): use literal addresses."
    order = " then ".join(addresses)
    if addresses == ["127.0.0.1"]:
        return (
            f"localhost resolves to 127.0.0.1 only, so a client reaches this server by name. "
            f"Where the hosts file also says `::1 localhost` (most distributions, macOS), a "
            f"client that tries ::1 first and does not fall back (Node.js 17 to 19, BusyBox "
            f"wget) gets 'connection refused' from [::1]:{port} while the server runs."
        )
    if addresses[0] == "::1" and "127.0.0.1" in addresses:
        return (
            f"localhost resolves to {order}: a client that tries only the first address gets "
            f"'connection refused' from [::1]:{port} while the server runs; one that falls "
            f"back (curl, browsers) reaches 127.0.0.1:{port} one refused attempt later."
        )
    if "127.0.0.1" in addresses:
        return (
            f"localhost resolves to {order}: clients reach this server by name, trying "
            f"127.0.0.1 first; a server on [::1] only would be the one reached late or never."
        )
    return (
        f"localhost resolves to {order}, not to 127.0.0.1: no client reaches this server "
        f"by the name localhost; use http://127.0.0.1:{port}/."
    )


LABS: dict[str, Lab] = {
    lab.name: lab
    for lab in (
        Lab("port-taken", "a foreign program holds the port web-db-api wants", _holder_facts),
        Lab("same-port", "two services, one port: each gets its own address"),
        Lab("localhost", "a server on 127.0.0.1 that a client looks for on ::1", _localhost_facts),
        Lab("one-address", "a service that answers on one address of 127/8 only"),
    )
}


def get_lab(name: str) -> Lab:
    """The lab called `name`. Raises UsageError (exit 2) listing the labs for any other name."""
    if name not in LABS:
        raise UsageError(
            f'There is no lab "{name}"; the labs are: {", ".join(LABS)}.',
            "`sandbox lab list` shows what each one is about.",
        )
    return LABS[name]


@dataclass(frozen=True)
class LabStatus:
    """A started lab: its sandbox's status, the facts read from the machine, the instructions."""

    lab: Lab
    status: dict[str, Any]
    facts: dict[str, object] = field(default_factory=dict)

    @property
    def instructions(self) -> str:
        services = {s["name"]: _service_values(s) for s in self.status["services"]}
        text = INSTRUCTIONS[self.lab.name].format_map({**services, **self.facts}).strip()
        return _align_comments(text)

    def to_json(self) -> dict[str, object]:
        return {
            "lab": self.lab.name,
            "title": self.lab.title,
            "sandbox": self.lab.sandbox,
            "status": self.status,
            "facts": self.facts,
            "instructions": self.instructions,
        }


_COMMENTED = re.compile(r"^  (\S.*?)\s+# (.*)$")
_COMMENT_COLUMN = 36  # at most; a longer command keeps its comment two spaces after it


def _align_comments(text: str) -> str:
    """Line up the `# ...` of each run of indented command lines, once values are filled in;
    wrap the prose at 90 columns."""
    out: list[str] = []
    run: list[tuple[str, str]] = []

    def flush() -> None:
        width = max((len(cmd) for cmd, _ in run if len(cmd) < _COMMENT_COLUMN), default=0)
        out.extend(f"  {cmd.ljust(width)}  # {note}" for cmd, note in run)
        run.clear()

    for line in text.splitlines():
        found = _COMMENTED.match(line)
        if found:
            run.append((found.group(1), found.group(2)))
            continue
        flush()
        if line.startswith(" "):  # commands and command lines stay whole, to be copied
            out.append(line)
        else:
            out.extend(textwrap.wrap(line, 90, break_on_hyphens=False) or [""])
    flush()
    return "\n".join(out)


def _service_values(service: Mapping[str, Any]) -> SimpleNamespace:
    from sandbox.net.addresses import format_hostport

    return SimpleNamespace(**service, hostport=format_hostport(service["address"], service["port"]))


@dataclass(frozen=True)
class LabEntry:
    """A line of `lab list`: a lab, the endpoints it uses, and whether it runs now."""

    lab: Lab
    endpoints: tuple[str, ...]
    state: str  # "running", "stale" (its supervisor died) or "stopped"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.lab.name,
            "title": self.lab.title,
            "sandbox": self.lab.sandbox,
            "profile": self.lab.profile,
            "endpoints": list(self.endpoints),
            "state": self.state,
        }


def _profile_path(lab: Lab) -> Path:
    from sandbox.profile.loader import bundled_dir

    return bundled_dir() / f"{lab.profile}.yaml"


def start_lab(name: str, state_root: Path, *, wait_timeout: float = WAIT_TIMEOUT) -> LabStatus:
    """Run the lab's bundled profile detached as the sandbox `lab-NAME`; return its status.

    Raises UsageError for an unknown lab, ConflictError (exit 4, with the owner and the way
    out) when one of its fixed address:ports is taken or the lab already runs, NotReadyError
    when a service did not get ready. Leaves the lab running (recorded like any sandbox) only
    when it returns; on an error nothing of it is left.
    """
    from sandbox.profile.loader import load_profile
    from sandbox.runtime.manage import up_detached

    lab = get_lab(name)
    profile = load_profile(_profile_path(lab))
    if _state(lab, state_root) == "running":
        raise ConflictError(
            f"lab {lab.name} is already running (as the sandbox {lab.sandbox}).",
            f"`sandbox status {lab.sandbox}` shows it; `sandbox lab stop {lab.name}` stops it.",
        )
    try:
        status = up_detached(
            profile,
            name=lab.sandbox,
            state_root=state_root,
            on_conflict="fail",
            wait_timeout=wait_timeout,
        )
    except SandboxError as exc:
        if exc.exit_code != ExitCode.CONFLICT:
            raise
        # The usual explanation stands; only the way out differs: a lab cannot move.
        raise ConflictError(
            exc.message,
            f"Nothing was started. A lab keeps its documented address:ports (`sandbox lab "
            f"list`), so free them first: stop the process named above, then run "
            f"`sandbox lab start {lab.name}` again.",
        ) from None
    facts = lab.facts(status) if lab.facts else {}
    return LabStatus(lab, status, facts)


def stop_lab(name: str, state_root: Path, *, grace: float = 5.0) -> DownReport:
    """Stop the sandbox `lab-NAME` like `sandbox down` does, verifying every port refuses.

    Returns the report; one with nothing stopped when the lab was not running. Raises
    UsageError for an unknown lab. Leaves the record in place only if something survived.
    """
    from sandbox.runtime.manage import down_many

    lab = get_lab(name)
    reports = asyncio.run(down_many(state_root, lab.sandbox, grace=grace))
    return reports[0] if reports else DownReport(name=lab.sandbox, supervisor_was_alive=False)


def list_labs(state_root: Path) -> list[LabEntry]:
    """Every lab, with its fixed endpoints and whether it runs in `state_root` now."""
    from sandbox.net.addresses import format_hostport
    from sandbox.profile.loader import load_profile

    entries = []
    for lab in LABS.values():
        profile = load_profile(_profile_path(lab))
        endpoints = tuple(
            format_hostport(s.address, int(s.port)) for s in profile.services.values()
        )
        entries.append(LabEntry(lab, endpoints, _state(lab, state_root)))
    return entries


def _state(lab: Lab, state_root: Path) -> str:
    """`running`, `stale` (recorded, but its supervisor died) or `stopped` (no record)."""
    from sandbox.proc.processes import is_alive
    from sandbox.runtime.state import StateDir

    try:
        record = StateDir(state_root, lab.sandbox).read()
    except SandboxError:
        return "stale"
    if record is None:
        return "stopped"
    alive = record.supervisor is not None and is_alive(record.supervisor)
    return "running" if alive else "stale"
