"""FeatureScaling: the raw features behind a query observation (for routers that want them)."""

from __future__ import annotations

import numpy as np
import pytest
from _tables import make_table

from mmr_gym.context import build_context, raw_query_features


def test_raw_features_undo_the_standardisation():
    table = make_table(n=300, seed=2)
    ctx = build_context(table, split="test")
    raw = raw_query_features(ctx, ctx.query_obs)
    expected = np.concatenate([table.features["text"], table.features["image"]], axis=1)
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-5)
    scaling = ctx.feature_scaling
    assert scaling.channels == ("text", "image") and scaling.widths == (4, 3)
    assert scaling.components is None


def test_a_hidden_channel_is_zero_in_the_raw_features():
    table = make_table(n=300, seed=2)
    ctx = build_context(table, split="test", modality="text")
    raw = raw_query_features(ctx, ctx.query_obs)
    np.testing.assert_allclose(raw[:, :4], table.features["text"], rtol=1e-5, atol=1e-5)
    assert not raw[:, 4:].any()  # the image channel, hidden: zeros as in the paper, not its mean
    assert ctx.feature_scaling.shown.tolist() == [True] * 4 + [False] * 3


def test_a_projection_is_reconstructed_exactly_when_it_keeps_every_dimension():
    table = make_table(n=300, seed=2)
    expected = np.concatenate([table.features["text"], table.features["image"]], axis=1)
    full = build_context(table, split="test", obs_dim=7)
    np.testing.assert_allclose(raw_query_features(full, full.query_obs), expected, rtol=1e-4, atol=1e-4)
    # Fewer components: the best reconstruction the observation allows, not the features.
    low = build_context(table, split="test", obs_dim=2)
    approx = raw_query_features(low, low.query_obs)
    assert approx.shape == expected.shape
    assert not np.allclose(approx, expected, atol=1e-2)


def test_a_table_without_features_observes_the_dataset_one_hot():
    ctx = build_context(make_table(n=100, features=False), split="test")
    raw = raw_query_features(ctx, ctx.query_obs)
    np.testing.assert_array_equal(raw, ctx.query_obs)
    assert ctx.feature_scaling.channels == ("dataset_onehot",)


def test_single_observations_map_back_like_rows():
    ctx = build_context(make_table(n=100, seed=4), split="test")
    rows = raw_query_features(ctx, ctx.query_obs[:5])
    one = raw_query_features(ctx, ctx.query_obs[3][None, :])
    np.testing.assert_array_equal(one[0], rows[3])
    with pytest.raises(ValueError, match=r"\[queries, 7\]"):
        raw_query_features(ctx, np.zeros((1, 3)))
