"""The JSON Schema agrees with the models: it accepts what loads, rejects what does not."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.profile.loader import bundled_dir
from sandbox.profile.models import CommandService, HttpService, Profile, TcpService
from sandbox.profile.schema import profile_schema, schema_json

TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
    "integer": int,
    "number": (int, float),
}


def errors(schema: dict[str, Any], value: Any, root: dict[str, Any], at: str = "") -> list[str]:
    """A small JSON Schema checker: just the keywords pydantic emits (no network, no library)."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/definitions/")
        return errors(root["definitions"][name], value, root, at)
    if "discriminator" in schema and isinstance(value, dict):
        tag = value.get(schema["discriminator"]["propertyName"])
        ref = schema["discriminator"]["mapping"].get(tag)
        return errors({"$ref": ref}, value, root, at) if ref else [f"{at}: unknown tag {tag!r}"]
    found: list[str] = []
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, TYPES[kind]) and not (
            kind in ("integer", "number") and isinstance(value, bool)
        )
        if not ok:
            return [f"{at}: not {kind}"]
    if "const" in schema and value != schema["const"]:
        found.append(f"{at}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{at}: not one of {schema['enum']}")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        found.append(f"{at}: does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        found.append(f"{at}: below {schema['minimum']}")
    if "maximum" in schema and isinstance(value, int | float) and value > schema["maximum"]:
        found.append(f"{at}: above {schema['maximum']}")
    for word in ("anyOf", "oneOf"):
        if word in schema:
            each = [errors(s, value, root, at) for s in schema[word]]
            if each.count([]) != 1 and (word == "oneOf" or [] not in each):
                found += [
                    f"{at}: {each.count([])} of {word} match",
                    *(e for one in each for e in one),
                ]
    if isinstance(value, dict):
        props, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
        found += [f"{at}.{key}: required" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in props:
                found += errors(props[key], item, root, f"{at}.{key}")
            elif matching := [s for p, s in patterns.items() if re.search(p, key)]:
                found += [e for s in matching for e in errors(s, item, root, f"{at}.{key}")]
            elif schema.get("additionalProperties") is False:
                found.append(f"{at}.{key}: not allowed")
            elif isinstance(extra := schema.get("additionalProperties"), dict):
                found += errors(extra, item, root, f"{at}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += errors(schema["items"], item, root, f"{at}.{i}")
    return found


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return profile_schema()


def test_the_schema_names_itself(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert "$defs" not in json.dumps(schema)  # draft-07 names them `definitions`
    assert schema["$id"]
    assert schema["title"] == "sandbox profile"
    assert json.loads(schema_json()) == schema


def test_the_schema_lists_the_kinds(schema: dict[str, Any]) -> None:
    service = schema["properties"]["services"]["patternProperties"]
    [entry] = service.values()
    assert set(entry["discriminator"]["mapping"]) == {"http", "tcp", "command"}
    kinds = {
        schema["definitions"][ref["$ref"].split("/")[-1]]["properties"]["kind"]["const"]
        for ref in entry["oneOf"]
    }
    assert kinds == {"http", "tcp", "command"}


@pytest.mark.parametrize("model", [HttpService, TcpService, CommandService, Profile])
def test_the_schema_has_every_field_by_its_yaml_name(
    schema: dict[str, Any], model: type[Any]
) -> None:
    definition = schema if model is Profile else schema["definitions"][model.__name__]
    names = {field.alias or name for name, field in model.model_fields.items()}
    assert set(definition["properties"]) == names
    assert definition["additionalProperties"] is False


@pytest.mark.parametrize("path", sorted(bundled_dir().glob("*.yaml")), ids=lambda p: p.stem)
def test_the_schema_accepts_every_bundled_profile(schema: dict[str, Any], path: Path) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert errors(schema, data, schema) == []


def test_the_schema_accepts_durations_and_addresses_as_written(schema: dict[str, Any]) -> None:
    data = {
        "name": "x",
        "services": {
            "a": {"kind": "command", "run": "x", "stop_timeout": "1.5s", "address": "127.0.0.5"},
            "b": {"kind": "http", "ready": {"http": "/", "timeout": 2}, "address": "::1"},
            "c": {"kind": "tcp", "tcp": {"rules": [{"expect": "x", "delay": "750ms"}]}},
        },
    }
    assert errors(schema, data, schema) == []
    Profile.model_validate(data)  # and the models agree


@pytest.mark.parametrize(
    ("service", "where"),
    [
        ({"kind": "http", "prot": 80}, ".services.a.prot: not allowed"),
        ({"kind": "htp"}, ".services.a: unknown tag 'htp'"),
        ({"kind": "http", "port": 70000}, ".services.a.port: 0 of anyOf match"),
        ({"kind": "http", "address": "10.0.0.1"}, ".services.a.address: 0 of anyOf match"),
        ({"kind": "tcp", "ready": {"timeout": "soon"}}, ".services.a.ready.timeout: 0 of anyOf"),
    ],
)
def test_the_schema_rejects_what_the_loader_rejects(
    schema: dict[str, Any], service: dict[str, Any], where: str
) -> None:
    found = errors(schema, {"name": "x", "services": {"a": service}}, schema)
    assert any(e.startswith(where) for e in found), found


def test_the_schema_rejects_a_bad_service_name(schema: dict[str, Any]) -> None:
    found = errors(schema, {"name": "x", "services": {"Bad Name": {"kind": "tcp"}}}, schema)
    assert found == [".services.Bad Name: not allowed"]
