"""A seeded generative model of MMR-Bench-style outcome tables (SIMULATED data).

The bundled default table (``mmr_gym/envs_data/mmr-sim-default``) is made here, so the environment
works offline and its data can be regenerated bit for bit:

    python -m mmr_gym.sim --out mmr_gym/envs_data/mmr-sim-default --seed 0

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

Scenario knobs (:func:`with_queries`, :func:`with_prices`, :func:`reprice`,
:func:`shifted_split`) give what a real table cannot: any number of queries, a different dataset
mix for testing, price changes. :mod:`mmr_gym.sim_fit` fits a generative model to a real table.

Randomness comes from ``np.random.default_rng(seed)``, drawn in a fixed order (:func:`simulate`),
plus a second stream ``default_rng([seed, 1])`` for the dataset-specific feature loadings, so the
same seed gives the same :meth:`RoutingTable.fingerprint`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import brentq, root
from scipy.special import expit, log_expit

from mmr_gym.table import RoutingTable

GENERATOR = "mmr_gym.sim"
COST_UNIT = "relative cost units (reference-repo scale, simulated)"
DEFAULT_CONFIG_NAME = "mmr-sim-default"

#: Latent skill dimensions of a query's demands and a model's abilities.
SKILLS: tuple[str, ...] = ("ocr", "perception", "knowledge", "symbolic", "diagram", "multistep")


@dataclass(frozen=True)
class ModelSpec:
    """One candidate model.

    Attributes:
        name: model name (column prefix in the outcome table).
        mean_cost: expected mean cost per call over the configured query mix [relative cost units].
        output_price_ratio: price of an output token / price of an input token [dimensionless].
        output_tokens: mean output tokens (reasoning tokens included) on a query of average
            hardness and dataset output factor 1 [tokens].
        strength: general ability [logit].
        skills: ability per skill of :attr:`SimConfig.skills` [logit per unit of skill demand].
    """

    name: str
    mean_cost: float
    output_price_ratio: float
    output_tokens: float
    strength: float
    skills: tuple[float, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """One benchmark dataset.

    Attributes:
        name: dataset name; query ids are ``f"{name}_{i}"``.
        scenario: the MMR-Bench scenario (``"OCR"``, ``"VQA"``, ``"Math"``).
        size: number of queries.
        size_source: where the size comes from (the public benchmark split it mirrors).
        prompt_tokens: mean prompt length, text plus image tokens [tokens].
        output_factor: multiplier on every model's ``output_tokens`` [dimensionless].
        demand: mean skill demand ``mu_d`` per skill [skill units].
        target_random: target expected mean-over-models accuracy [fraction], or None.
        target_best: target expected accuracy of the best single model [fraction], or None.
        target_oracle: target expected per-query oracle accuracy (some model correct) [fraction],
            or None. Without all three targets the dataset uses the config's default scales.
    """

    name: str
    scenario: str
    size: int
    size_source: str
    prompt_tokens: float
    output_factor: float
    demand: tuple[float, ...]
    target_random: float | None = None
    target_best: float | None = None
    target_oracle: float | None = None

    @property
    def has_targets(self) -> bool:
        return None not in (self.target_random, self.target_best, self.target_oracle)


@dataclass(frozen=True)
class SimConfig:
    """Every parameter of the simulator, with its unit.

    Attributes:
        name: preset name, recorded in the table's meta.
        skills: names of the latent skill dimensions.
        models: the candidate models, in column order.
        datasets: the datasets, in row order.
        skill_sd: standard deviation of a query's skill demand around its dataset mean [skill units].
        interaction_scale: ``kappa``, weight of the query-model skill interaction [logit per
            (ability x demand)]; this is the part of success a router can learn from features.
        hardness_skill_share: share of hardness variance that comes from the (observable) skill
            demands; the rest is hidden [fraction in [0, 1]].
        idiosyncratic_sd: ``eta``, sd of unpredictable query-model noise [logit].
        default_offset: ``offset_d`` for datasets without targets [logit].
        default_model_scale: ``model_scale_d`` for datasets without targets [dimensionless].
        default_hardness_scale: ``hardness_scale_d`` for datasets without targets [logit per sd].
        calibrate: solve the per-dataset scales from the targets (else use the defaults everywhere).
        prompt_token_sigma: lognormal sigma of prompt tokens [natural-log tokens].
        output_token_sigma: lognormal sigma of output tokens [natural-log tokens].
        output_hardness_slope: growth of log output tokens per sd of hardness [natural-log tokens].
        text_skills: skills visible in the text channel.
        image_skills: skills visible in the image channel.
        text_dim: width of the ``"text"`` feature channel [features].
        image_dim: width of the ``"image"`` feature channel [features].
        dataset_embed_dim: width of the dataset embedding seen by both channels [latent dims].
        scenario_embed_sd: sd of a scenario's embedding [feature units].
        dataset_embed_sd: sd of a dataset's embedding around its scenario's [feature units].
        nuisance_dim: latent directions per channel that do not affect outcomes [latent dims].
        feature_noise_sd: sd of the per-feature observation noise [feature units].
        feature_domain_share: share of the variance of each feature's skill loadings that is
            specific to the query's dataset [fraction in [0, 1]]: 0, every dataset maps skill
            demands to features the same way; 1, each dataset its own way (what looks hard in an
            OCR screenshot and in a geometry figure are different embedding directions), so a
            linear router cannot pool what it learns across datasets.
        feature_quantum: features are rounded to multiples of this (a power of two, so the float32
            values are exact and compress well) [feature units].
        prices: per model (in order) its ``(input, output)`` price per token [relative cost units
            per token]; None: solved from the ``mean_cost`` anchors over this config's mix
            (:func:`token_prices`). :func:`with_queries` freezes them, so that a changed mix keeps
            the prices and shifts the mean costs instead, as it would in reality.
    """

    name: str
    skills: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    datasets: tuple[DatasetSpec, ...]
    skill_sd: float = 1.0
    interaction_scale: float = 1.0
    hardness_skill_share: float = 0.5
    idiosyncratic_sd: float = 0.5
    default_offset: float = 0.5
    default_model_scale: float = 1.0
    default_hardness_scale: float = 1.5
    calibrate: bool = True
    prompt_token_sigma: float = 0.35
    output_token_sigma: float = 0.5
    output_hardness_slope: float = 0.3
    text_skills: tuple[str, ...] = ("knowledge", "symbolic", "diagram", "multistep")
    image_skills: tuple[str, ...] = ("ocr", "perception", "diagram", "multistep")
    text_dim: int = 16
    image_dim: int = 16
    dataset_embed_dim: int = 4
    scenario_embed_sd: float = 1.0
    dataset_embed_sd: float = 0.5
    nuisance_dim: int = 4
    # Calibrated to the paper's LinearMF (benchmarks/bench_sim.py --search; envs_data/README.md).
    feature_noise_sd: float = 0.02
    feature_domain_share: float = 1.0
    feature_quantum: float = 2.0**-10
    prices: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        s = len(self.skills)
        if s == 0 or len(set(self.skills)) != s:
            raise ValueError(f"skills must be non-empty and unique, got {self.skills}")
        if not self.models or not self.datasets:
            raise ValueError("a SimConfig needs at least one model and one dataset")
        for kind, names in (
            ("model", [m.name for m in self.models]),
            ("dataset", [d.name for d in self.datasets]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate {kind} names in {names}")
        for m in self.models:
            if len(m.skills) != s:
                raise ValueError(f"model {m.name!r}: {len(m.skills)} skill abilities for {s} skills")
            if not (m.mean_cost > 0 and m.output_price_ratio >= 0 and m.output_tokens > 0):
                raise ValueError(f"model {m.name!r}: mean_cost and output_tokens must be > 0")
        for d in self.datasets:
            if len(d.demand) != s:
                raise ValueError(f"dataset {d.name!r}: {len(d.demand)} skill demands for {s} skills")
            if d.size <= 0 or d.prompt_tokens <= 0 or d.output_factor <= 0:
                raise ValueError(f"dataset {d.name!r}: size, prompt_tokens and output_factor must be > 0")
            if d.has_targets and not 0 < d.target_random < d.target_best < d.target_oracle < 1:  # type: ignore[operator]
                raise ValueError(f"dataset {d.name!r}: targets need 0 < random < best < oracle < 1")
        for channel in (self.text_skills, self.image_skills):
            unknown = set(channel) - set(self.skills)
            if unknown:
                raise ValueError(f"unknown skill(s) {sorted(unknown)} in a feature channel")
        if self.prices is not None and (
            len(self.prices) != len(self.models) or not all(len(p) == 2 and min(p) >= 0 for p in self.prices)
        ):
            raise ValueError(f"prices needs one (input, output) pair >= 0 per model, got {self.prices}")
        if not 0.0 <= self.hardness_skill_share <= 1.0:
            raise ValueError("hardness_skill_share must be in [0, 1]")
        if not 0.0 <= self.feature_domain_share <= 1.0:
            raise ValueError("feature_domain_share must be in [0, 1]")
        if self.feature_quantum <= 0 or math.log2(self.feature_quantum) != round(
            math.log2(self.feature_quantum)
        ):
            raise ValueError("feature_quantum must be a power of two")

    @property
    def n_queries(self) -> int:
        return sum(d.size for d in self.datasets)


@dataclass(frozen=True)
class DatasetCalibration:
    """The solved per-dataset scales and the expected statistics they give.

    ``offset`` [logit], ``model_scale`` [dimensionless], ``hardness_scale`` [logit per sd];
    ``expected_*`` and ``target_*`` are accuracies [fraction] (targets None when not calibrated);
    ``solver`` says how they were found (``"hybr"``, ``"gauss-seidel"`` or ``"defaults"``).
    """

    dataset: str
    offset: float
    model_scale: float
    hardness_scale: float
    expected_random: float
    expected_best: float
    expected_oracle: float
    target_random: float | None
    target_best: float | None
    target_oracle: float | None
    solver: str


# ---------------------------------------------------------------------------------------------- preset
# Model roster: the eight models the paper names plus GPT-5-mini and Qwen2.5-VL-32B (plausible
# 2025 candidates: a cheap reasoning API model and the mid-size open Qwen). Four mean costs are the
# reference repo's anchors; the others are placed between them by public list prices and typical
# verbosity (reasoning models emit many output tokens). Abilities are judgement calls: the open
# InternVL3 and Qwen2.5-VL models read text in images well for their price (InternVL3-78B leads
# OCRBench, as in its published scores), GPT-5 reasons best, Gemini 2.5 Pro is the strongest in
# perception, Claude 3.7 Sonnet is weaker at fine visual detail.
# Columns: name, mean cost [relative units], output/input price ratio, mean output tokens,
# strength [logit], skills (ocr, percep, know, symb, diag, multi) [logit per unit demand].
_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("GPT-5", 10.0, 8.0, 1500.0, 1.6, (0.2, 0.1, 0.5, 0.8, 0.5, 0.8)),
    ModelSpec("Gemini-2.5-Pro", 6.0, 8.0, 1200.0, 1.5, (0.4, 0.5, 0.5, 0.6, 0.5, 0.6)),
    ModelSpec("Claude-3.7-Sonnet", 2.5, 5.0, 350.0, 0.9, (0.2, -0.1, 0.5, 0.4, 0.2, 0.5)),
    ModelSpec("GPT-5-mini", 1.5, 8.0, 1000.0, 1.1, (0.1, 0.0, 0.2, 0.7, 0.3, 0.6)),
    ModelSpec("Gemini-2.5-Flash", 0.9, 8.3, 800.0, 1.0, (0.4, 0.3, 0.2, 0.4, 0.3, 0.3)),
    ModelSpec("Qwen2.5-VL-72B", 0.75, 3.0, 300.0, 0.9, (1.0, 0.4, 0.2, 0.0, 0.3, -0.1)),
    ModelSpec("InternVL3-78B", 0.70, 3.0, 300.0, 0.9, (1.4, 0.5, 0.2, 0.1, 0.4, 0.0)),
    ModelSpec("Qwen2.5-VL-32B", 0.30, 3.0, 350.0, 0.7, (0.6, 0.3, 0.0, 0.1, 0.2, 0.0)),
    ModelSpec("Qwen2.5-VL-7B", 0.07, 3.0, 200.0, 0.1, (0.6, 0.2, -0.2, -0.3, 0.0, -0.4)),
    ModelSpec("Qwen2.5-VL-3B", 0.03, 3.0, 180.0, -0.4, (0.5, 0.1, -0.3, -0.5, -0.1, -0.5)),
)

# Sizes: the VLMEvalKit splits the reference repo evaluates
# (configs/mmrbench_benchmark_registry.json of Hunter-Wrynn/MMR-Bench). Targets: MMR-Bench Table 2
# (the Random, BestSingle and Oracle Ps of each dataset).
_VLMEVAL = "VLMEvalKit split {} ({} questions)"
# fmt: off
_DATASETS: tuple[DatasetSpec, ...] = (
    # name, scenario, size, size source, mean prompt tokens, output factor,
    # demand (ocr, percep, know, symb, diag, multi), targets (random, best, oracle)
    DatasetSpec("OCRBench", "OCR", 1000, _VLMEVAL.format("OCRBench", 1000), 900.0, 0.3,
                (1.0, 0.3, 0.0, 0.0, 0.2, 0.0), 0.8075, 0.9050, 0.9825),
    DatasetSpec("SEEDBench2Plus", "OCR", 2277, _VLMEVAL.format("SEEDBench2_Plus", 2277), 1500.0, 0.4,
                (0.8, 0.4, 0.3, 0.0, 0.5, 0.2), 0.7102, 0.7502, 0.8913),
    DatasetSpec("MMStar", "VQA", 1500, _VLMEVAL.format("MMStar", 1500), 700.0, 0.5,
                (0.1, 0.8, 0.5, 0.2, 0.3, 0.3), 0.6942, 0.7716, 0.9650),
    DatasetSpec("RealWorldQA", "VQA", 765, _VLMEVAL.format("RealWorldQA", 765), 1300.0, 0.5,
                (0.2, 1.0, 0.3, 0.0, 0.0, 0.2), 0.7108, 0.8235, 0.9853),
    DatasetSpec("MathVista", "Math", 1000, _VLMEVAL.format("MathVista_MINI (testmini)", 1000), 900.0, 1.0,
                (0.3, 0.3, 0.2, 0.6, 0.7, 0.5), 0.6688, 0.8037, 0.9475),
    DatasetSpec("MathVerse", "Math", 788, _VLMEVAL.format("MathVerse_MINI_Vision_Only", 788), 800.0, 1.3,
                (0.1, 0.3, 0.0, 0.8, 0.9, 0.7), 0.4800, 0.7194, 0.8954),
    DatasetSpec("MathVision", "Math", 3040, _VLMEVAL.format("MathVision (full test)", 3040), 850.0, 1.6,
                (0.1, 0.2, 0.1, 1.0, 0.7, 1.0), 0.3927, 0.6932, 0.8741),
)
# fmt: on


def default_config() -> SimConfig:
    """The preset behind the bundled table ``mmr-sim-default``: 10 models, 7 datasets, 10,370 queries."""
    return SimConfig(name=DEFAULT_CONFIG_NAME, skills=SKILLS, models=_MODELS, datasets=_DATASETS)


# ---------------------------------------------------------------------------------------------- calibration
def expected_stats(
    offset: float,
    model_scale: float,
    hardness_scale: float,
    standing: np.ndarray,
    base: np.ndarray,
    hardness: np.ndarray,
) -> tuple[float, float, float]:
    """Expected (mean-over-models, best-single, oracle) accuracy [fractions] given the latents.

    Args:
        offset: ``offset_d`` [logit].
        model_scale: ``model_scale_d`` [dimensionless].
        hardness_scale: ``hardness_scale_d`` [logit per sd].
        standing: ``c_md``, float64 ``[K]`` [logit].
        base: interaction plus idiosyncratic logit, float64 ``[n, K]`` [logit].
        hardness: ``h_q``, float64 ``[n]`` [sd].

    The expectation is over the Bernoulli draws only (the latents are fixed), so it is exact and
    deterministic; the oracle uses that outcomes are independent given the probabilities.
    """
    logits = offset + model_scale * standing[None, :] + base - hardness_scale * hardness[:, None]
    acc = expit(logits).mean(axis=0)
    # P(some model correct) = 1 - prod_m (1 - p_m), with log(1 - p) = log_expit(-logit) for accuracy.
    oracle = float(np.mean(-np.expm1(log_expit(-logits).sum(axis=1))))
    return float(acc.mean()), float(acc.max()), oracle


def _offset_for(target: float, pre: np.ndarray) -> float:
    """The ``offset`` [logit] with ``mean(expit(offset + pre)) == target``: safeguarded Newton.

    The mean is strictly increasing in the offset with derivative ``mean(p (1 - p))``, so Newton
    steps converge fast; a step that leaves the bracket is replaced by bisection.
    """
    low, high = -40.0, 40.0
    offset = float(np.log(target / (1.0 - target)) - pre.mean())
    for _ in range(200):
        p = expit(offset + pre)
        gap = float(p.mean()) - target
        if abs(gap) < 1e-14:
            break
        if gap > 0:
            high = offset
        else:
            low = offset
        slope = float((p * (1.0 - p)).mean())
        step = offset - gap / slope if slope > 0 else np.nan
        offset = step if low < step < high else 0.5 * (low + high)
        if high - low < 1e-13:
            break
    return offset


def _root(fn: Callable[[float], float], low: float, high: float, what: str) -> float:
    """Root of a monotone ``fn`` on ``[low, high]``; the nearer end (with a warning) if none inside."""
    f_low, f_high = fn(low), fn(high)
    if f_low == 0.0:
        return low
    if f_high == 0.0:
        return high
    if np.sign(f_low) == np.sign(f_high):
        warnings.warn(
            f"calibration: {what} cannot reach its target in [{low}, {high}]; clamped", stacklevel=3
        )
        return low if abs(f_low) < abs(f_high) else high
    return float(brentq(fn, low, high, xtol=1e-12, maxiter=200))


def calibrate_dataset(
    spec: DatasetSpec,
    standing: np.ndarray,
    base: np.ndarray,
    hardness: np.ndarray,
    *,
    tol: float = 1e-9,
) -> tuple[float, float, float, str]:
    """Solve ``(offset, model_scale, hardness_scale)`` so the expected stats hit ``spec``'s targets.

    The offset is solved exactly inside every evaluation (the mean-over-models accuracy is
    increasing in it), leaving two equations: the best single model's accuracy grows with
    ``model_scale`` (models spread apart) and the oracle's falls with ``hardness_scale`` (failures
    shared by all models). They are solved in log-parameters by Powell's hybrid method; should that
    fail, by Gauss-Seidel sweeps of one-dimensional Brent root finding. No sampling is involved, so
    the result is a deterministic function of the latents.

    Returns ``(offset, model_scale, hardness_scale, solver)``.
    """
    t_random, t_best, t_oracle = spec.target_random, spec.target_best, spec.target_oracle
    assert t_random is not None and t_best is not None and t_oracle is not None

    def solve(ms: float, hs: float) -> tuple[float, float, float]:
        """(offset, best gap, oracle gap) at the given scales, with the mean matched exactly."""
        pre = ms * standing[None, :] + base - hs * hardness[:, None]
        offset = _offset_for(t_random, pre)
        _, best, oracle = expected_stats(offset, ms, hs, standing, base, hardness)
        return offset, best - t_best, oracle - t_oracle

    def gaps(x: np.ndarray) -> np.ndarray:
        _, best_gap, oracle_gap = solve(math.exp(x[0]), math.exp(x[1]))
        return np.array([best_gap, oracle_gap])

    result = root(gaps, x0=np.array([0.0, math.log(1.5)]), method="hybr", options={"xtol": 1e-12})
    if result.success and np.max(np.abs(result.fun)) < tol:
        ms, hs = math.exp(result.x[0]), math.exp(result.x[1])
        return solve(ms, hs)[0], ms, hs, "hybr"

    ms, hs = 1.0, 1.5
    for _ in range(100):
        ms_new = _root(lambda x, hs=hs: solve(x, hs)[1], 0.0, 20.0, f"{spec.name} model_scale")
        hs_new = _root(lambda x, ms=ms_new: -solve(ms, x)[2], 0.0, 30.0, f"{spec.name} hardness_scale")
        done = abs(ms_new - ms) < tol and abs(hs_new - hs) < tol
        ms, hs = ms_new, hs_new
        if done:
            break
    return solve(ms, hs)[0], ms, hs, "gauss-seidel"


# ---------------------------------------------------------------------------------------------- simulate
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


# ---------------------------------------------------------------------------------------------- scenario knobs
# What a real table cannot give and RL research wants: more queries than the table has, a mix of
# datasets that differs between training and test, and price changes. Config-level knobs change
# what :func:`simulate` draws; table-level ones transform any table (real, preset or fitted sample).
def allocate_counts(n: int, weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Integer counts summing to ``n``, proportional to ``weights`` (largest-remainder rounding).

    Args:
        n: the total, >= 0.
        weights: relative weights, >= 0, not all 0.

    Returns:
        int64 ``[len(weights)]``; each count is within 1 of ``n * w / sum(w)``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any() or not w.sum() > 0:
        raise ValueError(f"weights must be finite, >= 0 and not all 0, got {w.tolist()}")
    exact = n * w / w.sum()
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def _dataset_weights(names: Sequence[str], weights: Mapping[str, float]) -> np.ndarray:
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; known: {list(names)}")
    return np.array([float(weights.get(name, 0.0)) for name in names])


def with_queries(
    config: SimConfig, n_queries: int | None = None, *, dataset_weights: Mapping[str, float] | None = None
) -> SimConfig:
    """The config with ``n_queries`` queries split over its datasets by ``dataset_weights``.

    For more queries than the bundled table has (``with_queries(default_config(), 1_000_000)``),
    or a different dataset mix (``dataset_weights={"MathVision": 3, "OCRBench": 1}``: relative
    weights, datasets left out are dropped). Sizes are the largest-remainder rounding of
    ``n_queries * share``. The per-dataset accuracy calibration is redone on the new latents (the
    targets do not depend on the size). The per-token prices are frozen at the source config's,
    so a changed mix changes the models' mean costs, as a change of workload would.

    Args:
        config: the source config.
        n_queries: total queries, >= 1; None keeps the source's total.
        dataset_weights: dataset name -> relative weight >= 0; None keeps the source's shares.
    """
    names = [d.name for d in config.datasets]
    n = config.n_queries if n_queries is None else int(n_queries)
    if n < 1:
        raise ValueError(f"n_queries must be >= 1, got {n}")
    sizes = np.array([d.size for d in config.datasets], dtype=np.float64)
    weights = sizes if dataset_weights is None else _dataset_weights(names, dataset_weights)
    counts = allocate_counts(n, weights)
    datasets = tuple(
        dataclasses.replace(
            d, size=int(c), size_source=f"{d.size_source}; resized to {int(c)} by with_queries"
        )
        for d, c in zip(config.datasets, counts, strict=True)
        if c > 0
    )
    price_in, price_out = token_prices(config)
    prices = tuple((float(a), float(b)) for a, b in zip(price_in, price_out, strict=True))
    return dataclasses.replace(config, datasets=datasets, prices=prices)


def with_prices(config: SimConfig, factors: Mapping[str, float]) -> SimConfig:
    """The config with the named models' prices multiplied by ``factors`` (e.g. ``{"GPT-5": 0.5}``).

    Prices enter only the costs, and no random draw depends on them, so
    ``simulate(with_prices(c, f), seed)`` has the same correctness and features as
    ``simulate(c, seed)`` and model ``m``'s costs times ``f[m]`` (up to float32 rounding).

    Args:
        config: the source config.
        factors: model name -> price multiplier, finite and > 0 [dimensionless].
    """
    names = [m.name for m in config.models]
    _check_factors(names, factors)
    models = tuple(
        dataclasses.replace(m, mean_cost=m.mean_cost * factors.get(m.name, 1.0)) for m in config.models
    )
    prices = config.prices
    if prices is not None:
        prices = tuple(
            (a * factors.get(name, 1.0), b * factors.get(name, 1.0))
            for name, (a, b) in zip(names, prices, strict=True)
        )
    return dataclasses.replace(config, models=models, prices=prices)


def _check_factors(names: Sequence[str], factors: Mapping[str, float]) -> None:
    unknown = sorted(set(factors) - set(names))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; known: {list(names)}")
    bad = {m: f for m, f in factors.items() if not (math.isfinite(f) and f > 0)}
    if bad:
        raise ValueError(f"price factors must be finite and > 0, got {bad}")


def reprice(
    table: RoutingTable, factors: Mapping[str, float], rows: Sequence[int] | np.ndarray | None = None
) -> RoutingTable:
    """A copy of ``table`` with the named models' costs multiplied by ``factors`` on ``rows``.

    A price change that the training data did not see: e.g. ``reprice(table, {"GPT-5": 0.5},
    rows=test_idx)`` halves GPT-5's price on the test queries only, so cost estimates learned on
    the training split are stale. Correctness, ids and features are unchanged.
    ``meta["price_changes"]`` lists every change applied (model, factor, number of queries).

    Args:
        table: any table.
        factors: model name -> cost multiplier, finite and > 0 [dimensionless].
        rows: the queries affected: integer positions or a boolean mask; None: all.
    """
    _check_factors(table.model_names, factors)
    mask = np.ones(table.n_queries, dtype=bool)
    if rows is not None:
        rows = np.asarray(rows)
        mask = rows.astype(bool) if rows.dtype == bool else np.isin(np.arange(table.n_queries), rows)
        if mask.shape != (table.n_queries,):
            raise ValueError(f"a boolean rows mask needs {table.n_queries} entries, got {rows.shape}")
    cost = table.cost.astype(np.float64)
    changes = list(table.meta.get("price_changes", []))
    for model, factor in factors.items():
        j = table.model_names.index(model)
        cost[mask, j] *= factor
        changes.append({"model": model, "factor": float(factor), "queries": int(mask.sum())})
    return dataclasses.replace(table, cost=cost, meta={**table.meta, "price_changes": changes})


def shifted_split(
    table: RoutingTable,
    test_weights: Mapping[str, float],
    *,
    train_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[RoutingTable, RoutingTable]:
    """The in-split of ``table``, with the test part subsampled to the dataset mix ``test_weights``.

    The training part keeps the table's own mix; the test part is the largest subset of the
    in-split's test queries whose dataset shares equal ``test_weights`` (relative weights; a
    dataset left out gets no test queries), drawn without replacement (seeded). For more test
    queries than the table holds, sample the mix from a simulator instead
    (:func:`with_queries`, :meth:`mmr_gym.sim_fit.FittedSimulator.sample`).

    Returns:
        ``(train, test)`` tables.
    """
    train_idx, test_idx = table.split_indices("in", train_fraction=train_fraction, seed=seed)
    names = table.dataset_names
    weights = _dataset_weights(names, test_weights)
    if (weights < 0).any() or not np.isfinite(weights).all() or not weights.sum() > 0:
        raise ValueError(f"test_weights must be finite, >= 0 and not all 0, got {dict(test_weights)}")
    pools = [test_idx[table.datasets[test_idx] == name] for name in names]
    available = np.array([pool.size for pool in pools], dtype=np.float64)
    share = weights / weights.sum()
    total = int(np.floor(np.min(available[share > 0] / share[share > 0])))
    counts = np.minimum(allocate_counts(total, share), available.astype(np.int64))
    rng = np.random.default_rng([seed, 1])  # independent of the split's own permutation stream
    picked = [rng.choice(pool, int(c), replace=False) for pool, c in zip(pools, counts, strict=True) if c]
    return table.subset(train_idx), table.subset(np.sort(np.concatenate(picked)))


# ---------------------------------------------------------------------------------------------- summaries
def dataset_summary(table: RoutingTable) -> list[dict[str, Any]]:
    """Measured per-dataset statistics of a table, plus a final ``"All (mean of datasets)"`` row.

    Each row: ``dataset``, ``queries``, ``best_model`` and ``best_acc`` (the most accurate single
    model), ``mean_acc`` (mean over models, the paper's Random Ps), ``oracle_acc`` (some model
    correct), and the cheapest and dearest model by mean cost with that cost [``table.cost_unit``].
    """
    rows: list[dict[str, Any]] = []
    for name in table.dataset_names:
        part = table.subset(table.datasets == name)
        acc = part.model_accuracy()
        mean_cost = part.model_mean_cost()
        best = part.best_single_model()
        cheap, dear = int(np.argmin(mean_cost)), int(np.argmax(mean_cost))
        rows.append(
            {
                "dataset": name,
                "queries": part.n_queries,
                "best_model": part.model_names[best],
                "best_acc": float(acc[best]),
                "mean_acc": float(acc.mean()),
                "oracle_acc": float((part.correct > 0.5).any(axis=1).mean()),
                "cheapest_model": part.model_names[cheap],
                "cheapest_cost": float(mean_cost[cheap]),
                "dearest_model": part.model_names[dear],
                "dearest_cost": float(mean_cost[dear]),
            }
        )
    rows.append(
        {
            "dataset": "All (mean of datasets)",
            "queries": table.n_queries,
            "best_model": "",
            **{key: float(np.mean([r[key] for r in rows])) for key in ("best_acc", "mean_acc", "oracle_acc")},
            "cheapest_model": "",
            "cheapest_cost": float(table.model_mean_cost().min()),
            "dearest_model": "",
            "dearest_cost": float(table.model_mean_cost().max()),
        }
    )
    return rows


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`dataset_summary` as a markdown table."""
    lines = [
        "| dataset | queries | best single model | best acc | mean acc | oracle acc "
        "| cheapest model: mean cost | dearest model: mean cost |",
        "|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        best = f"{r['best_model']}" if r["best_model"] else "-"
        cheap = (
            f"{r['cheapest_model']}: {r['cheapest_cost']:.4f}"
            if r["cheapest_model"]
            else f"{r['cheapest_cost']:.4f}"
        )
        dear = (
            f"{r['dearest_model']}: {r['dearest_cost']:.3f}"
            if r["dearest_model"]
            else f"{r['dearest_cost']:.3f}"
        )
        lines.append(
            f"| {r['dataset']} | {r['queries']} | {best} | {r['best_acc']:.4f} | {r['mean_acc']:.4f} "
            f"| {r['oracle_acc']:.4f} | {cheap} | {dear} |"
        )
    return "\n".join(lines)


def format_calibration(table: RoutingTable) -> str:
    """Targets, expected values after calibration, and measured values per dataset (markdown)."""
    measured = {r["dataset"]: r for r in dataset_summary(table)}
    lines = [
        "| dataset | offset | model_scale | hardness_scale | random: target / expected / measured "
        "| best: target / expected / measured | oracle: target / expected / measured |",
        "|---|---:|---:|---:|---|---|---|",
    ]

    def cell(target: float | None, expected: float, got: float) -> str:
        return f"{'-' if target is None else f'{target:.4f}'} / {expected:.4f} / {got:.4f}"

    for c in table.meta.get("calibration", []):
        m = measured[c["dataset"]]
        lines.append(
            f"| {c['dataset']} | {c['offset']:.3f} | {c['model_scale']:.3f} | {c['hardness_scale']:.3f} "
            f"| {cell(c['target_random'], c['expected_random'], m['mean_acc'])} "
            f"| {cell(c['target_best'], c['expected_best'], m['best_acc'])} "
            f"| {cell(c['target_oracle'], c['expected_oracle'], m['oracle_acc'])} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- CLI
_PRESETS: dict[str, Callable[[], SimConfig]] = {DEFAULT_CONFIG_NAME: default_config}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmr_gym.sim --out DIR [--seed N] [--config NAME]``: simulate, save, print tables."""
    parser = argparse.ArgumentParser(prog="python -m mmr_gym.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="directory to write the table to")
    parser.add_argument("--seed", type=int, default=0, help="seed of np.random.default_rng (default 0)")
    parser.add_argument("--config", default=DEFAULT_CONFIG_NAME, choices=sorted(_PRESETS), help="preset name")
    args = parser.parse_args(argv)

    table = simulate(_PRESETS[args.config](), seed=args.seed)
    table.save(args.out)
    print(f"wrote {table!r} to {args.out}")
    print(f"fingerprint: {table.fingerprint()}\n")
    print("Calibration (accuracies; expected = over the Bernoulli draws given the latents):\n")
    print(format_calibration(table) + "\n")
    print(f"Measured per-dataset statistics (cost in {table.cost_unit}):\n")
    print(format_summary(dataset_summary(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
