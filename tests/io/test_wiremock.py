"""The WireMock importer: golden profiles, the loss report, regex escaping, bad sources, and a
real run of an imported folder answering over loopback."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.errors import ExitCode, SourceError
from sandbox.io.importers.wiremock import import_wiremock
from sandbox.services.http_routes import compile_path
from tests.io.helpers import ask, check_golden, drain, losses, write_runnable

SAMPLES = Path(__file__).parent / "samples" / "wiremock"
EXPECTED = SAMPLES / "expected"


@pytest.mark.parametrize("sample", ["shop", "checkout-flow.json", "single-health.json"])
def test_samples_match_their_golden_profiles(sample: str) -> None:
    result = import_wiremock(SAMPLES / sample)
    check_golden(result, EXPECTED / f"{sample.removesuffix('.json')}.yaml")


def test_body_files_are_copied_beside_the_profile() -> None:
    result = import_wiremock(SAMPLES / "shop")
    home = (SAMPLES / "shop" / "__files" / "pages" / "home.html").read_bytes()
    assert result.files == {"__files/pages/home.html": home}


def test_binary_base64_body_becomes_a_file() -> None:
    result = import_wiremock(SAMPLES / "checkout-flow.json")
    assert result.files["__files/body-8.bin"] == bytes.fromhex("89504e470d0a1a0a")


def test_every_loss_is_reported_with_its_location() -> None:
    result = import_wiremock(SAMPLES / "checkout-flow.json")
    at = "checkout-flow.json#/mappings/"
    assert losses(result) == {
        (at + "2/request/url", "approximated"),
        (at + "3/request/url", "approximated"),
        (at + "4/request/url", "approximated"),
        (at + "5/postServeActions", "dropped"),
        (at + "5/request/headers/X-Debug/absent", "dropped"),
        (at + "5/request/bodyPatterns/0/matchesXPath", "dropped"),
        (at + "5/response/body", "dropped"),
        (at + "5/response/delayDistribution", "approximated"),
        (at + "6/response/proxyBaseUrl", "dropped"),
        (at + "7/response/fault", "approximated"),
        (at + "3/newScenarioState", "dropped"),
        (at + "4/requiredScenarioState", "dropped"),
    }


def test_a_cycling_scenario_is_exact_and_answers_in_turn() -> None:
    result = import_wiremock(SAMPLES / "checkout-flow.json")
    routes = result.profile["services"]["wiremock"]["routes"]
    payments = [r for r in routes if r["path"] == "/payments"]
    assert [a.get("status", 200) for a in payments[0]["responses"]] == [503, 200]
    assert not [x for x in result.losses if "payment" in x.what]


def _one(tmp_path: Path, mapping: dict[str, Any]) -> dict[str, Any]:
    source = tmp_path / "one.json"
    source.write_text(json.dumps(mapping))
    routes = import_wiremock(source).profile["services"]["wiremock"]["routes"]
    assert len(routes) == 1
    return dict(routes[0])


def test_an_exact_url_is_escaped_and_anchored(tmp_path: Path) -> None:
    route = _one(tmp_path, {"request": {"url": "/a.b/(x)+{y}?q=1+2"}, "response": {}})
    pattern = compile_path(route["path"], "path")
    assert pattern.fullmatch("/a.b/(x)+{y}")
    assert not pattern.fullmatch("/aXb/(x)+{y}")
    assert not pattern.fullmatch("/a.b/(x)+{y}/more")
    wanted = re.compile(route["match"]["query"]["q"])
    assert wanted.search("1 2")
    assert not wanted.search("1 23")
    assert not wanted.search("01 2")


def test_a_path_regex_that_does_not_start_with_a_slash_still_matches_whole(
    tmp_path: Path,
) -> None:
    route = _one(tmp_path, {"request": {"urlPathPattern": ".*/users|/admin"}, "response": {}})
    pattern = compile_path(route["path"], "path")
    assert pattern.fullmatch("/users")
    assert pattern.fullmatch("/a/b/users")
    assert pattern.fullmatch("/admin")
    assert not pattern.fullmatch("/admin/x")


def test_doesnotmatch_and_case_insensitive_equality(tmp_path: Path) -> None:
    route = _one(
        tmp_path,
        {
            "request": {
                "urlPath": "/x",
                "headers": {
                    "X-A": {"doesNotMatch": "sec.*"},
                    "X-B": {"equalTo": "Yes", "caseInsensitive": True},
                },
            },
            "response": {},
        },
    )  # fmt: skip
    not_sec, yes = (re.compile(p) for p in route["match"]["headers"].values())
    assert not_sec.search("public")
    assert not not_sec.search("secret")
    assert yes.search("YES")
    assert not yes.search("yes!")


def test_a_missing_source_is_refused_with_exit_code_3(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        import_wiremock(tmp_path / "nope")
    assert caught.value.exit_code == ExitCode.INVALID_PROFILE
    assert "missing" in str(caught.value)


def test_a_named_pipe_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "mappings.json"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match="named pipe"):
        import_wiremock(fifo)


def test_a_source_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(21 * 1024 * 1024)  # sparse: nothing is written
    with pytest.raises(SourceError, match="20 MiB"):
        import_wiremock(big)


def test_bad_json_names_the_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"request": {\n  "url": "/x",,\n}}')
    with pytest.raises(SourceError, match=r"bad\.json:2:15"):
        import_wiremock(bad)


def test_imported_mappings_answer_over_loopback(tmp_path: Path, spare_loopback: Any) -> None:
    result = import_wiremock(SAMPLES / "shop")
    profile = write_runnable(result, tmp_path / "shop" / "shop.yaml", spare_loopback(1))
    with sandbox.run(profile, state_root=tmp_path / "state") as sb:
        base = sb.url("wiremock")
        status, _, body = ask(base + "/products")
        assert (status, json.loads(body)[1]["name"]) == (200, "Desk")
        status, headers, body = ask(base + "/products/42")
        assert (status, headers["X-Product"], json.loads(body)["id"]) == (200, "42", "42")
        status, _, body = ask(base + "/search?q=lamp&page=1", Accept="Application/JSON")
        assert (status, json.loads(body)["query"]) == (200, "lamp")
        assert ask(base + "/search?q=Lamp&page=1", Accept="application/json")[0] == 404
        order = json.dumps({"customer": "c-42", "express": True, "items": [1]}).encode()
        status, headers, body = ask(
            base + "/orders", "POST", order, **{"Content-Type": "application/json"}
        )
        assert (status, headers["Location"], json.loads(body)["customer"]) == (
            201,
            "/orders/1001",
            "c-42",
        )
        assert (
            ask(base + "/orders", "POST", b"{}", **{"Content-Type": "application/json"})[0] == 422
        )
        status, _, body = ask(base + "/")
        assert status == 200
        assert "<h1>Shop</h1>" in body
        assert ask(base + "/api/v2/anything")[:1] == (503,)
        with socket.create_connection((sb.address("wiremock"), sb.port("wiremock")), 5) as sock:
            sock.sendall(b"GET /broken HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                drain(sock)


def test_values_the_profile_cannot_hold_are_reported_not_written(tmp_path: Path) -> None:
    source = tmp_path / "odd.json"
    source.write_text(
        json.dumps(
            {
                "mappings": [
                    {"request": {"method": "GET POST", "urlPath": "/a"}, "response": {}},
                    {"request": {"urlPath": "/b"}, "response": {"status": 999}},
                    {"request": {"urlPathPattern": "/c/(?<id>\\p{Alpha}+)"}, "response": {}},
                ]
            }
        )
    )
    result = import_wiremock(source)
    check = result.profile["services"]["wiremock"]["routes"]
    assert [r["path"] for r in check] == ["/b"]
    assert "status" not in check[0].get("response", {})
    assert losses(result) == {
        ("odd.json#/mappings/0/request/method", "dropped"),
        ("odd.json#/mappings/1/response/status", "dropped"),
        ("odd.json#/mappings/2/request", "dropped"),
    }


def test_a_scenario_that_stays_in_its_last_state_is_approximated(tmp_path: Path) -> None:
    step = {"request": {"method": "GET", "urlPath": "/job"}, "scenarioName": "job"}
    source = tmp_path / "job.json"
    source.write_text(
        json.dumps(
            {
                "mappings": [
                    {**step, "requiredScenarioState": "Started", "newScenarioState": "running",
                     "response": {"body": "queued"}},
                    {**step, "requiredScenarioState": "running", "newScenarioState": "done",
                     "response": {"body": "running"}},
                    {**step, "requiredScenarioState": "done", "response": {"body": "done"}},
                ]
            }
        )
    )  # fmt: skip
    result = import_wiremock(source)
    (route,) = result.profile["services"]["wiremock"]["routes"]
    assert [a["body"] for a in route["responses"]] == ["queued", "running", "done"]
    assert losses(result) == {("job.json#/mappings/0/scenarioName", "approximated")}
