"""The light half of the loader: the name a profile file gives itself, read without YAML."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.profile.finder import peek_name
from sandbox.profile.loader import bundled_dir, load_profile


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("name: web\nservices: {}\n", "web"),
        ("# a comment\nname: web-db_2   # the team's\nservices:\n  name: not-this\n", "web-db_2"),
        ("services:\n  a:\n    name: x\nname:\tweb\n", "web"),
        ("\ufeffname: web\n", "web"),
        ("description: |\n  name: inside\nname: web\n", "web"),
        ("services: {}\n", None),  # no name line
        ("name: web\nname: api\n", None),  # two: the loader refuses it, not us
        ('name: "web"\n', None),  # quoted
        ("name: &n web\n", None),  # an anchor
        ("name: !!str web\n", None),  # a tag
        ("name: Web\n", None),  # not a sandbox name
        ("name: web extra\n", None),
        ("name:\n  web\n", None),  # the value on the next line
        ("---\nname: web\n", None),  # documents
        ("{name: web, services: {}}\n", None),  # flow style
        ("<<: *base\nname: web\n", None),  # a merge
        ("? name\n: web\n", None),  # a complex key
        ('"name": web\n', None),
    ],
)
def test_peek_name(tmp_path: Path, text: str, name: str | None) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    assert peek_name(path) == name


def test_peek_name_agrees_with_the_loader_on_every_bundled_profile() -> None:
    paths = sorted(bundled_dir().glob("*.yaml"))
    assert len(paths) >= 3
    for path in paths:
        assert peek_name(path) == load_profile(path).name, path


def test_peek_name_refuses_what_is_not_a_small_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    assert peek_name(fifo) is None  # and returns at once: a FIFO is never opened
    big = tmp_path / "big.yaml"
    big.write_text("name: web\n" + "#" * (1 << 20))
    assert peek_name(big) is None
    assert peek_name(tmp_path) is None
    assert peek_name(tmp_path / "missing.yaml") is None
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"name: web\n# caf\xe9\n")
    assert peek_name(latin) is None
