"""Example values generated from JSON Schemas (OpenAPI flavour), deterministic for a seed."""

from __future__ import annotations

import base64
import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sandbox.io.importers._common import as_list, as_map, as_strs
from sandbox.io.importers.openapi_refs import Resolver

Mode = Literal["response", "request"]
MAX_DEPTH = 12  # deeper than this, generation stops (self-referencing schemas end here)
OPTIONAL_DEPTH = 4  # deeper than this, only required properties are generated
MAX_VALUES = 5000  # values in one example: wide schemas nested deep would grow without bound
MAX_REPEAT = 2  # a self-referencing schema (a tree, a linked list) is nested this many times
_CYCLE = object()
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)


class ExampleMaker:
    """Makes one example value per schema; the same seed and location give the same value."""

    def __init__(self, resolver: Resolver, seed: int) -> None:
        self.resolver = resolver
        self.seed = seed
        self._reported: set[tuple[str, str]] = set()

    def make(self, schema: Any, where: str, mode: Mode = "response") -> Any:
        """An example for `schema`; `where` (a pointer into the source) seeds the choice."""
        rng = random.Random(f"{self.seed}:{where}")
        run = _Run(self, rng, where, mode)
        value = run.value(schema, 0, ())
        if run.budget < 0:
            self.approximate(where, f"the example is cut short after {MAX_VALUES} values")
        return None if value is _CYCLE else value

    def approximate(self, where: str, what: str) -> None:
        if (where, what) not in self._reported:
            self._reported.add((where, what))
            self.resolver.result.approximate(f"{self.resolver.source}{where}", what)


