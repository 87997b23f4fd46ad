"""The openapi importer: golden profiles and loss reports for sample documents, refusals, e2e."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

import sandbox
from sandbox.errors import ExitCode, SourceError
from sandbox.io.importers._source import MAX_SOURCE_BYTES
from sandbox.io.importers.openapi import import_openapi
from sandbox.io.report import ImportResult
from sandbox.io.write import profile_yaml
from sandbox.profile.loader import load_profile_text
from tests.io.helpers import check_golden

SAMPLES = Path(__file__).parent / "samples" / "openapi"

A, D = "approximated", "dropped"
CHECKED = (
    "requests are checked only for required query parameters and headers (and their simple "
    "types) and required top-level JSON body fields (and their JSON types); nested fields, "
    "formats, lengths and ranges are not checked"
)

EXPECTED_LOSSES: dict[str, set[tuple[str, str]]] = {
    "petstore": {
        (D, "petstore.yaml#/servers/1"),
        (D, "petstore.yaml#/components/securitySchemes"),
        (D, "petstore.yaml#/paths/~1pets/get/responses/default"),
    },
    "petstore-validated": {
        (D, "petstore.yaml#/servers/1"),
        (D, "petstore.yaml#/components/securitySchemes"),
        (D, "petstore.yaml#/paths/~1pets/get/responses/default"),
        (A, "petstore.yaml#/paths/~1pets/post"),
        (A, "petstore.yaml#/paths/~1pets~1findByStatus/get"),
    },
    "payments": {
        (D, "payments.json#/webhooks"),
        (D, "payments.json#/paths/~1payments/post/callbacks"),
        (A, "payments.json#/paths/~1payments/post/responses/4XX"),
        (D, "payments.json#/paths/~1fx~1rates/get/responses/200"),
        (A, "payments.json#/paths/~1payments~1{payment-id}/get"),
        (A, "payments.json#/paths/~1payments~1{payment-id}/get/responses/200"),
        (A, "payments.json#/paths/~1payments~1{payment-id}~1receipt/get"),
        (A, "payments.json#/paths/~1payments~1{payment-id}~1receipt/get/responses/200/content"),
        (D, "payments.json#/paths/~1payments~1{payment-id}~1receipt/get/responses/200"),
    },
    "inventory-swagger": {
        (D, "inventory-swagger.yaml#/securityDefinitions"),
        (A, "inventory-swagger.yaml#/paths/~1items/get"),
        (A, "inventory-swagger.yaml#/paths/~1items/post"),
        (A, "inventory-swagger.yaml#/paths/~1items~1{sku}~1photo/put"),
        (D, "inventory-swagger.yaml#/paths/~1items~1{sku}/get/responses/default"),
        (A, "inventory-swagger.yaml#/paths/~1items~1{sku}/get/responses/200/content"),
    },
}

CASES = {
    "petstore": ("petstore.yaml", False),
    "petstore-validated": ("petstore.yaml", True),
    "payments": ("payments.json", False),
    "inventory-swagger": ("inventory-swagger.yaml", True),
}


def _import(case: str, seed: int = 0) -> ImportResult:
    source, validate = CASES[case]
    return import_openapi(SAMPLES / source, seed=seed, validate_requests=validate)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_matches_its_golden_profile(case: str) -> None:
    check_golden(_import(case), SAMPLES / f"{case}.profile.yaml")


@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_reports_every_loss_with_its_location(case: str) -> None:
    result = _import(case)
    found = {(loss.kind.value, loss.location) for loss in result.losses}
    assert found == EXPECTED_LOSSES[case]
    assert len(found) == len(result.losses), "a loss is reported twice"
    assert result.losses
    assert all(loss.what.strip() for loss in result.losses)


@pytest.mark.parametrize("case", sorted(CASES))
def test_sample_profile_validates(case: str) -> None:
    text = profile_yaml(_import(case).profile)
    profile = load_profile_text(text, f"{case}.yaml")
    assert len(profile.services) == 1


def test_report_sentences_say_what_happened() -> None:
    result = _import("petstore-validated")
    by_location = {loss.location: loss.what for loss in result.losses}
    assert by_location["petstore.yaml#/paths/~1pets/post"] == CHECKED
    assert "only the first server" in by_location["petstore.yaml#/servers/1"]


def test_port_comes_from_a_loopback_server_and_defaults_to_8080_otherwise(tmp_path: Path) -> None:
    assert _service(_import("payments"))["port"] == 9400  # http://127.0.0.1:{port} default
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Remote", "version": "1"},
        "servers": [{"url": "https://api.example.com/v2"}],
        "paths": {"/ping": {"get": {"responses": {"200": {"description": "ok"}}}}},
    }
    source = tmp_path / "remote.json"
    source.write_text(json.dumps(doc))
    result = import_openapi(source)
    service = _service(result)
    assert service["port"] == 8080
    assert service["routes"] == [{"method": "GET", "path": "/v2/ping", "response": {"status": 200}}]
    notes = [loss.what for loss in result.losses if loss.location == "remote.json#/servers/0"]
    assert any("not on loopback" in n and "8080" in n for n in notes)
    assert any("TLS is not served" in n for n in notes)


def _service(result: ImportResult) -> dict[str, Any]:
    (service,) = result.profile["services"].values()
    assert isinstance(service, dict)
    return service


def test_the_seed_decides_generated_values_and_nothing_else() -> None:
    first, again, other = _import("payments", 0), _import("payments", 0), _import("payments", 7)
    assert first.profile == again.profile
    assert first.profile != other.profile
    documented = [r for r in _service(other)["routes"] if r["path"] == "/api/payments"]
    assert documented[-1]["response"]["json"]["id"] == "pay_1"  # examples do not change


def test_reference_cycles_and_loops_end(tmp_path: Path) -> None:
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Loops", "version": "1"},
        "paths": {
            "/a": {"get": {"responses": {"200": {"description": "", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}}},
            "/node": {"get": {"responses": {"200": {"description": "", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}}}},
        },
        "components": {"schemas": {
            "A": {"$ref": "#/components/schemas/B"},
            "B": {"$ref": "#/components/schemas/A"},
            "Node": {"type": "object", "required": ["next"], "properties": {
                "value": {"type": "integer"}, "next": {"$ref": "#/components/schemas/Node"}}},
        }},
    }  # fmt: skip
    source = tmp_path / "loops.json"
    source.write_text(json.dumps(doc))
    result = import_openapi(source)
    routes = {r["path"]: r for r in _service(result)["routes"]}
    node = routes["/node"]["response"]["json"]
    depth = 0
    while isinstance(node, dict) and node.get("next") is not None:
        node, depth = node["next"], depth + 1
    assert 1 <= depth <= 20
    assert any("loops back" in loss.what for loss in result.losses)
    load_profile_text(profile_yaml(result.profile))


def test_text_that_looks_like_a_template_is_sent_as_written() -> None:
    routes = _service(_import("petstore"))["routes"]
    listed = next(r for r in routes if r["path"] == "/v1/pets" and r["method"] == "GET")
    assert listed["response"]["json"][1]["name"] == "Tom {{ '{' }}{cat}}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("openapi: 3.0.0\npaths: [\n", "petstore.yaml:3:1: the OpenAPI document is not valid YAML"),
        ("just: a mapping\n", "neither `openapi: 3.x` nor `swagger"),
        ("- a list\n", "not an OpenAPI document"),
        ('{"openapi": "3.0.0",', "petstore.yaml:1:21: the OpenAPI document is not valid JSON"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c]\n"
            "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e]\n"
            "g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
            "expands to more than",
        ),
    ],
)
def test_unreadable_documents_are_refused_with_where(
    tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "petstore.yaml"
    source.write_text(content)
    with pytest.raises(SourceError) as caught:
        import_openapi(source)
    assert message in str(caught.value)
    assert caught.value.exit_code == ExitCode.INVALID_PROFILE


def test_missing_oversized_and_non_regular_sources_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:
        handle.truncate(MAX_SOURCE_BYTES + 1)  # sparse: no 20 MiB written
    for source, message in (
        (tmp_path / "absent.yaml", "cannot read"),
        (tmp_path, "not a regular file"),
        (big, "over the import limit"),
    ):
        with pytest.raises(SourceError, match=message) as caught:
            import_openapi(source)
        assert caught.value.exit_code == 3


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def test_imported_petstore_answers_over_loopback(
    tmp_path: Path, spare_loopback: Callable[[int], list[IPv4Address]]
) -> None:
    profile = _import("petstore-validated").profile
    (service,) = profile["services"].values()
    service["address"], service["port"] = str(spare_loopback(1)[0]), "auto"
    with sandbox.run(profile, state_root=tmp_path) as sb:
        base = sb.url("petstore")
        assert _get(f"{base}/v1/pets") == (200, [
            {"id": 1, "name": "Rex", "tag": "dog"}, {"id": 2, "name": "Tom {{cat}}", "tag": "cat"}
        ])  # fmt: skip
        status, pet = _get(f"{base}/v1/pets/7")
        assert status == 200
        assert set(pet) >= {"id", "name"}
        assert _get(f"{base}/v1/pets/7", {"Prefer": "code=404"}) == (
            404,
            {"code": 404, "message": "no such pet"},
        )
        status, problem = _get(f"{base}/v1/pets/findByStatus?status=lost")
        assert (status, problem["field"]) == (400, "query.status")
        status, _ = _get(f"{base}/v1/pets/findByStatus?status=sold")
        assert status == 200
        status, problem = _get(f"{base}/v1/pets/rex")
        assert (status, problem["field"]) == (400, "path")


def test_wide_and_deep_schemas_are_generated_within_bounds(tmp_path: Path) -> None:
    schemas = {
        f"S{i}": {
            "type": "object",
            "required": ["a"],
            "properties": {f"p{k}": {"$ref": f"#/components/schemas/S{i + 1}"} for k in range(10)},
        }
        for i in range(12)
    }
    schemas["S12"] = {"type": "string"}
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Wide", "version": "1"},
        "paths": {"/w": {"get": {"responses": {"200": {"description": "", "content": content}}}}},
        "components": {"schemas": schemas},
    }
    source = tmp_path / "wide.json"
    source.write_text(json.dumps(doc))
    result = import_openapi(source)
    answer = _service(result)["routes"][0]["response"]["json"]
    assert set(answer) == {f"p{k}" for k in range(10)}
    assert len(json.dumps(answer)) < 1_000_000


def test_malformed_paths_and_operations_are_dropped_and_the_rest_imported(tmp_path: Path) -> None:
    ok = {"responses": {"200": {"description": "ok"}}}
    doc = {
        "swagger": "2.0",
        "info": {"title": "Odd", "version": "1"},
        "basePath": "v2/",
        "schemes": "http",
        "paths": {
            "/fine": {"get": ok},
            "/broken{": {"get": ok},
            "relative": {"get": ok},
            "x-internal": {"note": "an extension, not a path"},
            "/shapes": {"get": {"parameters": "none", "produces": {"a": 1}, "responses": [1]}},
        },
    }
    source = tmp_path / "odd.json"
    source.write_text(json.dumps(doc))
    result = import_openapi(source)
    routes = _service(result)["routes"]
    assert [(r["method"], r["path"]) for r in routes] == [
        ("GET", "/v2/fine"),
        ("GET", "/v2/shapes"),
    ]
    dropped = {loss.location for loss in result.losses if loss.kind.value == "dropped"}
    assert dropped == {"odd.json#/paths/~1broken{", "odd.json#/paths/relative"}
    load_profile_text(profile_yaml(result.profile))
