"""The simulator's configuration: what a model and a dataset are, and every knob of a table, with units.

:class:`SimConfig` holds every parameter :func:`~mmr_gym.sim.simulate` uses (validated when built);
:class:`ModelSpec` and :class:`DatasetSpec` describe one candidate model and one benchmark dataset.
The preset behind the bundled table is in :mod:`mmr_gym.sim.preset`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
