"""What a router family fits on: the observation's query features, mapped to the inputs it needs.

The environment shows each query as ``obs["query"]``: every feature column standardised with its
training-split mean and std, hidden channels zero, optionally projected to ``obs_dim``
(:class:`mmr_gym.context.FeatureScaling`). That suits neural nets, but it hurts routers built for
L2-normalised sentence embeddings: standardising gives every one of MiniLM's 384 dimensions unit
variance, so the low-variance (noise) directions weigh as much as the semantic ones, and a ridge
penalty tuned for unit-norm embeddings becomes negligible. So each router takes an ``inputs``
argument, one of :data:`INPUTS`:

- ``"standardised"``: the observation as it is.
- ``"raw"``: the features as the encoders made them (:meth:`FeatureScaling.raw`).
- ``"balanced"``: per channel, the raw features if the channel is an L2-normalised embedding (every
  non-zero training row has norm 1, as MiniLM, CLIP and TF-IDF give), else the standardised
  columns divided by ``sqrt(width)``; so every channel has a squared norm of about 1 per query
  and none dominates by its width or its units (e.g. MATH-V's 384 MiniLM dimensions beside 27
  image statistics). On a table of embeddings only, it is ``"raw"``.

A hidden channel (``modality``) is zero in every form. With an ``obs_dim`` projection, ``"raw"`` and
``"balanced"`` start from the raw features reconstructed from the kept components (exact only in
their span): the router sees what the observation carries, in the raw geometry; no embedding is
unit-norm after that, so ``"balanced"`` standardises every channel.

Every form is per column ``x -> shown ? z * weight + offset : 0`` of the (reconstructed)
standardised observation ``z``: :class:`InputTransform` keeps those arrays, learned at fit time
from the environment's :class:`~mmr_gym.context.FeatureScaling` and the training rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mmr_gym.context import FeatureScaling

INPUTS: tuple[str, ...] = ("standardised", "raw", "balanced")
# A channel is an L2-normalised embedding when every non-zero training row has a norm this close to 1.
_UNIT_NORM_TOLERANCE = 1e-3
_ZERO_ROW = 1e-6


def check_inputs(inputs: str) -> str:
    """``inputs`` if it is one of :data:`INPUTS`; ValueError otherwise."""
    if inputs not in INPUTS:
        raise ValueError(f"unknown inputs {inputs!r}; choose from {list(INPUTS)}")
    return inputs


@dataclass
class InputTransform:
    """The map from observation rows ``[n, d]`` to a router's inputs ``[n, D]`` (see the module docstring).

    ``identity`` True: the observation as it is (``"standardised"``). Otherwise, float64 arrays:
    ``components`` ``[d, D]`` and ``center`` ``[D]`` (the projection to undo; both empty ``[0]``
    without one), ``weight``, ``offset`` ``[D]`` and ``shown`` ``[D]`` (1.0 shown, 0.0 hidden).
    """

    identity: bool
    weight: np.ndarray
    offset: np.ndarray
    shown: np.ndarray
    components: np.ndarray
    center: np.ndarray

    ARRAYS = ("weight", "offset", "shown", "components", "center")

    @classmethod
    def fit(cls, inputs: str, X: np.ndarray, scaling: FeatureScaling | None = None) -> InputTransform:
        """The transform ``inputs`` for observations like the training rows ``X`` ``[n, d]``.

        Args:
            inputs: one of :data:`INPUTS`.
            X: the training rows as the router receives them.
            scaling: how ``X`` was made from the table's features; None when ``X`` are the
                features themselves (then ``"raw"`` is ``X`` as it is and ``"balanced"`` treats
                ``X`` as one channel, standardised with its own mean and std unless unit-norm).
        """
        check_inputs(inputs)
        empty = np.zeros(0)
        if inputs == "standardised":
            return cls(True, empty, empty, empty, empty, empty)
        X = np.asarray(X, dtype=np.float64)
        # Per column, raw = x * raw_weight + raw_offset and standardised = x * std_weight + std_offset,
        # where x is the observation (reconstructed from the projection, if any).
        if scaling is None:
            mean, std = X.mean(axis=0), np.maximum(X.std(axis=0), 1e-6)
            widths, shown = (X.shape[1],), np.ones(X.shape[1])
            components = center = empty
            raw_weight, raw_offset = np.ones_like(mean), np.zeros_like(mean)
            std_weight, std_offset = 1.0 / std, -mean / std
            x = X
        else:
            widths, shown = scaling.widths, scaling.shown.astype(np.float64)
            components = empty if scaling.components is None else scaling.components
            center = empty if scaling.center is None else scaling.center
            raw_weight, raw_offset = scaling.std.copy(), scaling.mean.copy()
            std_weight, std_offset = np.ones_like(raw_weight), np.zeros_like(raw_weight)
            x = X @ components + center if components.size else X
        weight, offset = raw_weight, raw_offset
        if inputs == "balanced":
            raw = x * raw_weight + raw_offset
            start = 0
            for width in widths:
                cols = slice(start, start + width)
                start += width
                if not shown[cols].any() or _is_unit_norm(raw[:, cols]):
                    continue  # an embedding keeps its raw form (a hidden channel is zero anyway)
                weight[cols] = std_weight[cols] / np.sqrt(width)
                offset[cols] = std_offset[cols] / np.sqrt(width)
        return cls(False, weight, offset, shown, np.asarray(components), np.asarray(center))

    def __call__(self, X: np.ndarray) -> np.ndarray:
        """The router's inputs for observation rows ``X`` ``[n, d]``: float32 ``[n, D]``."""
        if self.identity:
            return np.asarray(X, dtype=np.float32)
        z = np.asarray(X, dtype=np.float64)
        if self.components.size:
            z = z @ self.components + self.center
        return ((z * self.weight + self.offset) * self.shown).astype(np.float32)

    def width(self, d: int) -> int:
        """The number of inputs for observations of ``d`` columns; ValueError if it cannot take them."""
        if self.identity:
            return d
        takes = self.components.shape[0] if self.components.size else self.weight.size
        if takes != d:
            raise ValueError(f"inputs: the transform takes observations of {takes} columns, not {d}")
        return self.weight.size

    def state_dict(self) -> dict[str, np.ndarray]:
        """The arrays by name (``"identity"`` as a 0-d bool array)."""
        return {"identity": np.asarray(self.identity), **{name: getattr(self, name) for name in self.ARRAYS}}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray]) -> InputTransform:
        """The transform whose :meth:`state_dict` ``state`` is; ValueError if the arrays disagree."""
        arrays = {name: np.asarray(state[name], dtype=np.float64) for name in cls.ARRAYS}
        size = arrays["weight"].size
        if any(arrays[name].shape != (size,) for name in ("weight", "offset", "shown")):
            raise ValueError("inputs: weight, offset and shown must be 1-D arrays of one length")
        if arrays["components"].size and arrays["components"].shape[1:] != (size,):
            raise ValueError(f"inputs: components must be [d, {size}], got {arrays['components'].shape}")
        return cls(bool(np.asarray(state["identity"])), **arrays)


def _is_unit_norm(block: np.ndarray) -> bool:
    """Whether every non-zero row of ``block`` has L2 norm 1 (an L2-normalised embedding)."""
    norms = np.linalg.norm(block, axis=1)
    nonzero = norms > _ZERO_ROW
    return bool(nonzero.any() and np.all(np.abs(norms[nonzero] - 1.0) <= _UNIT_NORM_TOLERANCE))
