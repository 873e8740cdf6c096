"""Save and reload fitted supervised routers and bandit learners, in portable files (never pickle).

    from agents.persistence import load_scorer, save_scorer

    save_scorer(router, "runs/my-router")  # a fitted agents.supervised router, or a bandit learner
    router = load_scorer("runs/my-router")  # the same predictions, bit for bit

A *scorer* is what :class:`~agents.pacing.PacedPolicy` wraps: a fitted router of
:data:`agents.supervised.ROUTERS` or a learner of :data:`agents.bandits.BANDITS`. A reloaded learner
continues exactly as the original would have (same ``act_scores``, updates and random draws): its
statistics, replay, network, optimiser and random generator state are all saved. To save a policy,
save ``policy.scorer`` and wrap the loaded scorer in a new ``PacedPolicy``.

A saved directory holds:

- ``scorer.json``: ``format`` and ``format_version``, the mmr-gym version (and those of numpy,
  scikit-learn, torch and skops, for the record), ``kind`` (``"router"`` or ``"bandit"``), the
  registry ``name`` and ``class``, the constructor ``params``, the JSON-able part of the ``state``
  (e.g. the generator's state), the shape and dtype of every array and tensor, the type of every
  estimator, and the caller's ``metadata``;
- ``arrays.npz``: numpy arrays (read with ``allow_pickle=False``);
- ``tensors.safetensors``: torch tensors (network weights, Adam's moments);
- ``<entry>.skops``: each scikit-learn estimator (:mod:`skops.io`; read with an explicit list of
  trusted types, :data:`SKOPS_TRUSTED`, and refused if the file holds any other type skops does not
  trust by default).

A router's input transform is saved with it (arrays ``inputs.*``). An ``auto`` router
(:class:`~agents.routers.selection.AutoRouter`) keeps its chosen router's state under ``chosen.*``
and, in ``scorer.json`` under ``state.selection``, the cross-validation record: every candidate's
family, arguments, calibration and scores, and the choice (``read_manifest(directory)["state"]
["selection"]``).

Loading checks everything it reads against ``scorer.json``: a missing file, another format
version, an unknown class or an array of another shape raises a ``FileNotFoundError`` or
``ValueError`` that names the file and what was expected.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.torch
import skops.io
import torch
from sklearn.base import BaseEstimator

import mmr_gym
from agents.bandits import BANDITS
from agents.pacing import OnlineScorer, PacedPolicy
from agents.supervised import ROUTERS, Router

FORMAT = "mmr-gym-scorer"
FORMAT_VERSION = 1
MANIFEST = "scorer.json"
ARRAYS = "arrays.npz"
TENSORS = "tensors.safetensors"
# Types inside the routers' estimators that skops does not trust by default, trusted here by name:
# MLPRegressor keeps its Adam optimiser (plain numpy state). Anything else is refused.
SKOPS_TRUSTED: tuple[str, ...] = ("sklearn.neural_network._stochastic_optimizers.AdamOptimizer",)
REGISTRIES: dict[str, Mapping[str, type]] = {"router": ROUTERS, "bandit": BANDITS}


def save_scorer(
    scorer: Router | OnlineScorer, directory: str | Path, *, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``scorer`` (a fitted router or a bandit learner) into ``directory``; returns the directory.

    Args:
        scorer: an instance of a class of :data:`~agents.supervised.ROUTERS` (fitted) or of
            :data:`~agents.bandits.BANDITS` (in any state, learning included).
        directory: created if needed; files of an earlier save there are overwritten.
        metadata: JSON-able facts to keep beside it (e.g. the seed, the environment's kwargs);
            stored as ``metadata`` in ``scorer.json``.

    Raises:
        TypeError: ``scorer`` is not of a registered class (a ``PacedPolicy``: save its ``scorer``),
            or a value cannot be stored (an estimator holding a type outside :data:`SKOPS_TRUSTED`).
    """
    kind, name = _registry_entry(scorer)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # An earlier save's manifest goes first, so a save that fails midway leaves nothing loadable.
    (directory / MANIFEST).unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, torch.Tensor] = {}
    estimators: dict[str, dict[str, str]] = {}
    state: dict[str, Any] = {}
    for key, value in scorer.state_dict().items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().contiguous()
        elif isinstance(value, BaseEstimator):
            estimators[key] = _save_estimator(value, directory / f"{key}.skops")
        else:
            state[key] = _to_json(value, f"state entry {key!r}")
    if arrays:
        np.savez_compressed(directory / ARRAYS, **arrays)
    if tensors:
        safetensors.torch.save_file(tensors, directory / TENSORS)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mmr_gym_version": mmr_gym.__version__,
        "library_versions": {
            lib: importlib_metadata.version(lib) for lib in ("numpy", "scikit-learn", "torch", "skops")
        },
        "kind": kind,
        "name": name,
        "class": type(scorer).__name__,
        "params": _to_json(scorer.get_params(), "params"),
        "state": state,
        "arrays": {key: _layout(a.shape, a.dtype) for key, a in arrays.items()},
        "tensors": {key: _layout(t.shape, t.dtype) for key, t in tensors.items()},
        "estimators": estimators,
        "metadata": _to_json(dict(metadata or {}), "metadata"),
    }
    # Written last: a directory with a manifest has every file the manifest lists.
    text = json.dumps(manifest, indent=2, allow_nan=False)
    (directory / MANIFEST).write_text(text + "\n", encoding="utf-8")
    return directory


