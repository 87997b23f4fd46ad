"""Helpers every test shares: is an address listening, is a process gone."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from sandbox.net.table import read_table


def listening(address: str) -> list[int]:
    """The TCP ports something listens on at exactly `address`, from the socket table."""
    want = ipaddress.ip_address(address)
    return [x.port for x in read_table(protocols=("tcp",)) if x.address == want]


def gone(pid: int) -> bool:
    """No such process, or only its zombie (a reaper that never reaps is no survivor: the
    container's init may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")
