"""make_plan over hand-built socket tables: addresses, conflicts, and what --on-conflict moves."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from sandbox.net.listeners import Listener, Owner
from sandbox.plan import make_plan
from sandbox.profile.loader import load_profile, load_profile_data
from sandbox.profile.models import Profile

POSTGRES = Owner(pid=4127, name="postgres", cmdline="postgres -D /var/lib/pg", user="postgres")


def _profile(**services: dict[str, Any]) -> Profile:
    return load_profile_data({"name": "shop", "pool": "127.30.0.0/24", "services": services})


def _listen(address: str, port: int, owner: Owner | None = POSTGRES) -> Listener:
    return Listener(ipaddress.ip_address(address), port, "tcp", owner)


def test_auto_addresses_are_distinct_stable_and_in_declaration_order() -> None:
    profile = _profile(
        web={"kind": "http", "port": 8080, "depends_on": ["api"]},
        api={"kind": "http", "port": 8080},
        db={"kind": "tcp", "port": 5432},
    )
    first = make_plan(profile)
    again = make_plan(profile)
    addresses = {s.name: str(s.address) for s in first.services}
    assert addresses == {s.name: str(s.address) for s in again.services}
    assert addresses == {"web": "127.30.0.1", "api": "127.30.0.2", "db": "127.30.0.3"}
    assert [s.name for s in first.services].index("api") < [s.name for s in first.services].index(
        "web"
    ), "start order follows depends_on"
    assert first.ok


def test_default_pool_never_hands_out_127_0_0_1() -> None:
    profile = load_profile_data({"name": "x", "services": {"a": {"kind": "tcp"}}})
    plan = make_plan(profile)
    assert str(plan.services[0].address) != "127.0.0.1"
    assert plan.services[0].address in plan.pool


def test_literal_addresses_are_kept_and_skipped_by_the_pool() -> None:
    profile = _profile(
        a={"kind": "tcp", "address": "127.30.0.1", "port": 1000},
        b={"kind": "tcp", "port": 1000},
    )
    plan = make_plan(profile)
    assert str(plan.service("a").address) == "127.30.0.1"
    assert str(plan.service("b").address) == "127.30.0.2"


def test_exact_conflict_names_owner_and_fix() -> None:
    profile = _profile(db={"kind": "tcp", "port": 5432})
    plan = make_plan(profile, [_listen("127.30.0.1", 5432)])
    assert not plan.ok
    (conflict,) = plan.conflicts
    assert conflict.blocker.rule == "exact"
    sentence = conflict.sentence()
    assert "db (127.30.0.1:5432)" in sentence
    assert "4127" in sentence
    assert "postgres -D /var/lib/pg" in sentence
    data = plan.to_json()
    assert data["conflicts"][0]["owner"]["pid"] == 4127  # type: ignore[index]
    assert data["conflicts"][0]["listener"] == {"address": "127.30.0.1", "port": 5432}  # type: ignore[index]


def test_wildcard_blocks_every_address_and_next_address_cannot_help() -> None:
    profile = _profile(db={"kind": "tcp", "port": 5432})
    table = [_listen("0.0.0.0", 5432)]
    plan = make_plan(profile, table, on_conflict="next-address")
    assert [c.blocker.rule for c in plan.conflicts] == ["wildcard"]
    assert plan.moves == ()
    assert "every" in plan.conflicts[0].sentence()


def test_next_address_moves_around_an_exact_holder() -> None:
    profile = _profile(
        web={"kind": "http", "port": 8080},
        api={"kind": "http", "port": 8080},
    )
    plan = make_plan(profile, [_listen("127.30.0.1", 8080)], on_conflict="next-address")
    assert plan.ok
    (move,) = plan.moves
    assert move.service == "web"
    moved = plan.service("web")
    assert moved.port == 8080
    assert moved.address not in {ipaddress.ip_address("127.30.0.1"), plan.service("api").address}
    assert "moved from 127.30.0.1:8080" in move.sentence()


def test_next_port_skips_taken_ports_and_ports_of_the_plan() -> None:
    profile = _profile(
        a={"kind": "tcp", "address": "127.30.0.9", "port": 7000},
        b={"kind": "tcp", "address": "127.30.0.9", "port": 7001},
    )
    table = [_listen("127.30.0.9", 7000), _listen("0.0.0.0", 7002)]
    plan = make_plan(profile, table, on_conflict="next-port")
    assert plan.ok
    assert plan.service("a").port == 7003
    assert plan.service("b").port == 7001


def test_dual_stack_wildcard_blocks_ipv4_unless_v6only() -> None:
    profile = _profile(db={"kind": "tcp", "port": 5432})
    table = [Listener(ipaddress.ip_address("::"), 5432, "tcp", None, v6only=False)]
    assert [c.blocker.rule for c in make_plan(profile, table).conflicts] == ["dual-stack"]
    v6only = [Listener(ipaddress.ip_address("::"), 5432, "tcp", None, v6only=True)]
    assert make_plan(profile, v6only).ok


def test_a_conflict_with_one_of_our_sandboxes_says_so() -> None:
    profile = _profile(db={"kind": "tcp", "port": 5432})
    ours = Owner(pid=999, name="python", cmdline="python -m sandbox.runtime.supervisor", user="me")
    plan = make_plan(profile, [_listen("127.30.0.1", 5432, ours)], ours={999: "old-shop"})
    assert "sandbox down old-shop" in plan.conflicts[0].fix


def test_auto_ports_never_conflict() -> None:
    profile = _profile(a={"kind": "tcp"})
    plan = make_plan(profile, [_listen("0.0.0.0", 0)])
    assert plan.ok
    assert plan.services[0].port == 0


@pytest.mark.parametrize("name", ["web-db-api", "ipv6-pair"])
def test_bundled_profiles_plan_cleanly_on_an_empty_table(name: str) -> None:
    plan = make_plan(load_profile(name))
    assert plan.ok
    assert all(s.port for s in plan.services)
    if name == "ipv6-pair":
        assert all(s.url.split("//")[1].startswith("[::1]:") for s in plan.services)
