"""Small synthetic outcome tables for fast tests (the real and bundled tables have their own tests)."""

from __future__ import annotations

import numpy as np

from mmr_gym.table import RoutingTable


def make_table(
    n: int = 200,
    k: int = 4,
    *,
    seed: int = 0,
    graded: bool = False,
    datasets: tuple[str, ...] = ("alpha", "beta"),
    features: bool = True,
) -> RoutingTable:
    """``n`` queries, ``k`` models whose price and skill both grow with the index."""
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.3, 0.8, k)
    price = np.geomspace(0.01, 1.0, k)
    latent = rng.normal(size=(n, 2))
    p = np.clip(skill[None, :] + 0.15 * latent[:, :1] * np.linspace(-1, 1, k)[None, :], 0.02, 0.98)
    correct = rng.random((n, k)) < p if not graded else np.round(p * rng.random((n, k)) ** 0.3, 3)
    cost = price[None, :] * rng.lognormal(0.0, 0.3, size=(n, k))
    feats = {}
    if features:
        feats = {
            "text": np.concatenate([latent[:, :1], rng.normal(size=(n, 3))], axis=1),
            "image": np.concatenate([latent[:, 1:], rng.normal(size=(n, 2))], axis=1),
        }
    return RoutingTable(
        correct=correct.astype(np.float32),
        cost=cost.astype(np.float32),
        query_ids=[f"q{i}" for i in range(n)],
        datasets=[datasets[i % len(datasets)] for i in range(n)],
        model_names=tuple(f"model{j}" for j in range(k)),
        features=feats,
        meta={"cost_unit": "test units", "cost_source": "simulated"},
        source="synthetic-test-table",
    )
