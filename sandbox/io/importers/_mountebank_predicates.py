"""mountebank predicates as regex conditions on one request field each, reporting the rest.

A predicate becomes a list of `Cond`s (all must hold). Each names a field (`method`, `path`,
`query`, `headers`, `body`, `json` for a field of a JSON body, `data` for TCP) and a regex
searched in it. mountebank compares case-insensitively unless `caseSensitive` is true.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.io.importers import _regex as rx
from sandbox.io.importers._where import Where
from sandbox.io.report import ImportResult, Loss, LossKind

_SIMPLE = ("equals", "deepEquals", "contains", "startsWith", "endsWith", "matches", "exists")
_PARAMS = {"caseSensitive", "except", "keyCaseSensitive", "jsonpath", "xpath"}
_KEYED = {"query", "headers"}


@dataclass(frozen=True)
class Cond:
    """One condition: `regex` searched in `field` (and `key`, for query, headers and json)."""

    field: str
    key: str | None
    regex: str
    literal: str | None = None  # for an `equals` without `except`: the value itself
    ignore_case: bool = False


class Context:
    """What a predicate is read against: the protocol's fields and the TCP mode."""

    def __init__(self, protocol: str, binary: bool = False) -> None:
        self.protocol = protocol
        self.binary = binary

    @property
    def fields(self) -> set[str]:
        return (
            {"data"} if self.protocol == "tcp" else {"method", "path", "query", "headers", "body"}
        )


def conditions(predicates: Any, where: Where, ctx: Context) -> list[Cond]:
    """Every predicate of a stub (AND'd); what cannot be expressed is reported and left out."""
    out: list[Cond] = []
    for index, predicate in enumerate(predicates or []):
        found = predicate_conds(predicate, where.at(index), ctx)
        if found is not None:
            out.extend(found)
    return out


def predicate_conds(predicate: Any, where: Where, ctx: Context) -> list[Cond] | None:
    """One predicate as conditions, or None (reported) when it cannot be expressed."""
    if not isinstance(predicate, dict):
        where.drop("a predicate that is not an object is left out")
        return None
    operators = [k for k in predicate if k not in _PARAMS]
    if len(operators) != 1:
        where.drop(f"a predicate needs one operator, not {operators}; it is left out")
        return None
    op = operators[0]
    for scope in ("jsonpath", "xpath"):
        if scope in predicate:
            where.at(scope).drop(f"a predicate scoped by {scope} cannot be expressed; left out")
            return None
    if op == "and":
        return [
            c
            for i, p in enumerate(predicate[op])
            for c in predicate_conds(p, where.at(op, i), ctx) or []
        ]
    if op == "or":
        return _or(predicate[op], where.at(op), ctx)
    if op == "not":
        return _not(predicate[op], where.at(op), ctx)
    if op not in _SIMPLE:
        where.at(op).drop(f"the {op} predicate has no counterpart; it is left out")
        return None
    if not isinstance(predicate[op], dict):
        where.at(op).drop("the predicate's value is not an object of fields; it is left out")
        return None
    # binary data is compared as byte lists, where case plays no part
    ignore_case = not predicate.get("caseSensitive", False) and not ctx.binary
    strip = predicate.get("except")
    out: list[Cond] = []
    for name, value in predicate[op].items():
        here = where.at(op, name)
        if name not in ctx.fields:
            here.drop(f"the request field {name!r} cannot be matched; the condition is left out")
            continue
        out.extend(_field(op, name, value, here, ctx, ignore_case, strip))
    if op == "deepEquals" and any(c.field in _KEYED | {"json"} for c in out):
        where.at(op).approximate("deepEquals also refuses extra fields; the route accepts them")
    if ignore_case and any(c.field == "query" for c in out):
        where.at(op).approximate("query parameter names are matched with their case")
    return out


def _field(
    op: str, name: str, value: Any, where: Where, ctx: Context, ignore_case: bool, strip: Any
) -> list[Cond]:
    if name in _KEYED or (name == "body" and isinstance(value, dict)):
        if not isinstance(value, dict):
            where.drop(f"{name} must be an object of names; the condition is left out")
            return []
        field = "json" if name == "body" else name
        out = []
        for key, item in value.items():
            regex = _value(op, item, where.at(key), ctx, ignore_case, strip)
            if regex is not None:
                out.append(Cond(field, str(key), regex))
        return out
    if name == "method" and (
        op != "equals"
        or not isinstance(value, str)
        or strip
        or not (value.isascii() and value.isalpha())
    ):
        where.drop("only `equals` on the method can be expressed; the condition is left out")
        return []
    regex = _value(op, value, where, ctx, ignore_case, strip)
    if regex is None:
        return []
    literal = value if op == "equals" and not strip and isinstance(value, str) else None
    return [Cond(name, None, regex, literal, ignore_case)]


