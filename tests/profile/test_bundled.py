"""Every bundled profile loads cleanly, by path and by name, and passes the cross-field checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.profile.checks import check_profile, dependency_order
from sandbox.profile.loader import bundled_dir, discover, load_profile

BUNDLED = sorted(bundled_dir().glob("*.yaml"))


def test_the_bundled_folder_has_the_documented_profiles() -> None:
    assert {"web-db-api", "ipv6-pair"} <= {p.stem for p in BUNDLED}


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_a_bundled_profile_loads_and_checks_clean(path: Path) -> None:
    profile = load_profile(path)
    assert profile.name == path.stem
    assert profile.description
    assert profile.source == str(path.absolute())
    assert check_profile(profile) == []
    assert sorted(dependency_order(profile)) == sorted(profile.services)
    by_name = load_profile(path.stem, search=[bundled_dir()])
    assert by_name == profile


def test_bundled_profiles_are_listed_without_errors() -> None:
    found = {f.name: f for f in discover(search=[bundled_dir()])}
    assert set(found) == {p.stem for p in BUNDLED}
    assert all(f.origin == "bundled" and f.error is None for f in found.values())


def test_web_db_api_is_the_documented_shape() -> None:
    profile = load_profile("web-db-api", search=[bundled_dir()])
    assert str(profile.pool) == "127.20.0.0/16"
    ports = {name: (s.kind, s.port) for name, s in profile.services.items()}
    assert ports == {"web": ("http", 8080), "api": ("http", 8000), "db": ("tcp", 5432)}
    assert dependency_order(profile) == ["db", "api", "web"]


def test_ipv6_pair_puts_two_services_on_ipv6_loopback_with_distinct_ports() -> None:
    profile = load_profile("ipv6-pair", search=[bundled_dir()])
    services = list(profile.services.values())
    assert [s.address for s in services] == ["::1", "::1"]
    assert {s.kind for s in services} == {"http", "tcp"}
    assert len({s.port for s in services}) == 2
    assert "[::1]" in profile.description
