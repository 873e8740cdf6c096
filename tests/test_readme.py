"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_examples_run(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # examples may write runs/...
    namespace: dict = {}
    ran = 0
    for block in blocks:
        if "PATH/TO" in block:  # the real-data examples need data prepared on the user's machine
            continue
        if "path/to/" in block:  # placeholders for the user's own files
            block = "\n".join(line for line in block.splitlines() if "path/to/" not in line)
        exec(compile(block, str(README), "exec"), namespace)
        ran += 1
    assert ran >= 3
