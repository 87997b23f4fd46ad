"""The fast path of loading: libyaml when present, and the profile handed to the supervisor."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from sandbox.errors import ProfileError
from sandbox.profile import loader
from sandbox.profile.loader import bundled_dir, load_profile, load_profile_text
from sandbox.profile.yaml_marks import parse

BUNDLED = sorted(bundled_dir().glob("*.yaml"))
needs_libyaml = pytest.mark.skipif(
    getattr(yaml, "CSafeLoader", None) is None, reason="PyYAML was built without libyaml"
)


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_the_validated_profile_passed_on_equals_the_loaded_one(path: Path) -> None:
    # `up -d` hands the supervisor the profile the CLI validated, pickled, instead of the file.
    profile = load_profile(path)
    assert pickle.loads(pickle.dumps(profile, protocol=pickle.HIGHEST_PROTOCOL)) == profile


@needs_libyaml
@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_libyaml_and_the_marks_loader_build_the_same_profile(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = path.read_text(encoding="utf-8")
    fast = load_profile_text(text, str(path))
    monkeypatch.setattr(loader, "_FAST_LOADER", None)
    assert load_profile_text(text, str(path)) == fast


@needs_libyaml
def test_an_invalid_file_is_reported_by_the_marks_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    # Same words and places with or without libyaml: errors always come from the marks loader.
    text = "name: demo\nservices:\n  api:\n    kind: http\n    port: 0\n  api: {}\n\t\n"
    with pytest.raises(ProfileError) as fast:
        load_profile_text(text, "p.yaml")
    monkeypatch.setattr(loader, "_FAST_LOADER", None)
    with pytest.raises(ProfileError) as marked:
        load_profile_text(text, "p.yaml")
    assert fast.value.problems == marked.value.problems
    assert fast.value.problems[0].startswith("p.yaml:")


_MIXED_YAML = """\
base: &base {kind: http, port: 80, tls: false, note: ~}
merged:
  <<: *base
  port: 81
many:
  <<: [*base, {extra: yes}]
tags: {a: !!str 12, b: "12", c: 12, d: 1.5, e: 0x1f, f: 2024-01-02, g: on, '=': x}
= : value key
keys: {1: one, false: no, null: nothing, 'quoted': "q", 2.5: float}
list: [a, *base, [b, c], {d: e}]
text: |
  block
  text
"""


@pytest.mark.parametrize("places", [True, False])
@pytest.mark.parametrize(
    "loader_class", [yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader)]
)
def test_the_marks_loader_builds_what_pyyaml_builds(
    loader_class: type[yaml.SafeLoader], places: bool
) -> None:
    # Its shortcuts (strings, keys, mappings without merges) must give PyYAML's own data.
    data, tree = parse(_MIXED_YAML, "m.yaml", loader_class, places=places)
    assert tree.problems == []
    assert data == yaml.load(_MIXED_YAML, Loader=yaml.SafeLoader)
    assert data["merged"] == {"kind": "http", "port": 81, "tls": False, "note": None}
    assert data["tags"]["a"] == "12"
    assert data["tags"]["c"] == 12
