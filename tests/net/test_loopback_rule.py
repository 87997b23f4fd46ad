"""The one loopback rule, as a table: every place that takes an address agrees with it."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import TypeAdapter, ValidationError

from sandbox.doctor import _is_loopback
from sandbox.errors import TargetError, UsageError
from sandbox.net.addresses import is_loopback, loopback_problem, parse_loopback
from sandbox.probe import probe_tcp
from sandbox.probe.targets import check_loopback
from sandbox.profile.models import Address
from sandbox.teach import holder
from sandbox.teach.ping import _loopback as ping_address

# address, is it loopback in fact, may a service / probe / ping use it, what the refusal says
TABLE = [
    ("127.0.0.1", True, True, None),
    ("127.0.0.2", True, True, None),
    ("127.1.2.3", True, True, None),
    ("127.255.255.254", True, True, None),
    ("::1", True, True, None),
    ("127.255.255.255", True, False, "ENETUNREACH"),
    ("::ffff:127.0.0.1", True, False, "write it as 127.0.0.1"),
    ("::ffff:127.9.9.9", True, False, "write it as 127.9.9.9"),
    ("0.0.0.0", False, False, "wildcard"),
    ("::", False, False, "wildcard"),
    ("::ffff:0.0.0.0", False, False, "wildcard"),
    ("10.0.0.1", False, False, "not a loopback address"),
    ("128.0.0.1", False, False, "not a loopback address"),
    ("126.255.255.255", False, False, "not a loopback address"),
    ("::2", False, False, "not a loopback address"),
    ("fe80::1", False, False, "not a loopback address"),
    ("::ffff:10.0.0.1", False, False, "not a loopback address"),
]
IDS = [row[0] for row in TABLE]


@pytest.mark.parametrize(("text", "loopback", "usable", "says"), TABLE, ids=IDS)
def test_the_rule(text: str, loopback: bool, usable: bool, says: str | None) -> None:
    addr = ipaddress.ip_address(text)
    assert is_loopback(addr) is loopback
    assert _is_loopback(text) is loopback  # doctor judges what localhost resolves to
    problem = loopback_problem(addr)
    if usable:
        assert problem is None
    else:
        assert problem is not None
        assert says is not None
        assert says in problem


@pytest.mark.parametrize(("text", "loopback", "usable", "says"), TABLE, ids=IDS)
async def test_every_consumer_agrees(
    text: str, loopback: bool, usable: bool, says: str | None
) -> None:
    consumers = {
        "parse_loopback": lambda: parse_loopback(text),
        "profile address": lambda: TypeAdapter(Address).validate_python(text),
        "probe target": lambda: check_loopback(text),
        "ping": lambda: ping_address(text),
        "holder": lambda: holder.parse([text, "8080"]),
    }
    refused = (ValueError, ValidationError, TargetError, UsageError)
    for name, use in consumers.items():
        if usable:
            use()
        else:
            with pytest.raises(refused) as caught:
                use()
            assert says is not None
            assert says in str(caught.value), name
    # The probe core refuses before any connect; a usable address gets a real (refused) try.
    if not usable:
        with pytest.raises(ValueError, match=says):
            await probe_tcp(text, 9, timeout=0.5)
