"""A seeded generative model of MMR-Bench-style outcome tables (SIMULATED data).

The model is item-response-theory style. Every query ``q`` of dataset ``d`` has a vector of skill
demands ``z_q = mu_d + skill_sd * u_q`` (``u_q ~ N(0, I)``) over :data:`SKILLS`, and a hardness
``h_q ~ N(0, 1)`` that is partly a function of ``u_q`` (harder queries demand more of every skill,
and so are partly visible in the features) and partly hidden. Every model ``m`` has a general
strength ``beta_m`` and an ability per skill ``a_m``. Then::

    logit P(correct) = offset_d + model_scale_d * c_md + kappa * <a_m - mean_a, z_q - mu_d>
                       - hardness_scale_d * h_q + eta * e_qm
    c_md = (beta_m + <a_m, mu_d>) - mean over models          (the model's standing on dataset d)
    correct ~ Bernoulli(P(correct))

``e_qm ~ N(0, 1)`` is query-model noise that no feature predicts. The three per-dataset numbers
(``offset_d``, ``model_scale_d``, ``hardness_scale_d``) are calibrated deterministically (root
finding on expected values, no sampling) so that the expected mean-over-models accuracy (the
paper's "Random" Ps), the best single model's accuracy and the per-query oracle accuracy match the
targets of MMR-Bench Table 2 (:func:`calibrate_dataset`).

Costs are tokens times prices: ``cost_qm = price_in_m * prompt_tokens_q + price_out_m *
output_tokens_qm``. Prompt tokens (text + image) are lognormal with a dataset mean; output tokens
are lognormal with a model mean (verbosity, reasoning tokens included), a dataset factor, and grow
with hardness. Input prices are set in closed form so each model's *expected* mean cost equals its
``mean_cost`` anchor (relative cost units on the reference repo's scale: Qwen2.5-VL-3B 0.03,
Qwen2.5-VL-7B 0.07, InternVL3-78B 0.70, GPT-5 10.0).

Features: two channels, ``"text"`` and ``"image"``, each a noisy random linear view of some skill
demands, a dataset embedding (scenario + dataset, visible in both) and nuisance directions that do
not affect outcomes. Some skills are visible only in the image channel, some only in the text
channel and some in both, so fusing both channels predicts success better than either alone. The
skill loadings are partly dataset-specific (``feature_domain_share``): what makes a query hard
looks different in an OCR screenshot and in a geometry figure, so a linear router learns each
dataset's map separately rather than pooling them.

How informative the features are is calibrated to the paper's LinearMF router (TruncatedSVD +
ridge heads on the fused features, in-split with 20% training, per-query threshold protocol): the
preset's ``feature_noise_sd`` and ``feature_domain_share`` minimise the distance between that
router's Ps gain over the best single model and nAUC on this simulator and Table 2's LinearMF rows
(seven datasets and the merged table), found once by a deterministic grid search
(``benchmarks/bench_sim.py --search``; choice and grid in ``envs_data/README.md``). Neither knob
changes an outcome or a cost, so the accuracy calibration above is untouched by it.

Randomness comes from ``np.random.default_rng(seed)``, drawn in a fixed order (:func:`simulate`),
plus a second stream ``default_rng([seed, 1])`` for the dataset-specific feature loadings, so the
same seed gives the same :meth:`RoutingTable.fingerprint`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy.special import expit

from mmr_gym.sim.calibration import DatasetCalibration, calibrate_dataset, expected_stats
from mmr_gym.sim.config import SimConfig
from mmr_gym.table import RoutingTable

GENERATOR = "mmr_gym.sim"
COST_UNIT = "relative cost units (reference-repo scale, simulated)"


def _lognormal_with_mean(rng: np.random.Generator, mean: np.ndarray, sigma: float, size: Any) -> np.ndarray:
    """Lognormal draws whose expectation is ``mean`` (the ``-sigma^2 / 2`` keeps the mean fixed)."""
    return mean * np.exp(sigma * rng.standard_normal(size) - 0.5 * sigma**2)


def token_prices(config: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-model (input, output) price per token [relative cost units per token], float64 ``[K]``.

    :attr:`SimConfig.prices` when given. Otherwise in closed form: with dataset weights
    ``w_d = size_d / n``, the expected cost of model ``m`` is ``price_in_m * (E[prompt] + ratio_m *
    output_tokens_m * E[output_factor])`` (hardness and token noise are mean-one multipliers),
    which is set equal to ``mean_cost_m``.
    """
    if config.prices is not None:
        frozen = np.array(config.prices, dtype=np.float64)
        return frozen[:, 0], frozen[:, 1]
    sizes = np.array([d.size for d in config.datasets], dtype=np.float64)
    weights = sizes / sizes.sum()
    mean_prompt = float(weights @ np.array([d.prompt_tokens for d in config.datasets]))
    mean_factor = float(weights @ np.array([d.output_factor for d in config.datasets]))
    ratio = np.array([m.output_price_ratio for m in config.models])
    out_tokens = np.array([m.output_tokens for m in config.models])
    mean_cost = np.array([m.mean_cost for m in config.models])
    price_in = mean_cost / (mean_prompt + ratio * out_tokens * mean_factor)
    return price_in, price_in * ratio


