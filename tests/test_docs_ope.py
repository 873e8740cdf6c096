"""docs/ope.md's Python examples run as written, in order, and reach a decision."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "ope.md"


def test_the_off_policy_evaluation_guide_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # the guide writes production-log.parquet
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the guide's small-sample warnings are part of its story
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    assert (tmp_path / "production-log.parquet").is_file()
    assert namespace["result"].verdict() in {"better", "worse", "undecided"}
    assert len(namespace["log"]) == 10_000
