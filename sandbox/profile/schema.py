"""The JSON Schema of the profile format, for editors (yaml-language-server) and the docs."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from sandbox.profile import models
from sandbox.profile.models import Profile

SCHEMA_ID = "urn:loopback-sandbox:profile"
# Draft-07, the newest draft yaml-language-server (VS Code, Neovim, JetBrains) fully supports;
# what pydantic emits fits it once `$defs` is named `definitions`.
DRAFT = "http://json-schema.org/draft-07/schema#"

_DURATION = {
    "anyOf": [
        {"type": "number", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m)?\s*$"},
    ]
}
_ADDRESS = {
    "anyOf": [
        {"const": "auto"},
        {"type": "string", "pattern": r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$"},
        {"type": "string", "pattern": r"^(0{0,4}:){2,7}0{0,3}1$"},
    ]
}


class _Generator(GenerateJsonSchema):
    """Describe what a user may write where a validator converts it, not what it becomes."""

    def function_before_schema(
        self, schema: core_schema.BeforeValidatorFunctionSchema
    ) -> JsonSchemaValue:
        # Durations are validated into float seconds and addresses into normalised text;
        # without this an editor would flag `delay: 750ms` as "not a number".
        function = schema["function"]["function"]
        if function is models.parse_duration:
            return dict(_DURATION)
        if function is models._check_address:
            return dict(_ADDRESS)
        return super().function_before_schema(schema)


def profile_schema() -> dict[str, Any]:
    """The JSON Schema (draft-07) of a profile file; a fresh dict on every call."""
    schema = Profile.model_json_schema(
        by_alias=True, ref_template="#/definitions/{model}", schema_generator=_Generator
    )
    definitions = schema.pop("$defs")
    # Service names must match the name pattern; without this any other name passes.
    schema["properties"]["services"]["additionalProperties"] = False
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        **schema,
        "title": "sandbox profile",
        "description": "A named set of services for `sandbox`, each on its own loopback address.",
        "definitions": definitions,
    }


def schema_json() -> str:
    """The schema as indented JSON text, ready to write to a file."""
    return json.dumps(profile_schema(), indent=2) + "\n"
