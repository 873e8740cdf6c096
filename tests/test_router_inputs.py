"""Router input forms (standardised, raw, balanced) and LinearMF as a matrix factorisation."""

from __future__ import annotations

import numpy as np
import pytest
from _tables import make_table

from agents.persistence import load_scorer, save_scorer
from agents.routers.inputs import InputTransform
from agents.supervised import LinearMFRouter, LinearRouter, fit_router
from mmr_gym.context import raw_query_features
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.table import RoutingTable


def embedding_table(n: int = 400, k: int = 6, seed: int = 0) -> RoutingTable:
    """A unit-norm "text" embedding channel beside unnormalised "image" statistics with large offsets."""
    rng = np.random.default_rng(seed)
    base = make_table(n=n, k=k, seed=seed)
    text = rng.normal(size=(n, 12)) + 2.0 * base.features["text"][:, :1]
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    image = 50.0 + 10.0 * rng.normal(size=(n, 5))
    return RoutingTable(
        correct=base.correct,
        cost=base.cost,
        query_ids=base.query_ids,
        datasets=base.datasets,
        model_names=base.model_names,
        features={"text": text.astype(np.float32), "image": image.astype(np.float32)},
        meta=base.meta,
        source="embedding-test-table",
    )


@pytest.fixture(scope="module")
def env() -> MMRRoutingEnv:
    return MMRRoutingEnv(embedding_table(), split="test", train_fraction=0.5, episode_length=20)


def raw_rows(env, rows):
    table = env.ctx.table
    return np.concatenate([table.features["text"][rows], table.features["image"][rows]], axis=1)


def test_a_raw_router_sees_the_encoders_features(env):
    # Fitted through the environment on observations, it predicts as the same router fitted on the
    # raw features directly: the observation is mapped back before the fit and every prediction.
    ctx = env.ctx
    train = ctx.train_indices
    through_env = fit_router("linear", env, inputs="raw")
    direct = LinearRouter(inputs="raw").fit(
        raw_rows(env, train), ctx.table.correct[train], ctx.table.cost[train]
    )
    rows = ctx.split_indices[:50]
    for a, b in zip(
        through_env.predict(ctx.query_obs[rows]), direct.predict(raw_rows(env, rows)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # And it is not the standardised router: ridge is not invariant to the columns' scales.
    standardised = fit_router("linear", env, inputs="standardised").predict(ctx.query_obs[rows])[0]
    assert np.abs(standardised - through_env.predict(ctx.query_obs[rows])[0]).max() > 1e-3


def test_balanced_keeps_embeddings_raw_and_scales_other_channels(env):
    ctx = env.ctx
    transform = InputTransform.fit("balanced", ctx.query_obs[ctx.train_indices], ctx.feature_scaling)
    inputs = transform(ctx.query_obs)
    raw = raw_query_features(ctx, ctx.query_obs)
    np.testing.assert_allclose(inputs[:, :12], raw[:, :12], atol=1e-5)  # the unit-norm text channel
    np.testing.assert_allclose(inputs[:, 12:], ctx.query_obs[:, 12:] / np.sqrt(5), atol=1e-5)
    # Every channel then has a squared norm of about 1 per query.
    image_norm = (np.linalg.norm(inputs[ctx.train_indices, 12:], axis=1) ** 2).mean()
    assert image_norm == pytest.approx(1.0, rel=1e-3)


def test_a_hidden_channel_stays_zero_in_every_input_form():
    env = MMRRoutingEnv(embedding_table(), split="test", modality="text", train_fraction=0.5)
    ctx = env.ctx
    for inputs in ("standardised", "raw", "balanced"):
        transform = InputTransform.fit(inputs, ctx.query_obs[ctx.train_indices], ctx.feature_scaling)
        assert not transform(ctx.query_obs)[:, 12:].any(), inputs


def test_with_a_projection_raw_inputs_are_reconstructed_and_predictions_take_observations():
    env = MMRRoutingEnv(embedding_table(), split="test", obs_dim=6, train_fraction=0.5)
    ctx = env.ctx
    router = fit_router("linear-mf", env, inputs="raw")
    assert router.n_features_ == 6 and router.n_inputs_ == 17
    perf, cost = router.predict(ctx.query_obs[:10])
    assert perf.shape == cost.shape == (10, 6)
    expected = InputTransform.fit("raw", ctx.query_obs[ctx.train_indices], ctx.feature_scaling)(ctx.query_obs)
    np.testing.assert_allclose(expected, raw_query_features(ctx, ctx.query_obs), atol=1e-4)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown inputs 'whitened'"):
        LinearRouter(inputs="whitened")
    with pytest.raises(ValueError, match="latent must be an integer >= 1"):
        LinearMFRouter(latent=0)


# ---------------------------------------------------------------------------------------- LinearMF
def test_linear_mf_differs_from_linear_on_a_small_table(env):
    # 17 features, fewer than the SVD rank: the reference's LinearMF would equal Linear here.
    X = env.ctx.query_obs[env.ctx.split_indices]
    mf = fit_router("linear-mf", env)
    linear = fit_router("linear", env, inputs=mf.inputs, alpha=mf.alpha)
    assert np.abs(mf.predict(X)[0] - linear.predict(X)[0]).max() > 0.01
    # Without sharing (latent=None) it is exactly that ridge: the difference is the factorisation.
    unshared = fit_router("linear-mf", env, latent=None)
    for a, b in zip(unshared.predict(X), linear.predict(X), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_linear_mf_is_a_query_embedding_times_model_embeddings(env):
    X = env.ctx.query_obs[env.ctx.split_indices]
    router = fit_router("linear-mf", env, latent=2)
    perf, cost = router.predict(X)
    for target, pred, embedding, bias in (
        ("perf", perf, router.perf_model_embedding_, router.perf_bias_),
        ("cost", cost, router.cost_model_embedding_, router.cost_bias_),
    ):
        u = router.query_embedding(X, target)
        assert u.shape == (X.shape[0], 2) and embedding.shape == (2, 6)
        expected = u @ embedding + bias
        if target == "cost":
            expected = np.maximum(expected, 0.0)  # predictions are clipped at 0
        np.testing.assert_allclose(pred, expected, atol=1e-9)
    # So the centred performance predictions have rank 2 across the 6 models.
    assert np.linalg.matrix_rank(perf - router.perf_bias_, tol=1e-8) == 2


def test_a_reloaded_linear_mf_on_a_projection_predicts_the_same(tmp_path):
    env = MMRRoutingEnv(embedding_table(), split="test", obs_dim=6, train_fraction=0.5)
    router = fit_router("linear-mf", env, inputs="balanced")
    loaded = load_scorer(save_scorer(router, tmp_path / "mf"))
    for a, b in zip(router.predict(env.ctx.query_obs), loaded.predict(env.ctx.query_obs), strict=True):
        np.testing.assert_array_equal(a, b)
