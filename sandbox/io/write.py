"""Write an imported profile: YAML text in a stable order, its extra files, and its report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sandbox.io.report import ImportResult


def profile_yaml(data: dict[str, Any]) -> str:
    """The profile as YAML, keys in the order the importer built them."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def write_result(result: ImportResult, target: Path) -> list[Path]:
    """Write the profile to `target` and its extra files beside it; return what was written.

    Extra files are confined to the profile's folder: a key that would leave it is refused.
    """
    folder = target.parent
    written = [target]
    folder.mkdir(parents=True, exist_ok=True)
    for rel, content in result.files.items():
        path = (folder / rel).resolve()
        if not path.is_relative_to(folder.resolve()):
            raise ValueError(f"extra file {rel!r} would be written outside {folder}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        written.append(path)
    target.write_text(profile_yaml(result.profile), encoding="utf-8")
    return written
