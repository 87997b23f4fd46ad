"""Cross-field checks (dependencies, proxies, collisions, readiness, files) and start order."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.errors import ProfileError
from sandbox.profile.checks import check_profile, dependency_order
from sandbox.profile.models import Profile


def profile(**services: dict[str, Any]) -> Profile:
    return Profile.model_validate({"name": "t", "services": services})


def http(*deps: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "http", "depends_on": list(deps), **extra}


def tcp(*deps: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "tcp", "depends_on": list(deps), **extra}


def test_a_sound_profile_has_no_problems() -> None:
    assert check_profile(profile(web=http("api"), api=http("db"), db=tcp())) == []


def test_an_unknown_dependency_names_the_services() -> None:
    found = check_profile(profile(web=http("apx"), api=http(), db=tcp()))
    assert found == [
        (("services", "web", "depends_on", 0), 'unknown service "apx" (services: api, db)')
    ]


def test_an_unknown_dependency_in_a_lone_service() -> None:
    assert check_profile(profile(web=http("api"))) == [
        (("services", "web", "depends_on", 0), 'unknown service "api" (no other services)')
    ]


def test_a_dependency_on_itself() -> None:
    assert check_profile(profile(web=http("db", "web"), db=tcp())) == [
        (("services", "web", "depends_on", 1), '"web" cannot depend on itself')
    ]


def test_a_cycle_is_named_from_its_first_declared_service() -> None:
    found = check_profile(profile(web=http("api"), api=http("web")))
    assert found == [(("services", "web", "depends_on", 0), "dependency cycle: web -> api -> web")]


def test_a_long_cycle_entered_from_the_side_is_reported_once() -> None:
    found = check_profile(
        profile(front=http("b"), a=http("x", "c"), b=http("a"), c=http("b"), x=tcp())
    )
    assert found == [(("services", "a", "depends_on", 1), "dependency cycle: a -> c -> b -> a")]


def test_two_separate_cycles_are_both_reported() -> None:
    found = check_profile(profile(a=http("b"), b=http("a"), c=tcp("d"), d=tcp("c")))
    assert [message for _, message in found] == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_a_proxy_must_name_a_known_http_service_other_than_itself() -> None:
    routes = [
        {"path": "/a", "proxy": "nope"},
        {"path": "/b", "proxy": "db"},
        {"path": "/c", "proxy": "web"},
        {"path": "/d", "proxy": "api"},
    ]
    found = check_profile(profile(web=http(routes=routes), api=http(), db=tcp()))
    at = [path for path, _ in found]
    assert at == [("services", "web", "routes", i, "proxy") for i in range(3)]
    assert found[0][1] == 'unknown service "nope" (services: api, db)'
    assert found[1][1].startswith('"db" is a tcp stub; a proxy forwards HTTP requests')
    assert found[2][1].startswith('"web" cannot proxy to itself')


def test_two_services_on_one_literal_address_and_port_collide() -> None:
    same = {"address": "127.0.0.7", "port": 8080}
    found = check_profile(
        profile(a=http(**same), b=tcp(**same), c=tcp(address="127.0.0.8", port=8080))
    )
    assert found == [
        (
            ("services", "b", "address"),
            '127.0.0.7:8080 is also used by "a"; give one of them another address '
            "(or `address: auto`) or another port",
        )
    ]


def test_auto_addresses_and_auto_ports_never_collide() -> None:
    assert (
        check_profile(
            profile(
                a=http(port=5432),
                b=tcp(port=5432),
                c=tcp(address="127.0.0.7"),
                d=tcp(address="127.0.0.7"),
            )
        )
        == []
    )


def test_services_on_ipv6_loopback_need_distinct_ports() -> None:
    found = check_profile(
        profile(
            a=http(address="::1", port=9000),
            b=tcp(address="::1", port=9000),
            c=tcp(address="::1", port=9001),
        )
    )
    assert len(found) == 1
    path, message = found[0]
    assert path == ("services", "b", "port")
    assert message.startswith('[::1]:9000 is also used by "a": ::1 is the only IPv6 loopback')
    assert "distinct ports" in message


def test_ready_log_is_for_command_services_only() -> None:
    found = check_profile(
        profile(
            a=http(ready={"log": "up"}),
            b=tcp(ready={"log": "up"}),
            c={"kind": "command", "run": "x", "ready": {"log": "up"}},
        )
    )
    assert [path for path, _ in found] == [
        ("services", "a", "ready", "log"),
        ("services", "b", "ready", "log"),
    ]
    assert "`ready: {http: /path}` or `ready: {tcp: true}`" in found[0][1]
    assert "http" not in found[1][1].split("use")[1]


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("/etc/passwd", "is absolute"),
        ("C:\\x.html", "is absolute"),
        ("../secret", "leaves the profile's folder"),
        ("pages/../../x", "leaves the profile's folder"),
        ("pages\\..\\..\\x", "leaves the profile's folder"),
    ],
)
def test_a_response_file_stays_inside_the_profile_folder(file: str, words: str) -> None:
    routes = [
        {"path": "/", "response": {"file": file}},
        {"path": "/r", "responses": [{"status": 200}, {"file": file}]},
    ]
    found = check_profile(profile(web=http(routes=routes)))
    assert [path for path, _ in found] == [
        ("services", "web", "routes", 0, "response", "file"),
        ("services", "web", "routes", 1, "responses", 1, "file"),
    ]
    assert all(words in message for _, message in found)


@pytest.mark.parametrize("file", ["index.html", "pages/a..b.html", "./pages/x.json"])
def test_a_relative_file_inside_is_fine(file: str) -> None:
    routes = [{"path": "/", "response": {"file": file}}]
    assert check_profile(profile(web=http(routes=routes))) == []


# -- dependency order ------------------------------------------------------------------------------


def test_dependencies_come_first() -> None:
    assert dependency_order(profile(web=http("api"), api=http("db"), db=tcp())) == [
        "db",
        "api",
        "web",
    ]


def test_declaration_order_where_free() -> None:
    order = dependency_order(
        profile(z=tcp(), web=http("api", "cache"), cache=tcp(), api=http("db"), db=tcp(), a=tcp())
    )
    assert order == ["z", "cache", "db", "api", "web", "a"]


def test_a_diamond_places_each_service_once() -> None:
    order = dependency_order(
        profile(top=http("l", "r"), l=http("base"), r=http("base"), base=tcp())
    )
    assert order == ["base", "l", "r", "top"]


def test_unknown_and_self_dependencies_do_not_block_the_order() -> None:
    assert dependency_order(profile(a=http("ghost", "a"), b=tcp())) == ["a", "b"]


def test_a_cycle_has_no_order() -> None:
    with pytest.raises(ProfileError) as info:
        dependency_order(profile(ok=tcp(), a=http("b"), b=http("a")))
    assert info.value.problems == ["services.a.depends_on.0: dependency cycle: a -> b -> a"]