def _value(
    op: str, value: Any, where: Where, ctx: Context, ignore_case: bool, strip: Any
) -> str | None:
    if isinstance(value, dict | list):
        where.drop("a nested object or array value cannot be expressed; the condition is left out")
        return None
    if op == "exists":
        if value:
            return "(?s:.)"
        where.drop("a condition that a field is absent cannot be expressed; it is left out")
        return None
    text = "null" if value is None else json.dumps(value) if isinstance(value, bool) else str(value)
    if op == "matches":
        if ctx.binary or strip:
            where.drop("matches with binary data or `except` cannot be expressed; left out")
            return None
        try:
            pattern = rx.from_java(text)
        except ValueError as exc:
            where.drop(f"{exc}; the condition is left out")
            return None
        return f"(?i:{pattern})" if ignore_case else pattern
    if ctx.binary:
        try:
            text = base64.b64decode(text, validate=True).decode("latin-1")
        except binascii.Error:
            where.drop("binary data that is not base64 is left out")
            return None
    if strip:
        where.approximate(f"`except` /{strip}/ is allowed anywhere in the value")
        return _with_except(op, text, str(strip), ignore_case)
    build = {"equals": rx.exact, "deepEquals": rx.exact, "contains": rx.substring,
             "startsWith": rx.prefix, "endsWith": rx.suffix}[op]  # fmt: skip
    return build(text, ignore_case)


def _with_except(op: str, text: str, strip: str, ignore_case: bool) -> str:
    # Atomic, so the gap never backtracks: `except` patterns carry their own repeats, and a
    # backtracking repeat of a repeat is refused by validation (it can stall every stub).
    gap = f"(?>(?:{rx.from_java(strip)})*)"
    body = gap.join(re.escape(c) for c in text)
    head = "^" + gap if op in ("equals", "deepEquals", "startsWith") else ""
    tail = gap + "\\Z" if op in ("equals", "deepEquals", "endsWith") else ""
    pattern = head + body + tail
    return f"(?i:{pattern})" if ignore_case else pattern


def _grouped(conds: list[Cond]) -> tuple[tuple[str, str | None], str] | None:
    """The conditions as one regex when they all concern one field (and key), else None."""
    targets = {(c.field, c.key) for c in conds}
    if len(targets) != 1 or "method" in {c.field for c in conds}:
        return None
    regex = conds[0].regex
    for cond in conds[1:]:
        regex = rx.both(regex, cond.regex)
    return targets.pop(), regex


Grouped = tuple[tuple[str, str | None], str, list[Loss]]


def _quietly(item: Any, where: Where, ctx: Context) -> Grouped | None:
    """A sub-predicate as one field's regex and its approximations; None if any part of it
    would be dropped (the caller then drops the whole `or` / `not`)."""
    quiet = Where(ImportResult(profile={}), where.file, where.path)
    conds = predicate_conds(item, quiet, ctx)
    if not conds or any(loss.kind is LossKind.DROPPED for loss in quiet.result.losses):
        return None
    grouped = _grouped(conds)
    return (*grouped, quiet.result.losses) if grouped else None


def _or(items: Any, where: Where, ctx: Context) -> list[Cond] | None:
    groups = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        grouped = _quietly(item, where.at(index), ctx)
        if grouped is None:
            where.drop("`or` across fields, or over parts that cannot map, is left out")
            return None
        groups.append(grouped)
    if not groups or len({target for target, _, _ in groups}) != 1:
        where.drop("`or` across different fields cannot be expressed; it is left out")
        return None
    (field, key), _, _ = groups[0]
    for _, _, approximations in groups:
        where.result.losses.extend(approximations)
    return [Cond(field, key, "|".join(f"(?:{regex})" for _, regex, _ in groups))]


def _not(item: Any, where: Where, ctx: Context) -> list[Cond] | None:
    grouped = _quietly(item, where, ctx)
    if grouped is None:
        where.drop(
            "`not` over the method, over several fields, or over a part that cannot map is left out"
        )
        return None
    (field, key), regex, approximations = grouped
    if field in ("query", "headers", "json"):
        # a negated regex needs the field present; mountebank's `not` matches its absence too
        where.drop(
            f"`not` on {field} {key!r} cannot be expressed (a request without it "
            "matches in mountebank); the condition is left out"
        )
        return []
    where.result.losses.extend(approximations)
    return [Cond(field, key, rx.negate(regex))]
