"""The README's Python examples run as written (docs are tests)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.netns import ROOT, run_in_netns

pytest_plugins = ["pytester"]

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)


def test_the_readme_has_both_examples() -> None:
    assert len(BLOCKS) == 2, "update this test when the README's Python examples change"


@pytest.mark.netns
def test_the_python_api_example(tmp_path: Path) -> None:
    # The bundled profile uses fixed ports: run it where nothing else can hold them.
    code = f"import os; os.environ['SANDBOX_STATE_DIR'] = {str(tmp_path)!r}\n" + BLOCKS[0]
    done = run_in_netns(code, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["http://127.20.0.2:8000", "127.20.0.3", "5432"]


def test_the_pytest_example(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_readme_example=BLOCKS[1])
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
