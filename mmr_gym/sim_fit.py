"""The fitted simulator's former module, kept so that ``from mmr_gym.sim_fit import ...`` still works.

It lives in the package :mod:`mmr_gym.sim` now (:mod:`~mmr_gym.sim.copula`,
:mod:`~mmr_gym.sim.correlation`, :mod:`~mmr_gym.sim.fit`, :mod:`~mmr_gym.sim.fidelity`); import it
from there: ``from mmr_gym.sim import fit_simulator``.
"""

from __future__ import annotations

from mmr_gym.sim.copula import FEATURE_CHANNEL, GENERATOR, DatasetModel, FittedSimulator
from mmr_gym.sim.correlation import latent_correlation, tetrachoric
from mmr_gym.sim.fidelity import fit_report
from mmr_gym.sim.fit import fit_simulator

__all__ = [
    "FEATURE_CHANNEL",
    "GENERATOR",
    "DatasetModel",
    "FittedSimulator",
    "fit_report",
    "fit_simulator",
    "latent_correlation",
    "tetrachoric",
]
