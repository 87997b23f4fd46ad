"""The mountebank importer: golden profiles, the loss report, predicate translation, bad
sources, and a real run of imported http and tcp imposters answering over loopback."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.errors import ExitCode, SourceError
from sandbox.io.importers.mountebank import import_mountebank
from sandbox.services.http_routes import compile_path
from tests.io.helpers import ask, check_golden, drain, losses, write_runnable

SAMPLES = Path(__file__).parent / "samples" / "mountebank"
EXPECTED = SAMPLES / "expected"


@pytest.mark.parametrize(
    "sample", ["shop-imposters.json", "flaky-gateway.json", "mixed-protocols.json"]
)
def test_samples_match_their_golden_profiles(sample: str) -> None:
    result = import_mountebank(SAMPLES / sample)
    check_golden(result, EXPECTED / sample.replace(".json", ".yaml"))


def test_imposters_keep_their_ports_each_on_its_own_address() -> None:
    services = import_mountebank(SAMPLES / "shop-imposters.json").profile["services"]
    assert {name: s["port"] for name, s in services.items()} == {
        "customer-api": 4545,
        "ledger": 5555,
        "tcp-6565": 6565,
    }
    assert {s["address"] for s in services.values()} == {"auto"}


def test_every_loss_is_reported_with_its_location() -> None:
    result = import_mountebank(SAMPLES / "flaky-gateway.json")
    at = "flaky-gateway.json#/"
    assert losses(result) == {
        (at + "allowCORS", "dropped"),
        (at + "protocol", "approximated"),
        (at + "stubs/1/predicates/0/equals/path", "approximated"),
        (at + "stubs/1/responses/0/_behaviors/decorate", "dropped"),
        (at + "stubs/1/responses/1/fault", "dropped"),
        (at + "stubs/2/predicates/0/or", "dropped"),
        (at + "stubs/2/predicates/1/jsonpath", "dropped"),
        (at + "stubs/2/responses/0/inject", "dropped"),
        (at + "stubs/2", "dropped"),
        (at + "stubs/3/predicates/1/not", "dropped"),
    }


def _routes(tmp_path: Path, *stubs: dict[str, Any]) -> list[dict[str, Any]]:
    source = tmp_path / "imposter.json"
    source.write_text(json.dumps({"protocol": "http", "port": 4545, "stubs": list(stubs)}))
    routes = import_mountebank(source).profile["services"]["http-4545"]["routes"]
    return list(routes)


def _stub(*predicates: dict[str, Any]) -> dict[str, Any]:
    return {"predicates": list(predicates), "responses": [{"is": {"body": "x"}}]}


def test_equals_on_a_path_is_case_insensitive_unless_asked(tmp_path: Path) -> None:
    loose, strict, _ = _routes(
        tmp_path,
        _stub({"equals": {"path": "/Orders/{id}.json"}}),
        _stub({"equals": {"path": "/a.b"}, "caseSensitive": True}),
    )
    pattern = compile_path(loose["path"], "path")
    assert pattern.fullmatch("/orders/{ID}.JSON")
    assert not pattern.fullmatch("/orders/{id}xjson")
    assert strict["path"] == "/a.b"


def test_starts_with_and_or_on_one_field(tmp_path: Path) -> None:
    route = _routes(
        tmp_path,
        _stub(
            {"startsWith": {"path": "/api/"}},
            {"or": [{"equals": {"query": {"v": "1"}}}, {"equals": {"query": {"v": "2+"}}}]},
        ),
    )[0]
    pattern = compile_path(route["path"], "path")
    assert pattern.fullmatch("/API/x/y")
    assert not pattern.fullmatch("/apix")
    either = re.compile(route["match"]["query"]["v"])
    assert either.search("1")
    assert either.search("2+")
    assert not either.search("22")


def test_not_on_the_body_is_a_negated_regex(tmp_path: Path) -> None:
    route = _routes(tmp_path, _stub({"not": {"contains": {"body": "secret"}}}))[0]
    unless = re.compile(route["match"]["body"])
    assert unless.search("public data")
    assert not unless.search("a SECRET here")


def test_a_folder_is_refused_with_exit_code_3(tmp_path: Path) -> None:
    with pytest.raises(SourceError) as caught:
        import_mountebank(tmp_path)
    assert caught.value.exit_code == ExitCode.INVALID_PROFILE


def test_a_file_without_imposters_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "x.json"
    source.write_text('{"stubs": []}')
    with pytest.raises(SourceError, match="neither an `imposters` array"):
        import_mountebank(source)


def test_an_ejs_template_is_refused_as_not_json(tmp_path: Path) -> None:
    source = tmp_path / "imposters.ejs"
    source.write_text('{"imposters": [<% include stub.json %>]}')
    with pytest.raises(SourceError, match=r"imposters\.ejs:1:16 is not valid JSON"):
        import_mountebank(source)


def _converse(address: str, port: int, send: bytes, wanted: int) -> bytes:
    """Send bytes and read until `wanted` bytes came back, with a deadline."""
    deadline = time.monotonic() + 5
    got = b""
    with socket.create_connection((address, port), timeout=5) as sock:
        sock.sendall(send)
        while len(got) < wanted and time.monotonic() < deadline:
            chunk = sock.recv(1024)
            if not chunk:
                break
            got += chunk
    return got


def test_imported_imposters_answer_over_loopback(tmp_path: Path, spare_loopback: Any) -> None:
    result = import_mountebank(SAMPLES / "shop-imposters.json")
    profile = write_runnable(result, tmp_path / "mb" / "shop.yaml", spare_loopback(3))
    with sandbox.run(profile, state_root=tmp_path / "state") as sb:
        api = sb.url("customer-api")
        created = [ask(api + "/customers", "POST", b"<customer/>")[0] for _ in range(3)]
        assert created == [201, 400, 201], "responses cycle"
        status, _, body = ask(api + "/customers/7", Authorization="Basic eDp5")
        assert (status, json.loads(body)["id"]) == (200, 123)
        assert ask(api + "/customers/7")[0::2] == (200, ""), "no stub matched: mountebank's default"
        status, _, body = ask(api + "/SEARCH?q=LAMP", Accept="application/json")
        assert json.loads(body)["results"][0] == "Desk lamp"
        order = json.dumps({"sku": "LAMP-1", "quantity": 2}).encode()
        placed = [ask(api + "/orders", "POST", order)[0] for _ in range(4)]
        assert placed == [202, 202, 409, 202], "repeat, then the next, then around again"
        assert ask(api + "/admin/users", "DELETE")[0::2] == (403, "read only")
        with socket.create_connection(
            (sb.address("customer-api"), sb.port("customer-api")), 5
        ) as s:
            s.sendall(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                drain(s)
        ledger = (sb.address("ledger"), sb.port("ledger"))
        assert _converse(*ledger, b"PING\r\n", 6) == b"PONG\r\n"
        assert _converse(*ledger, b"balance acct-1\r\n", 7) == b"42.00\r\n"
        binary = (sb.address("tcp-6565"), sb.port("tcp-6565"))
        assert _converse(*binary, bytes([0, 1, 2, 3]), 3) == bytes([4, 5, 6])