def simulate(config: SimConfig, seed: int) -> RoutingTable:
    """Generate an outcome table from ``config`` with ``np.random.default_rng(seed)``.

    Draw order (fixed, so a seed names one table): dataset embeddings; per query the skill
    deviations and the hidden hardness; the query-model noise; the feature projections, nuisance
    latents and observation noise (text, then image); prompt tokens; output-token noise; the
    Bernoulli uniforms. Calibration happens before the Bernoulli draws and uses no randomness.

    Returns:
        A :class:`RoutingTable` with ``correct`` in {0, 1}, ``cost`` in :data:`COST_UNIT`,
        features ``"text"`` ``[n, text_dim]`` and ``"image"`` ``[n, image_dim]`` (float32), and a
        ``meta`` that records the generator, the config, the seed, the prices and the calibration.
    """
    rng = np.random.default_rng(seed)
    skills = config.skills
    n_skills = len(skills)
    ds = config.datasets
    n = config.n_queries
    k = len(config.models)

    sizes = np.array([d.size for d in ds])
    ds_index = np.repeat(np.arange(len(ds)), sizes)  # dataset position of each query
    query_ids = np.array([f"{d.name}_{i}" for d in ds for i in range(d.size)], dtype=object)
    datasets = np.array([d.name for d in ds], dtype=object)[ds_index]

    # Dataset embeddings: datasets of one scenario sit near each other, so the scenario is visible.
    scenarios = list(dict.fromkeys(d.scenario for d in ds))
    scenario_embed = config.scenario_embed_sd * rng.standard_normal(
        (len(scenarios), config.dataset_embed_dim)
    )
    dataset_embed = np.stack([scenario_embed[scenarios.index(d.scenario)] for d in ds])
    dataset_embed = dataset_embed + config.dataset_embed_sd * rng.standard_normal(dataset_embed.shape)

    # Query latents.
    demand_mean = np.array([d.demand for d in ds], dtype=np.float64)[ds_index]  # [n, S]
    u = rng.standard_normal((n, n_skills))
    hidden = rng.standard_normal(n)
    z = demand_mean + config.skill_sd * u
    omega = config.hardness_skill_share
    hardness = math.sqrt(omega) * u.sum(axis=1) / math.sqrt(n_skills) + math.sqrt(1.0 - omega) * hidden
    noise = rng.standard_normal((n, k))

    # Model standing per dataset and the query-model interaction.
    abilities = np.array([m.skills for m in config.models], dtype=np.float64)  # [K, S]
    strength = np.array([m.strength for m in config.models], dtype=np.float64)
    standing = strength[None, :] + np.array([d.demand for d in ds]) @ abilities.T  # [D, K]
    standing = standing - standing.mean(axis=1, keepdims=True)
    centred = abilities - abilities.mean(axis=0, keepdims=True)
    base = config.interaction_scale * (config.skill_sd * u) @ centred.T + config.idiosyncratic_sd * noise

    # Calibration (deterministic) and the success probabilities.
    logits = np.empty((n, k))
    calibration: list[DatasetCalibration] = []
    for j, spec in enumerate(ds):
        rows = ds_index == j
        if config.calibrate and spec.has_targets:
            off, ms, hs, solver = calibrate_dataset(spec, standing[j], base[rows], hardness[rows])
        else:
            off, ms, hs = config.default_offset, config.default_model_scale, config.default_hardness_scale
            solver = "defaults"
        exp_random, exp_best, exp_oracle = expected_stats(
            off, ms, hs, standing[j], base[rows], hardness[rows]
        )
        calibration.append(
            DatasetCalibration(
                spec.name,
                off,
                ms,
                hs,
                exp_random,
                exp_best,
                exp_oracle,
                spec.target_random,
                spec.target_best,
                spec.target_oracle,
                solver,
            )
        )
        logits[rows] = off + ms * standing[j][None, :] + base[rows] - hs * hardness[rows, None]

    # Features: noisy random linear views; the skill sets decide what only one channel can see.
    # The dataset-specific part of the skill loadings comes from its own stream, so that
    # feature_domain_share changes the features only (the outcomes and costs stay draw for draw).
    domain_rng = np.random.default_rng([seed, 1])
    lam = config.feature_domain_share
    features: dict[str, np.ndarray] = {}
    for channel, visible, width in (
        ("text", config.text_skills, config.text_dim),
        ("image", config.image_skills, config.image_dim),
    ):
        cols = [skills.index(s) for s in visible]
        nuisance = rng.standard_normal((n, config.nuisance_dim))
        latent = np.concatenate([z[:, cols], dataset_embed[ds_index], nuisance], axis=1)
        projection = rng.standard_normal((latent.shape[1], width)) / math.sqrt(latent.shape[1])
        specific = domain_rng.standard_normal((len(ds), len(cols), width)) / math.sqrt(latent.shape[1])
        if lam > 0:
            projection[: len(cols)] *= math.sqrt(1.0 - lam)
        observed = latent @ projection + config.feature_noise_sd * rng.standard_normal((n, width))
        if lam > 0:
            for j in range(len(ds)):
                rows = ds_index == j
                observed[rows] += math.sqrt(lam) * z[rows][:, cols] @ specific[j]
        # Rounding to a power-of-two grid leaves exact float32 values with zero low bits (small npz).
        q = config.feature_quantum
        features[channel] = (np.round(observed / q) * q).astype(np.float32)

    # Costs: integer token counts times per-token prices.
    price_in, price_out = token_prices(config)
    prompt_mean = np.array([d.prompt_tokens for d in ds])[ds_index]
    prompt_tokens = np.maximum(
        1.0, np.round(_lognormal_with_mean(rng, prompt_mean, config.prompt_token_sigma, n))
    )
    gamma = config.output_hardness_slope
    out_mean = (
        np.array([m.output_tokens for m in config.models])[None, :]
        * np.array([d.output_factor for d in ds])[ds_index][:, None]
        * np.exp(gamma * hardness - 0.5 * gamma**2)[:, None]  # harder queries get longer answers
    )
    output_tokens = np.maximum(
        1.0, np.round(_lognormal_with_mean(rng, out_mean, config.output_token_sigma, (n, k)))
    )
    cost = price_in[None, :] * prompt_tokens[:, None] + price_out[None, :] * output_tokens

    correct = (rng.random((n, k)) < expit(logits)).astype(np.float32)

    meta: dict[str, Any] = {
        "generator": GENERATOR,
        "config": config.name,
        "seed": int(seed),
        "simulated": True,
        "description": "SIMULATED outcome table (item-response model calibrated to MMR-Bench Table 2); "
        "not measured model outputs",
        "cost_unit": COST_UNIT,
        "cost_source": "simulated",
        "scenarios": {d.name: d.scenario for d in ds},
        "prices": {
            m.name: {
                "mean_cost_target": m.mean_cost,
                "input_per_token": float(price_in[i]),
                "output_per_token": float(price_out[i]),
            }
            for i, m in enumerate(config.models)
        },
        "calibration": [dataclasses.asdict(c) for c in calibration],
        "parameters": dataclasses.asdict(config),
    }
    return RoutingTable(
        correct=correct,
        cost=cost,
        query_ids=query_ids,
        datasets=datasets,
        model_names=tuple(m.name for m in config.models),
        features=features,
        meta=meta,
        source=f"{GENERATOR}:{config.name}:seed={seed}",
    )