class _Run:
    def __init__(self, maker: ExampleMaker, rng: random.Random, where: str, mode: Mode) -> None:
        self.maker, self.rng, self.where, self.mode = maker, rng, where, mode
        self.budget = MAX_VALUES

    def value(self, schema: Any, depth: int, stack: tuple[str, ...], name: str = "") -> Any:
        self.budget -= 1
        if depth > MAX_DEPTH or self.budget < 0:
            return _CYCLE
        if not isinstance(schema, dict):
            return "value" if schema is not False else None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if stack.count(ref) >= MAX_REPEAT:
                return _CYCLE
            target = self.maker.resolver.deref(schema, self.where)
            return self.value(target, depth + 1, (*stack, ref), ref.rsplit("/", 1)[-1])
        for key in ("example", "const", "default"):
            if key in schema:
                return schema[key]
        if isinstance(schema.get("examples"), list) and schema["examples"]:
            return schema["examples"][0]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        if isinstance(schema.get("allOf"), list):
            return self.value(self.merge(schema, stack), depth + 1, stack, name)
        for key in ("oneOf", "anyOf"):
            choices = schema.get(key)
            if isinstance(choices, list) and choices:
                return self.one_of(schema, choices, depth, stack)
        if "not" in schema:
            self.maker.approximate(self.where, "a schema with `not` is generated without it")
        kind = _type_of(schema)
        if kind == "object":
            return self.object(schema, depth, stack, name)
        if kind == "array":
            return self.array(schema, depth, stack)
        if kind == "integer":
            return self.integer(schema)
        if kind == "number":
            return self.number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self.string(schema)

    def merge(self, schema: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        """allOf as one schema: properties and required lists combined, first other keys win."""
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        props: dict[str, Any] = dict(as_map(merged.get("properties")))
        required: list[str] = as_strs(merged.get("required"))
        for part in as_list(schema["allOf"]):
            if isinstance(part, dict) and stack.count(part.get("$ref", "")) >= MAX_REPEAT:
                continue
            part = self.maker.resolver.deref(part, self.where)
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("allOf"), list):
                part = self.merge(part, stack)
            props.update(as_map(part.get("properties")))
            required += [r for r in as_strs(part.get("required")) if r not in required]
            for key, val in part.items():
                merged.setdefault(key, val)
        merged["properties"], merged["required"] = props, required
        if props:
            merged.setdefault("type", "object")
        return merged

    def one_of(
        self, schema: dict[str, Any], choices: list[Any], depth: int, stack: tuple[str, ...]
    ) -> Any:
        index = self.rng.randrange(len(choices))
        chosen = choices[index]
        value = self.value(chosen, depth + 1, stack)
        disc = schema.get("discriminator")
        if (
            isinstance(value, dict)
            and isinstance(disc, dict)
            and isinstance(disc.get("propertyName"), str)
        ):
            ref = chosen.get("$ref", "") if isinstance(chosen, dict) else ""
            label = ref.rsplit("/", 1)[-1] if ref else None
            for key, target in as_map(disc.get("mapping")).items():
                if target == ref:
                    label = key
            if label:
                value[disc["propertyName"]] = label
        return value

    def object(self, schema: dict[str, Any], depth: int, stack: tuple[str, ...], name: str) -> Any:
        props = as_map(schema.get("properties"))
        required = set(as_strs(schema.get("required")))
        out: dict[str, Any] = {}
        for key, sub in props.items():
            sub_plain = sub if isinstance(sub, dict) else {}
            skip = "writeOnly" if self.mode == "response" else "readOnly"
            if sub_plain.get(skip) is True:
                continue
            if depth > OPTIONAL_DEPTH and key not in required:
                continue
            value = self.value(sub, depth + 1, stack)
            if value is not _CYCLE:
                out[key] = value
            elif key in required:
                out[key] = None
        extra = schema.get("additionalProperties")
        if not out and isinstance(extra, dict):
            value = self.value(extra, depth + 1, stack)
            if value is not _CYCLE:
                out["key1"] = value
        disc = schema.get("discriminator")
        if (
            name
            and isinstance(disc, dict)
            and isinstance(disc.get("propertyName"), str)
            and disc["propertyName"] in out
        ):
            labels = {str(v).rsplit("/", 1)[-1]: k for k, v in as_map(disc.get("mapping")).items()}
            out[disc["propertyName"]] = labels.get(name, name)
        return out

    def array(self, schema: dict[str, Any], depth: int, stack: tuple[str, ...]) -> Any:
        low = _int(schema.get("minItems"), 0)
        high = _int(schema.get("maxItems"), max(low, 2))
        count = min(max(low, 1), high, 20)
        items = schema.get("items", {})
        if isinstance(items, list):  # Swagger-era tuple form
            items = items[0] if items else {}
        out = []
        for _ in range(count):
            value = self.value(items, depth + 1, stack)
            if value is _CYCLE:
                break
            out.append(value)
        return out

    def integer(self, schema: dict[str, Any]) -> int:
        low, high = _bounds(schema, 1, 1000, step=1)
        lo, hi = math.ceil(low), math.floor(high)
        value = self.rng.randint(lo, max(lo, hi))
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0:
            value = math.ceil(value / step) * step
        return value

    def number(self, schema: dict[str, Any]) -> float:
        low, high = _bounds(schema, 0.0, 100.0, step=0.01)
        return round(self.rng.uniform(low, max(low, high)), 2)

    def string(self, schema: dict[str, Any]) -> str:
        rng = self.rng
        fmt = schema.get("format")
        word = rng.choice(_WORDS)
        moment = _EPOCH + timedelta(seconds=rng.randrange(365 * 86400))
        by_format = {
            "date-time": moment.isoformat().replace("+00:00", "Z"),
            "date": moment.date().isoformat(),
            "time": moment.time().isoformat() + "Z",
            "email": f"{word}{rng.randrange(100)}@example.com",
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "uri": f"https://example.com/{word}",
            "url": f"https://example.com/{word}",
            "uri-reference": f"/{word}",
            "hostname": f"{word}.example.com",
            "ipv4": f"192.0.2.{rng.randrange(1, 255)}",
            "ipv6": f"2001:db8::{rng.randrange(1, 0xFFFF):x}",
            "byte": base64.b64encode(word.encode()).decode(),
            "password": "********",
        }
        text = by_format.get(fmt, word) if isinstance(fmt, str) else word
        if isinstance(schema.get("pattern"), str):
            self.maker.approximate(
                self.where,
                f"a string must match /{schema['pattern']}/; the generated example "
                f"{text!r} may not (give the schema an `example`)",
            )
        low, high = _int(schema.get("minLength"), 0), _int(schema.get("maxLength"), 0)
        if len(text) < low:
            text += "x" * (low - len(text))
        if high and len(text) > high:
            text = text[:high]
        return text


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bounds(schema: dict[str, Any], low: float, high: float, *, step: float) -> tuple[float, float]:
    """Minimum and maximum, with both the 3.0 (boolean) and 3.1 (number) exclusive forms."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(ex_lo, int | float) and not isinstance(ex_lo, bool):
        lo, ex_lo = ex_lo, True
    if isinstance(ex_hi, int | float) and not isinstance(ex_hi, bool):
        hi, ex_hi = ex_hi, True
    if isinstance(lo, int | float):
        low = lo + (step if ex_lo is True else 0)
        if not isinstance(hi, int | float):
            high = max(high, low + 1000 * step * (100 if step < 1 else 1))
    if isinstance(hi, int | float):
        high = hi - (step if ex_hi is True else 0)
        if not isinstance(lo, int | float):
            low = min(low, high)
    return low, high
