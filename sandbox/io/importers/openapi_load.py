"""Read an OpenAPI document, YAML or JSON, into plain JSON-like data, bounded in size."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from sandbox.errors import SourceError
from sandbox.io.importers._source import parse_json, read_source

MAX_NODES = 2_000_000  # YAML aliases can make a small file expand into a huge tree
_SAFE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser, where libyaml is there


def load_document(source: Path) -> dict[str, Any]:
    """The document at `source` as JSON-like data. Raises SourceError saying where."""
    data = read_source(source, "OpenAPI document")
    if data.lstrip()[:1] in (b"{", b"["):
        doc = parse_json(data, str(source), "OpenAPI document")
    else:
        try:
            doc = yaml.load(data.decode("utf-8-sig"), Loader=_SAFE)
        except UnicodeDecodeError as exc:
            raise SourceError(f"{source} is not UTF-8 text ({exc.reason}).") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else str(source)
            problem = getattr(exc, "problem", None) or "cannot be read"
            raise SourceError(
                f"{where}: the OpenAPI document is not valid YAML: {problem}."
            ) from None
        except RecursionError:
            raise SourceError(f"{source} is nested too deeply to read.") from None
    budget = [MAX_NODES]
    try:
        doc = _plain(doc, budget)
    except RecursionError:
        raise SourceError(f"{source} is nested too deeply to read.") from None
    if budget[0] < 0:
        raise SourceError(
            f"{source} expands to more than {MAX_NODES} values (YAML aliases?); refused."
        )
    if not isinstance(doc, dict):
        raise SourceError(f"{source} is not an OpenAPI document: its top is not a mapping.")
    return doc


def _plain(value: Any, budget: list[int]) -> Any:
    """JSON-like data: string keys (YAML reads `200:` as a number), dates as ISO text."""
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, dict):
        return {str(k): _plain(v, budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, budget) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
