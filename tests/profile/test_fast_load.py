"""The fast path of loading: libyaml when present, and the profile handed to the supervisor."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from sandbox.errors import ProfileError
from sandbox.profile import loader
from sandbox.profile.loader import bundled_dir, load_profile, load_profile_text

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