def load_scorer(directory: str | Path) -> Router | OnlineScorer:
    """The router or bandit learner saved by :func:`save_scorer` in ``directory``.

    Raises:
        FileNotFoundError: ``scorer.json`` or a file it lists is missing.
        ValueError: a file is not what ``scorer.json`` records (format version, class name, an array
            or tensor's shape or dtype, an estimator's type), an estimator file holds an untrusted
            type, or the state does not fit the class and its parameters.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST
    manifest = read_manifest(directory)
    cls = _registered_class(manifest, manifest_path)
    state: dict[str, Any] = dict(manifest["state"])
    state.update(_load_arrays(directory / ARRAYS, manifest["arrays"], manifest_path))
    state.update(_load_tensors(directory / TENSORS, manifest["tensors"], manifest_path))
    for key, entry in manifest["estimators"].items():
        if Path(entry["file"]).name != entry["file"]:
            raise ValueError(
                f"{manifest_path}: estimator file {entry['file']!r} is not a file name in {directory}"
            )
        state[key] = _load_estimator(directory / entry["file"], entry["type"], manifest_path)
    # Building a torch learner seeds torch's global generator (as constructing one does); loading
    # one must not change the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        try:
            scorer = cls(**manifest["params"])
        except TypeError as err:
            raise ValueError(f"{manifest_path}: params do not fit {cls.__name__}: {err}") from err
        try:
            scorer.load_state_dict(state)
        except KeyError as err:
            raise ValueError(f"{directory}: state entry {err} of {cls.__name__} is missing") from err
        except (TypeError, ValueError) as err:
            raise ValueError(f"{directory}: the saved state does not fit {cls.__name__}: {err}") from err
    return scorer


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``scorer.json`` of a saved scorer, checked to be this format's version (e.g. to read ``metadata``)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: not a directory written by agents.persistence.save_scorer"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: expected 'format': {FORMAT!r}, got {_get(manifest, 'format')!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported; this mmr-gym "
            f"({mmr_gym.__version__}) reads version {FORMAT_VERSION}"
        )
    required = ("kind", "name", "class", "params", "state", "arrays", "tensors", "estimators")
    missing = [key for key in required if key not in manifest]
    if missing:
        raise ValueError(f"{path}: missing entries {missing}")
    return manifest


# ----------------------------------------------------------------------------------- internals
def _registry_entry(scorer: Any) -> tuple[str, str]:
    """``(kind, registry name)`` of ``scorer``'s class (the exact class, not a subclass)."""
    if isinstance(scorer, PacedPolicy):
        raise TypeError(
            "save the policy's scorer (save_scorer(policy.scorer, ...)); a PacedPolicy is rebuilt "
            "around a loaded scorer with PacedPolicy(load_scorer(...))"
        )
    for kind, registry in REGISTRIES.items():
        for name, cls in registry.items():
            if type(scorer) is cls:
                return kind, name
    known = {kind: sorted(cls.__name__ for cls in registry.values()) for kind, registry in REGISTRIES.items()}
    raise TypeError(f"cannot save a {type(scorer).__name__}: expected one of {known}")


