"""Conflict advice for every kind of holder agrees with the rules and with what the plan does."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox.net.conflicts import blockers, is_free, moves_that_help
from sandbox.net.listeners import Listener, Owner
from sandbox.plan import make_plan
from sandbox.profile.loader import load_profile_data

ip = ipaddress.ip_address
OWNER = Owner(4127, "postgres", "postgres -D /var/lib/pg", "postgres")
PORT = 5432

# (holder address, its IPV6_V6ONLY, the service's address): every rule of net/conflicts.py.
HOLDERS = [
    ("127.30.0.1", None, "127.30.0.1"),  # exact, IPv4
    ("::1", None, "::1"),  # exact, the only IPv6 loopback address
    ("::ffff:127.30.0.1", None, "127.30.0.1"),  # mapped
    ("0.0.0.0", None, "127.30.0.1"),  # wildcard, IPv4
    ("::ffff:0.0.0.0", None, "127.30.0.1"),  # wildcard, IPv4 through an IPv6 socket
    ("::", True, "::1"),  # wildcard, IPv6 only
    ("::", False, "::1"),  # wildcard, dual-stack, for an IPv6 service
    ("::", False, "127.30.0.1"),  # dual-stack, for an IPv4 service
]


@pytest.mark.parametrize(("held", "v6only", "service"), HOLDERS)
def test_every_way_out_offered_works(held: str, v6only: bool | None, service: str) -> None:
    table = [Listener(ip(held), PORT, "tcp", OWNER, v6only)]
    (blocker,) = blockers(ip(service), PORT, table)
    fix = blocker.fix
    moves = moves_that_help(ip(service), [blocker.rule])
    profile = load_profile_data(
        {
            "name": "shop",
            "pool": "127.30.0.0/24",
            "services": {"db": {"kind": "tcp", "address": service, "port": PORT}},
        }
    )
    for strategy in ("next-address", "next-port"):
        plan = make_plan(profile, table, on_conflict=strategy)
        works = bool(plan.moves) and not plan.conflicts
        # Advice names a strategy exactly when the plan can move the service with it.
        assert (f"--on-conflict {strategy}" in fix) == works, (strategy, fix)
        assert (strategy in moves) == works, (strategy, moves)
    others_v4 = is_free(ip("127.30.0.99"), PORT, table)
    v6 = is_free(ip("::1"), PORT, table)
    if "another 127.x address cannot help" in fix or "another address cannot help" in fix:
        assert not others_v4
    if "(::1 can" in fix:
        assert v6
    if "and on ::1" in fix:
        assert not v6
    if "only a 127.x address in the profile" in fix or "or to a 127.x address" in fix:
        assert others_v4
