"""Fitted query features: TF-IDF fitted on the training split only, applied to every row."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mmr_gym.context import build_context
from mmr_gym.errors import TableError
from mmr_gym.fitted_features import (
    TfidfEncoder,
    encode_table_features,
    fit_query_features,
    tfidf_spec,
)
from mmr_gym.table import RoutingTable
from tests._tables import make_table

WORDS = ["cat", "dog", "bird", "fish", "tree", "rock", "lamp", "door"]


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=4)) for _ in range(n)]


def _table(
    n: int = 40, texts: list[str] | None = None, spec: dict | None = None, features: bool = False
) -> RoutingTable:
    base = make_table(n=n, features=features)
    meta = {**base.meta, "fitted_features": {"text_tfidf": spec or tfidf_spec(dim=4)}}
    return RoutingTable(
        correct=base.correct,
        cost=base.cost,
        query_ids=base.query_ids,
        datasets=base.datasets,
        model_names=base.model_names,
        features=dict(base.features),
        meta=meta,
        source=base.source,
        texts=texts if texts is not None else _texts(n),
    )


def test_fitted_on_training_rows_applied_to_all() -> None:
    table = _table()
    train = np.arange(0, 40, 3)
    channels = fit_query_features(table, train)
    assert list(channels) == ["text_tfidf"]
    expected = TfidfEncoder(dim=4).fit(table.texts[train].tolist()).transform(table.texts.tolist())
    np.testing.assert_array_equal(channels["text_tfidf"], expected)
    assert channels["text_tfidf"].shape == (40, 4) and channels["text_tfidf"].dtype == np.float32


def test_a_word_seen_only_in_test_rows_adds_nothing() -> None:
    """The vocabulary comes from the training texts: a test query made of unseen words is a zero row."""
    texts = _texts(40)
    texts[39] = "zebra quantum zebra"
    channels = fit_query_features(_table(texts=texts, spec=tfidf_spec(dim=64)), np.arange(30))
    assert not channels["text_tfidf"][39].any()
    assert np.abs(np.linalg.norm(channels["text_tfidf"][:39], axis=1) - 1).max() < 1e-5


def test_test_texts_cannot_move_the_training_features() -> None:
    """No leak: rewriting every test query's text leaves every training row's features unchanged."""
    train = np.arange(25)
    texts = _texts(40)
    other = texts[:25] + [f"{w} {w} planet orbit" for w in WORDS * 2][:15]
    a = fit_query_features(_table(texts=texts), train)["text_tfidf"]
    b = fit_query_features(_table(texts=other), train)["text_tfidf"]
    np.testing.assert_array_equal(a[train], b[train])
    assert not np.array_equal(a[25:], b[25:])


def test_nothing_to_fit_and_bad_specs() -> None:
    assert fit_query_features(make_table(n=5), [0, 1]) == {}
    no_texts = _table()
    no_texts = RoutingTable(**{**_fields(no_texts), "texts": None})
    with pytest.raises(TableError, match="holds no query texts"):
        fit_query_features(no_texts, [0])
    with pytest.raises(TableError, match="unknown fitted encoder"):
        fit_query_features(_table(spec={"encoder": "bm25"}), [0])
    clash = _table(features=True)
    clash = RoutingTable(**{**_fields(clash), "meta": {"fitted_features": {"text": tfidf_spec()}}})
    with pytest.raises(
        TableError,
        match=re.escape("""column "meta['fitted_features']['text']": the table already has this channel"""),
    ):
        fit_query_features(clash, [0])
    with pytest.raises(ValueError, match="train_indices is empty"):
        fit_query_features(_table(), [])
    with pytest.raises(ValueError, match=r"rows in \[0, 40\)"):
        fit_query_features(_table(), [40])


def _fields(table: RoutingTable) -> dict:
    return {
        "correct": table.correct,
        "cost": table.cost,
        "query_ids": table.query_ids,
        "datasets": table.datasets,
        "model_names": table.model_names,
        "features": dict(table.features),
        "meta": dict(table.meta),
        "source": table.source,
        "texts": table.texts,
    }


def test_the_environment_context_fits_on_its_training_split() -> None:
    """build_context fits the channel on its own training rows: the observation uses it, and
    the split's test texts do not move the training rows' features."""
    table = _table(n=60)
    ctx = build_context(table, split="test", train_fraction=0.5, split_seed=1)
    assert ctx.channels == ("text_tfidf",)
    expected = fit_query_features(table, ctx.train_indices)["text_tfidf"]
    np.testing.assert_array_equal(ctx.table.features["text_tfidf"], expected)
    assert ctx.query_obs.shape == (60, 4)
    other_split = build_context(table, split="test", train_fraction=0.5, split_seed=2)
    assert not np.array_equal(other_split.table.features["text_tfidf"], ctx.table.features["text_tfidf"])


def test_encode_table_features_defers_tfidf_and_runs_the_rest(tmp_path) -> None:
    channels, notes, fitted = encode_table_features(
        ["a b", "c d"], ["", ""], ["tfidf", "image-stats"], cache_dir=False, progress=False
    )
    assert set(channels) == {"image"} and not channels["image"].any()  # no images: zero rows
    assert fitted == {"text_tfidf": {"encoder": "tfidf", "dim": 64, "seed": 0}}
    assert notes["text_tfidf"].startswith(
        "TF-IDF+SVD (64 dims), fitted on the texts of the training split only"
    )
    with pytest.raises(ValueError, match="unknown feature encoder 'bert'"):
        encode_table_features(["a"], [""], ["bert"])


def test_encoder_width_and_degenerate_inputs() -> None:
    encoder = TfidfEncoder(dim=8).fit(["alpha beta", "beta gamma"])
    out = encoder.transform(["alpha", "delta", ""])
    assert out.shape == (3, 8) and not out[1].any() and not out[2].any()  # unseen word, empty text
    assert not TfidfEncoder(dim=3).fit(["", " "]).transform(["x"]).any()  # empty vocabulary
    assert TfidfEncoder(dim=3).transform(["x"]).shape == (1, 3)  # never fitted: zeros
    with pytest.raises(ValueError, match="dim must be >= 1"):
        TfidfEncoder(dim=0)
