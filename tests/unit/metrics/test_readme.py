"""The README's library section runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[3] / "README.md"


def _library_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("<!-- section:library -->", 1)[1].split("<!-- /section:library -->")[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.usefixtures("clean_default_registry")
def test_readme_library_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Every python block of the README library section executes without error."""
    blocks = _library_blocks()
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme_example"})
    assert "http://127.0.0.1:" in capsys.readouterr().out
