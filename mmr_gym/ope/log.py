"""DecisionLog: what a deployed router logged, one row per decision, and its Parquet form.

A row is one decision as the router made it: the context it saw (the observation's keys, the
action mask, the budget state), the model it called, the probability with which it called that
model (its *propensity*), and what the call returned (correct, cost). Nothing about the models it
did not call is kept: that is what makes a log, unlike an outcome table, a bandit-feedback record.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmr_gym.arrays import read_only_copy
from mmr_gym.errors import LogError, UnverifiedFilesWarning

FORMAT = "mmr-gym decision log"
FORMAT_VERSION = 1
_META_KEY = b"mmr_gym.ope"
#: Observation keys every log must hold: the reward models read ``query``, replay ``model_costs``.
REQUIRED_OBSERVATIONS = ("query", "model_costs")
#: Meta entries every log must hold.
REQUIRED_META = ("model_names", "c_ref", "cost_unit")
# Probabilities that should sum to 1, or equal the logged propensity, may differ by rounding.
_PROBABILITY_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class DecisionLog:
    """Logged routing decisions (bandit feedback), columnar: every array has one row per decision.

    Attributes:
        episode, step: int64 ``[n]``: the logged episode (a budget window) and the position in it.
        query_id, dataset: str ``[n]``: the query answered and its dataset.
        observations: observation key -> float32 ``[n, ...]``: what the router saw, by the dict
            observation's keys (``query``, ``budget``, ``model_costs`` for ``MMRRouting-v0``).
        action_mask: bool ``[n, K]``: the models the router could afford for this query.
        budget_remaining: float64 ``[n]``: budget left before the call, in ``cost_unit`` (``inf``:
            no budget); with ``budget_total`` and ``observations["budget"]``, the budget state.
        budget_total: float64 ``[n]``: the episode's whole budget (``inf``: no budget).
        action: int64 ``[n]``: the model called (index into ``meta["model_names"]``).
        propensity: float64 ``[n]``: the probability with which the logging policy called it, in (0, 1].
        correct: float64 ``[n]``: the call's correctness in [0, 1].
        cost: float64 ``[n]``: the call's realized cost in ``cost_unit``.
        behaviour_probs: float64 ``[n, K]`` or None: the logging policy's whole distribution, when
            known (it lets the estimators check support per decision).
        meta: ``model_names``, ``c_ref`` (the reference cost that ``model_costs`` is relative to),
            ``cost_unit`` (required), and what the collector knew: ``episode_length``,
            ``budget_ratio``, ``cost_weight``, ``behaviour``, ``seed``, ``table``...
        source: a name for error messages (the file or the collector).
    """

    episode: np.ndarray
    step: np.ndarray
    query_id: np.ndarray
    dataset: np.ndarray
    observations: Mapping[str, np.ndarray]
    action_mask: np.ndarray
    budget_remaining: np.ndarray
    budget_total: np.ndarray
    action: np.ndarray
    propensity: np.ndarray
    correct: np.ndarray
    cost: np.ndarray
    behaviour_probs: np.ndarray | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = "<memory>"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once here
        for name, dtype in _SCALARS.items():
            set_(self, name, read_only_copy(np.asarray(getattr(self, name), dtype=dtype)))
        set_(self, "action_mask", read_only_copy(np.asarray(self.action_mask, dtype=bool)))
        if self.behaviour_probs is not None:
            set_(self, "behaviour_probs", read_only_copy(np.asarray(self.behaviour_probs, dtype=np.float64)))
        set_(
            self,
            "observations",
            {
                key: read_only_copy(np.asarray(value, dtype=np.float32))
                for key, value in self.observations.items()
            },
        )
        set_(self, "meta", json.loads(json.dumps(dict(self.meta), default=_json_default)))
        _validate(self)

    # ------------------------------------------------------------------ facts
    def __len__(self) -> int:
        return int(self.action.shape[0])

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(self.meta["model_names"])

    @property
    def n_models(self) -> int:
        return len(self.meta["model_names"])

    @property
    def c_ref(self) -> float:
        """The reference cost ``observations["model_costs"]`` is relative to, in ``cost_unit``."""
        return float(self.meta["c_ref"])

    @property
    def cost_unit(self) -> str:
        return str(self.meta["cost_unit"])

    @property
    def n_episodes(self) -> int:
        return int(np.unique(self.episode).size)

    @property
    def budgeted(self) -> bool:
        """True if any logged decision was made under a finite budget."""
        return bool(np.isfinite(self.budget_total).any())

    def __repr__(self) -> str:
        return (
            f"DecisionLog(source={self.source!r}, decisions={len(self)}, episodes={self.n_episodes}, "
            f"models={self.n_models}, behaviour={self.meta.get('behaviour')!r})"
        )

    def select(self, rows: np.ndarray | slice) -> DecisionLog:
        """The decisions ``rows`` (indices, a boolean mask or a slice), in that order, same meta."""
        index = np.arange(len(self))[rows]
        return DecisionLog(
            **{name: getattr(self, name)[index] for name in _SCALARS},
            observations={key: value[index] for key, value in self.observations.items()},
            action_mask=self.action_mask[index],
            behaviour_probs=None if self.behaviour_probs is None else self.behaviour_probs[index],
            meta=self.meta,
            source=self.source,
        )

    def fingerprint(self) -> str:
        """SHA-256 of the log's content (every column and the meta), independent of its file form."""
        digest = hashlib.sha256()
        arrays = {name: getattr(self, name) for name in _SCALARS}
        arrays["action_mask"] = self.action_mask
        arrays.update({f"obs.{key}": value for key, value in self.observations.items()})
        if self.behaviour_probs is not None:
            arrays["behaviour_probs"] = self.behaviour_probs
        for name in sorted(arrays):
            array = arrays[name]
            digest.update(f"{name}|{array.shape}|".encode())
            if array.dtype.kind in "OU":
                digest.update(json.dumps([str(v) for v in array.tolist()]).encode("utf-8"))
            else:
                digest.update(f"{array.dtype.str}|".encode() + np.ascontiguousarray(array).tobytes())
        digest.update(json.dumps(self.meta, sort_keys=True).encode("utf-8"))
        return digest.hexdigest()

    # ------------------------------------------------------------------ Parquet
    def to_parquet(self, path: str | Path) -> Path:
        """Write the log to one Parquet file (meta as JSON in the schema's metadata). Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        columns: dict[str, pa.Array] = {name: pa.array(getattr(self, name)) for name in _SCALARS}
        columns["action_mask"] = _fixed_list(self.action_mask)
        for key, value in self.observations.items():
            columns[f"obs.{key}"] = _fixed_list(value)
        if self.behaviour_probs is not None:
            columns["behaviour_probs"] = _fixed_list(self.behaviour_probs)
        # The content's SHA-256, checked by read_log: a damaged byte would otherwise change values silently.
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "meta": self.meta,
            "sha256": self.fingerprint(),
        }
        table = pa.table(columns).replace_schema_metadata({_META_KEY: json.dumps(header).encode("utf-8")})
        pq.write_table(table, path)
        return path


def environment_meta(env: Any) -> dict[str, Any]:
    """What a log records of the environment its decisions were made in (``env``: unwrapped)."""
    return {
        "model_names": list(env.model_names),
        "c_ref": float(env.c_ref),
        "cost_unit": str(env.cost_unit),
        "episode_length": int(env.episode_length),
        "budget_ratio": env.budget_ratio,
        "cost_weight": float(env.cost_weight),
    }


def read_log(path: str | Path) -> DecisionLog:
    """Read a log written by :meth:`DecisionLog.to_parquet`; errors name the file, column and row."""
    path = Path(path)
    source = str(path)
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise LogError(source, None, None, f"not a readable Parquet file ({err})") from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise LogError(
            source, None, None, f"no {_META_KEY.decode()!r} metadata: not written by DecisionLog.to_parquet"
        )
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as err:
        raise LogError(source, None, None, f"damaged: its metadata is not JSON ({err}); {_ADVICE}") from None
    if not isinstance(header, dict):
        raise LogError(source, None, None, f"damaged: its metadata is not a JSON object; {_ADVICE}")
    if header.get("format") != FORMAT or header.get("format_version") != FORMAT_VERSION:
        raise LogError(
            source,
            None,
            None,
            f"format {header.get('format')!r} version {header.get('format_version')!r}; "
            f"this mmr-gym reads {FORMAT!r} version {FORMAT_VERSION}",
        )
    names = set(table.column_names)
    missing = [name for name in (*_SCALARS, "action_mask") if name not in names]
    if missing:
        raise LogError(source, missing[0], None, f"missing column(s) {missing}")
    scalars = {}
    for name, dtype in _SCALARS.items():
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise LogError(source, name, row, "missing value")
        values = column.to_numpy(zero_copy_only=False)
        try:
            scalars[name] = np.asarray(values, dtype=dtype)
        except (TypeError, ValueError):
            raise LogError(
                source, name, None, f"expected {np.dtype(dtype).name} values, got {column.type}"
            ) from None
    observations = {
        name[len("obs.") :]: _read_fixed_list(table, name, np.float32, source)
        for name in table.column_names
        if name.startswith("obs.")
    }
    probs = None
    if "behaviour_probs" in names:
        probs = _read_fixed_list(table, "behaviour_probs", np.float64, source)
    log = DecisionLog(
        **scalars,
        observations=observations,
        action_mask=_read_fixed_list(table, "action_mask", bool, source),
        behaviour_probs=probs,
        meta=header.get("meta", {}),
        source=source,
    )
    expected = header.get("sha256")
    if expected is None:
        warnings.warn(
            f"{source}: no SHA-256 in its metadata (written by an mmr-gym older than log checksums), so it "
            "cannot be checked for damage; read it and write it again to add one",
            UnverifiedFilesWarning,
            stacklevel=2,
        )
    elif log.fingerprint() != expected:
        raise LogError(
            source,
            None,
            None,
            f"damaged: its content differs from the SHA-256 recorded when it was written; {_ADVICE}",
        )
    return log


_ADVICE = "restore the file from a copy or collect the log again"


# ---------------------------------------------------------------------------------------- internals
_SCALARS: dict[str, Any] = {
    "episode": np.int64,
    "step": np.int64,
    "query_id": str,
    "dataset": str,
    "budget_remaining": np.float64,
    "budget_total": np.float64,
    "action": np.int64,
    "propensity": np.float64,
    "correct": np.float64,
    "cost": np.float64,
}


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    raise TypeError(f"meta value {value!r} is not JSON-able")


def _fixed_list(array: np.ndarray) -> pa.Array:
    array = np.ascontiguousarray(array)
    if array.ndim != 2:
        raise ValueError(f"expected a [decisions, width] array, got shape {array.shape}")
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def _read_fixed_list(table: pa.Table, name: str, dtype: Any, source: str) -> np.ndarray:
    column = table.column(name).combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise LogError(source, name, None, f"expected a fixed-size list per row, got {column.type}")
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise LogError(source, name, row, "missing value")
    width = column.type.list_size
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=dtype).reshape(len(column), width)


def _validate(log: DecisionLog) -> None:
    source = log.source

    def fail(column: str, rows: np.ndarray, problem: str) -> None:
        row = int(np.flatnonzero(rows)[0])
        where = f"episode {log.episode[row]}, step {log.step[row]}"
        raise LogError(source, column, row, problem.format(value=_value(column, row)), where)

    def _value(column: str, row: int) -> Any:
        value = getattr(log, column, None)
        return None if value is None else value[row]

    for key in REQUIRED_META:
        if key not in log.meta:
            raise LogError(source, None, None, f"meta has no {key!r} (required: {list(REQUIRED_META)})")
    names = log.meta["model_names"]
    if not isinstance(names, list) or not names or len(set(map(str, names))) != len(names):
        raise LogError(source, None, None, f"meta['model_names'] must be distinct names, got {names!r}")
    c_ref = log.meta["c_ref"]
    if not isinstance(c_ref, (int, float)) or not np.isfinite(c_ref) or c_ref <= 0:
        raise LogError(source, None, None, f"meta['c_ref'] must be a finite number > 0, got {c_ref!r}")
    n, k = len(log.action), len(names)
    if n == 0:
        raise LogError(source, None, None, "the log holds no decision")
    for name in _SCALARS:
        if getattr(log, name).shape != (n,):
            raise LogError(
                source, name, None, f"expected shape ({n},) like 'action', got {getattr(log, name).shape}"
            )
    if log.action_mask.shape != (n, k):
        raise LogError(source, "action_mask", None, f"expected shape ({n}, {k}), got {log.action_mask.shape}")
    for key in REQUIRED_OBSERVATIONS:
        if key not in log.observations:
            raise LogError(
                source,
                f"obs.{key}",
                None,
                f"missing (the log must hold observations {list(REQUIRED_OBSERVATIONS)})",
            )
    for key, value in log.observations.items():
        if value.ndim < 1 or value.shape[0] != n:
            raise LogError(source, f"obs.{key}", None, f"expected {n} rows, got shape {value.shape}")
        bad = ~np.isfinite(value.reshape(n, -1)).all(axis=1)
        if bad.any():
            fail(f"obs.{key}", bad, "non-finite observation")
    if log.observations["model_costs"].shape != (n, k):
        raise LogError(
            source,
            "obs.model_costs",
            None,
            f"expected shape ({n}, {k}), got {log.observations['model_costs'].shape}",
        )

    if ((log.action < 0) | (log.action >= k)).any():
        fail("action", (log.action < 0) | (log.action >= k), f"model index {{value}} outside [0, {k})")
    if not log.action_mask[np.arange(n), log.action].all():
        fail(
            "action",
            ~log.action_mask[np.arange(n), log.action],
            "model {value} was masked (unaffordable) for this decision",
        )
    p = log.propensity
    bad = ~(np.isfinite(p) & (p > 0) & (p <= 1))
    if bad.any():
        fail("propensity", bad, "propensity {value} is not in (0, 1]")
    bad = ~(np.isfinite(log.correct) & (log.correct >= 0) & (log.correct <= 1))
    if bad.any():
        fail("correct", bad, "correctness {value} is not in [0, 1]")
    bad = ~(np.isfinite(log.cost) & (log.cost >= 0))
    if bad.any():
        fail("cost", bad, "cost {value} is not a finite number >= 0")
    for name in ("budget_remaining", "budget_total"):
        values = getattr(log, name)
        bad = np.isnan(values) | (values < 0)
        if bad.any():
            fail(name, bad, "budget {value} is not >= 0 (inf: no budget)")
    if log.behaviour_probs is not None:
        probs = log.behaviour_probs
        if probs.shape != (n, k):
            raise LogError(source, "behaviour_probs", None, f"expected shape ({n}, {k}), got {probs.shape}")
        bad = ~(np.isfinite(probs) & (probs >= 0)).all(axis=1)
        if bad.any():
            fail("behaviour_probs", bad, "probabilities must be finite and >= 0")
        bad = np.abs(probs.sum(axis=1) - 1.0) > _PROBABILITY_TOLERANCE
        if bad.any():
            fail("behaviour_probs", bad, "probabilities do not sum to 1")
        bad = (probs * ~log.action_mask).sum(axis=1) > _PROBABILITY_TOLERANCE
        if bad.any():
            fail("behaviour_probs", bad, "probability on masked (unaffordable) models")
        bad = np.abs(probs[np.arange(n), log.action] - p) > _PROBABILITY_TOLERANCE
        if bad.any():
            fail("behaviour_probs", bad, "the called model's probability differs from 'propensity'")
