"""The package metadata points at files that exist: the licence and the bundled profiles."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_licence_named_in_pyproject_is_in_the_repository() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")


def test_package_data_globs_match_files() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["sandbox"]
    matched = [p for g in globs for p in (ROOT / "sandbox").glob(g) if p.is_file()]
    assert any(p.name == "web-db-api.yaml" for p in matched)
    assert any(p.name == "py.typed" for p in matched)