def _registered_class(manifest: Mapping[str, Any], path: Path) -> type:
    kind, name, class_name = manifest["kind"], manifest["name"], manifest["class"]
    if kind not in REGISTRIES:
        raise ValueError(f"{path}: unknown kind {kind!r}; expected one of {sorted(REGISTRIES)}")
    registry = REGISTRIES[kind]
    if name not in registry:
        raise ValueError(f"{path}: unknown {kind} {name!r}; expected one of {sorted(registry)}")
    cls = registry[name]
    if cls.__name__ != class_name:
        raise ValueError(f"{path}: class {class_name!r} does not match {kind} {name!r} ({cls.__name__})")
    return cls


def _save_estimator(estimator: BaseEstimator, path: Path) -> dict[str, str]:
    data = skops.io.dumps(estimator)
    unexpected = sorted(set(skops.io.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED))
    if unexpected:  # refused now rather than when someone tries to load it
        raise TypeError(
            f"{path.name}: {type(estimator).__name__} holds types outside SKOPS_TRUSTED: {unexpected}"
        )
    path.write_bytes(data)
    return {"file": path.name, "type": _type_name(estimator)}


def _load_estimator(path: Path, expected_type: str, manifest_path: Path) -> BaseEstimator:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {manifest_path} lists it (a {expected_type})")
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a readable skops file ({err})") from err
    unexpected = sorted(set(untrusted) - set(SKOPS_TRUSTED))
    if unexpected:
        raise ValueError(
            f"{path}: refusing to load untrusted types {unexpected} (trusted: {list(SKOPS_TRUSTED)})"
        )
    estimator = skops.io.load(path, trusted=list(SKOPS_TRUSTED))
    if _type_name(estimator) != expected_type:
        raise ValueError(f"{path}: expected a {expected_type}, got a {_type_name(estimator)}")
    return estimator


def _load_arrays(path: Path, layout: Mapping[str, Any], manifest_path: Path) -> dict[str, np.ndarray]:
    if not layout:
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {manifest_path} lists arrays {sorted(layout)}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable npz file ({err})") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an npz archive of arrays, got a single {type(npz).__name__}")
    with npz:
        _check_keys(path, set(npz.files), layout)
        arrays = {key: npz[key] for key in npz.files}
    for key, array in arrays.items():
        _check_layout(path, key, array.shape, array.dtype, layout[key])
    return arrays


def _load_tensors(path: Path, layout: Mapping[str, Any], manifest_path: Path) -> dict[str, torch.Tensor]:
    if not layout:
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; {manifest_path} lists tensors {sorted(layout)}")
    try:
        tensors = safetensors.torch.load_file(path)
    except safetensors.SafetensorError as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    _check_keys(path, set(tensors), layout)
    for key, tensor in tensors.items():
        _check_layout(path, key, tensor.shape, tensor.dtype, layout[key])
    return tensors


def _check_keys(path: Path, found: set[str], layout: Mapping[str, Any]) -> None:
    if found != set(layout):
        raise ValueError(
            f"{path}: expected entries {sorted(layout)} (as {MANIFEST} records), "
            f"missing {sorted(set(layout) - found)}, unexpected {sorted(found - set(layout))}"
        )


def _check_layout(path: Path, key: str, shape: Any, dtype: Any, expected: Mapping[str, Any]) -> None:
    got = _layout(shape, dtype)
    if got != {"shape": list(expected["shape"]), "dtype": expected["dtype"]}:
        raise ValueError(
            f"{path}: {key!r} has shape {got['shape']} and dtype {got['dtype']}, expected shape "
            f"{expected['shape']} and dtype {expected['dtype']} (as {MANIFEST} records)"
        )


def _layout(shape: Any, dtype: Any) -> dict[str, Any]:
    """``{"shape": [...], "dtype": "float32"}`` of a numpy array or torch tensor."""
    return {"shape": [int(n) for n in shape], "dtype": str(dtype).removeprefix("torch.")}


def _type_name(obj: Any) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _to_json(value: Any, what: str) -> Any:
    """``value`` as JSON types (tuples become lists, numpy scalars Python numbers); TypeError otherwise."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, what) for v in value]
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v, what) for k, v in value.items()}
    raise TypeError(f"{what}: cannot store a {type(value).__name__} as JSON")
