"""Shared test fixtures (keep small; table builders live in ``tests/_tables.py``)."""

from __future__ import annotations

import csv
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import mmr_gym.threads


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the user's feature/table cache (``~/.cache/mmr-gym``)."""
    monkeypatch.setenv("MMR_GYM_CACHE", str(tmp_path_factory.getbasetemp() / "mmr-gym-cache"))


@pytest.fixture(autouse=True)
def _threads_warning_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-time torch-threads warning (``mmr_gym.threads``) counts as given: without
    ``OMP_NUM_THREADS`` it would land in whichever test first builds an environment, perhaps inside
    a block that asserts no warnings. ``tests/test_threads.py`` tests it."""
    monkeypatch.setattr(mmr_gym.threads, "_warned", True)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write_csv(name, text)`` writes dedented ``text`` to ``tmp_path / name`` and returns the path.

    The first line of ``text`` after the opening newline is line 1 of the file.
    """

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def default_csv_field_limit():
    """The csv module's default field limit (128 KiB) during the test, whatever earlier tests set."""
    previous = csv.field_size_limit(131_072)
    yield
    csv.field_size_limit(previous)
