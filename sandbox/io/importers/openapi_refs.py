"""Local `$ref` resolution for OpenAPI documents: JSON pointers inside the file, bounded."""

from __future__ import annotations

from typing import Any

from sandbox.io.report import ImportResult

MAX_HOPS = 32  # a chain of refs longer than this is a cycle or a mistake


class Resolver:
    """Follows `#/...` references inside one document; anything else is reported and emptied.

    Each problem is reported once, at the location of the `$ref` that led to it.
    """

    def __init__(self, document: dict[str, Any], source: str, result: ImportResult) -> None:
        self.document = document
        self.source = source
        self.result = result
        self._reported: set[str] = set()

    def deref(self, node: Any, where: str) -> Any:
        """`node` itself, or what its `$ref` (chain) points to; `{}` when that cannot be found."""
        seen: list[str] = []
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen or len(seen) >= MAX_HOPS:
                self._report(
                    where, f"$ref {ref} loops back on itself; it counts as an empty schema"
                )
                return {}
            seen.append(ref)
            if not ref.startswith("#"):
                self._report(
                    where,
                    f"$ref {ref} points outside this file; remote and file references are "
                    "not fetched, so it counts as an empty schema (any value)",
                )
                return {}
            target = self.lookup(ref)
            if target is None:
                self._report(
                    where, f"$ref {ref} points to nothing in this file; it counts as empty"
                )
                return {}
            node = target
        return node

    def lookup(self, ref: str) -> Any:
        """The value at a local JSON pointer like `#/components/schemas/Pet`, or None."""
        node: Any = self.document
        for raw in ref[1:].split("/")[1:] if ref != "#" else []:
            part = raw.replace("~1", "/").replace("~0", "~").replace("%7B", "{").replace("%7D", "}")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def _report(self, where: str, what: str) -> None:
        key = f"{where}|{what}"
        if key not in self._reported:
            self._reported.add(key)
            self.result.drop(f"{self.source}{where}", what)
