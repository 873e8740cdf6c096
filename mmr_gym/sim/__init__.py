"""Simulated MMR-Bench-style outcome tables (SIMULATED data): the generator, its scenario knobs, fits.

The bundled default table (``envs_data/mmr-sim-default``) is made here, so the environment works
offline and its data can be regenerated bit for bit:

    python -m mmr_gym.sim --out envs_data/mmr-sim-default --seed 0

What lives where (everything public is importable from ``mmr_gym.sim``):

- :mod:`~mmr_gym.sim.config`: :class:`SimConfig`, :class:`ModelSpec`, :class:`DatasetSpec`, every
  knob with its unit;
- :mod:`~mmr_gym.sim.preset`: :func:`default_config`, the preset behind the bundled table;
- :mod:`~mmr_gym.sim.calibration`: the per-dataset scales that hit MMR-Bench Table 2's accuracies;
- :mod:`~mmr_gym.sim.generator`: the item-response model and :func:`simulate` (the model is
  described there);
- :mod:`~mmr_gym.sim.transforms`: scenario knobs, what a real table cannot give: any number of
  queries, a different dataset mix for testing, price changes (:func:`with_queries`,
  :func:`with_prices`, :func:`reprice`, :func:`shifted_split`);
- :mod:`~mmr_gym.sim.summary`: per-dataset statistics and the calibration as markdown tables;
- :mod:`~mmr_gym.sim.cli`: ``python -m mmr_gym.sim``;
- fitting a generative model to a real table and sampling from it (:func:`fit_simulator`,
  :class:`FittedSimulator`, :func:`fit_report`): :mod:`~mmr_gym.sim.copula` (the model),
  :mod:`~mmr_gym.sim.correlation` (its pairwise estimators), :mod:`~mmr_gym.sim.fit` (the fit),
  :mod:`~mmr_gym.sim.fidelity` (real against simulated).
"""

from __future__ import annotations

from mmr_gym.sim.calibration import DatasetCalibration, calibrate_dataset, expected_stats
from mmr_gym.sim.cli import main
from mmr_gym.sim.config import SKILLS, DatasetSpec, ModelSpec, SimConfig
from mmr_gym.sim.copula import DatasetModel, FittedSimulator
from mmr_gym.sim.correlation import latent_correlation, tetrachoric
from mmr_gym.sim.fidelity import fit_report
from mmr_gym.sim.fit import fit_simulator
from mmr_gym.sim.generator import COST_UNIT, GENERATOR, simulate, token_prices
from mmr_gym.sim.preset import DEFAULT_CONFIG_NAME, PRESETS, default_config
from mmr_gym.sim.summary import dataset_summary, format_calibration, format_summary
from mmr_gym.sim.transforms import allocate_counts, reprice, shifted_split, with_prices, with_queries

__all__ = [
    "COST_UNIT",
    "DEFAULT_CONFIG_NAME",
    "GENERATOR",
    "PRESETS",
    "SKILLS",
    "DatasetCalibration",
    "DatasetModel",
    "DatasetSpec",
    "FittedSimulator",
    "ModelSpec",
    "SimConfig",
    "allocate_counts",
    "calibrate_dataset",
    "dataset_summary",
    "default_config",
    "expected_stats",
    "fit_report",
    "fit_simulator",
    "format_calibration",
    "format_summary",
    "latent_correlation",
    "main",
    "reprice",
    "shifted_split",
    "simulate",
    "tetrachoric",
    "token_prices",
    "with_prices",
    "with_queries",
]
