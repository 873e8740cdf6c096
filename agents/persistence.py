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
  trust by default);
- ``checksums.sha256``: the SHA-256 of every other file (``sha256sum`` format), written last.

A router's input transform is saved with it (arrays ``inputs.*``). An ``auto`` router
(:class:`~agents.routers.selection.AutoRouter`) keeps its chosen router's state under ``chosen.*``
and, in ``scorer.json`` under ``state.selection``, the cross-validation record: every candidate's
family, arguments, calibration and scores, and the choice (``read_manifest(directory)["state"]
["selection"]``).

Loading checks every file against ``checksums.sha256`` before reading it, then everything it reads
against ``scorer.json``: a missing or damaged file, another format version, an unknown class, an
entry of the wrong type, an array of another shape or with NaN or infinite values raises a
``FileNotFoundError`` or ``ValueError`` that names the file and what was expected. The parameters
are checked against the saved arrays and tensors (whose shapes the files give) *before* anything
is built from them, so a manifest asking for e.g. ``hidden=10**9`` is refused instead of making
torch allocate it. A directory saved before checksums existed (no ``checksums.sha256`` and no
``checksum_file`` in ``scorer.json``) loads with an :class:`~mmr_gym.errors.UnverifiedFilesWarning`;
saving it again adds them.
"""

from __future__ import annotations

import io
import json
import warnings
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
from mmr_gym.errors import UnverifiedFilesWarning
from mmr_gym.files import CHECKSUM_FILE, atomic_write, format_checksums, parse_checksums, sha256_bytes

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
    # An earlier save's manifest and checksums go first, so a save that fails midway leaves nothing loadable.
    for stale in (MANIFEST, CHECKSUM_FILE):
        (directory / stale).unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {}
    tensors: dict[str, torch.Tensor] = {}
    estimators: dict[str, dict[str, str]] = {}
    state: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    for key, value in scorer.state_dict().items():
        if isinstance(value, np.ndarray):
            arrays[key] = value
        elif isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().contiguous()
        elif isinstance(value, BaseEstimator):
            file_name = f"{key}.skops"
            files[file_name] = _dump_estimator(value, file_name)
            estimators[key] = {"file": file_name, "type": _type_name(value)}
        else:
            state[key] = _to_json(value, f"state entry {key!r}")
    if arrays:
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        files[ARRAYS] = buffer.getvalue()
    if tensors:
        files[TENSORS] = safetensors.torch.save(tensors)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "checksum_file": CHECKSUM_FILE,
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
    files[MANIFEST] = (json.dumps(manifest, indent=2, allow_nan=False) + "\n").encode("utf-8")
    # The manifest after the files it lists, the checksums last: a directory with both is complete.
    for file_name, data in files.items():
        atomic_write(directory / file_name, data)
    atomic_write(directory / CHECKSUM_FILE, format_checksums({n: sha256_bytes(d) for n, d in files.items()}))
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
    files = _SavedFiles(directory)
    manifest = _read_manifest(files)
    cls = _registered_class(manifest, manifest_path)
    arrays = _load_arrays(files, manifest["arrays"])
    tensors = _load_tensors(files, manifest["tensors"])
    # Building a torch learner seeds torch's global generator (as constructing one does); loading
    # one must not change the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        _check_saved_shapes(cls, manifest, {**arrays, **tensors}, manifest_path)
        state: dict[str, Any] = {**manifest["state"], **arrays, **tensors}
        for key, entry in manifest["estimators"].items():
            state[key] = _load_estimator(files, entry["file"], entry["type"])
        try:
            scorer = cls(**manifest["params"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{manifest_path}: params do not fit {cls.__name__}: {err}") from err
        try:
            scorer.load_state_dict(state)
        except KeyError as err:
            raise ValueError(f"{directory}: state entry {err} of {cls.__name__} is missing") from err
        except (TypeError, ValueError, AttributeError, IndexError) as err:
            raise ValueError(f"{directory}: the saved state does not fit {cls.__name__}: {err}") from err
    return scorer


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``scorer.json`` of a saved scorer, checked (its checksum, this format's version, the type of
    every entry), e.g. to read ``metadata``."""
    return _read_manifest(_SavedFiles(Path(directory)))


# ----------------------------------------------------------------------------------- internals
class _SavedFiles:
    """The files of a saved scorer, each read once and checked against ``checksums.sha256``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.manifest_path = directory / MANIFEST
        if not self.manifest_path.is_file():
            raise FileNotFoundError(
                f"{self.manifest_path} not found: not a directory written by agents.persistence.save_scorer"
            )
        path = directory / CHECKSUM_FILE
        self.digests: dict[str, str] | None = None
        if path.is_file():
            try:
                self.digests = parse_checksums(path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise ValueError(f"{path}: not a checksum list ({err}); save the scorer again") from err

    def read(self, name: str, listed_by: str) -> bytes:
        """The bytes of ``name``; FileNotFoundError if missing, ValueError if its SHA-256 is wrong."""
        path = self.directory / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; {listed_by}")
        data = path.read_bytes()
        if self.digests is not None:
            expected = self.digests.get(name)
            if expected is None:
                raise ValueError(
                    f"{path}: not listed in {CHECKSUM_FILE}, so it cannot be checked; save the scorer again"
                )
            if sha256_bytes(data) != expected:
                raise ValueError(
                    f"{path}: damaged or changed since it was saved (its SHA-256 differs from the one in "
                    f"{CHECKSUM_FILE}); save the scorer again, or restore the file from a copy"
                )
        return data


def _read_manifest(files: _SavedFiles) -> dict[str, Any]:
    path = files.manifest_path
    try:
        manifest = json.loads(files.read(MANIFEST, "").decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: expected 'format': {FORMAT!r}, got {_get(manifest, 'format')!r}")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported; this mmr-gym "
            f"({mmr_gym.__version__}) reads version {FORMAT_VERSION}"
        )
    if files.digests is None:
        if "checksum_file" in manifest:
            raise ValueError(
                f"{files.directory / CHECKSUM_FILE} not found, but {MANIFEST} says the scorer was saved with it; "
                "restore it from a copy or save the scorer again"
            )
        warnings.warn(
            f"{files.directory}: no {CHECKSUM_FILE} (saved by an mmr-gym older than file checksums), so its "
            "files cannot be checked for damage; load and save it again to add checksums",
            UnverifiedFilesWarning,
            stacklevel=3,
        )
    _check_manifest_entries(manifest, path)
    return manifest


_ENTRY_TYPES: dict[str, type] = {
    "kind": str,
    "name": str,
    "class": str,
    "params": dict,
    "state": dict,
    "arrays": dict,
    "tensors": dict,
    "estimators": dict,
}


def _check_manifest_entries(manifest: Mapping[str, Any], path: Path) -> None:
    """Every entry of ``scorer.json`` has the type this module writes; an error names the entry."""
    missing = [key for key in _ENTRY_TYPES if key not in manifest]
    if missing:
        raise ValueError(f"{path}: missing entries {missing}")
    for key, kind in _ENTRY_TYPES.items():
        if not isinstance(manifest[key], kind):
            expected = "a JSON object" if kind is dict else "a string"
            raise ValueError(f"{path}: {key!r} must be {expected}, got {_short(manifest[key])}")
    for section in ("arrays", "tensors"):
        for key, layout in manifest[section].items():
            shape = layout.get("shape") if isinstance(layout, dict) else None
            if (
                not isinstance(shape, list)
                or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
                or not isinstance(layout.get("dtype"), str)
            ):
                raise ValueError(
                    f"{path}: {section}[{key!r}] must be {{'shape': [non-negative integers], 'dtype': str}}, "
                    f"got {_short(layout)}"
                )
    for key, entry in manifest["estimators"].items():
        file_name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(file_name, str) or not isinstance(entry.get("type"), str):
            raise ValueError(
                f"{path}: estimators[{key!r}] must be {{'file': str, 'type': str}}, got {_short(entry)}"
            )
        if Path(file_name).name != file_name or not file_name.endswith(".skops"):
            raise ValueError(
                f"{path}: estimators[{key!r}]: file {file_name!r} is not a .skops file name in {path.parent}"
            )


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return (
        f"{text[:limit]}... ({type(value).__name__})"
        if len(text) > limit
        else f"{text} ({type(value).__name__})"
    )


def _check_saved_shapes(cls: type, manifest: Mapping[str, Any], saved: Mapping[str, Any], path: Path) -> None:
    """The parameters' implied array and tensor shapes against the saved ones, before building anything."""
    shapes = {key: tuple(value.shape) for key, value in saved.items()}
    try:
        expected = cls.saved_shapes(manifest["params"], manifest["state"], max_layers=len(shapes))
    except (TypeError, ValueError, RuntimeError, OverflowError) as err:  # torch: shapes too big even for meta
        raise ValueError(f"{path}: params do not fit {cls.__name__}: {err}") from err
    for key, shape in expected.items():
        if key not in shapes:
            raise ValueError(
                f"{path}: {cls.__name__} with these params needs the saved entry {key!r} (shape "
                f"{list(shape)}), which the files do not hold"
            )
        if shapes[key] != tuple(shape):
            raise ValueError(
                f"{path}: params ask for {key!r} of shape {list(shape)}, but the saved state holds shape "
                f"{list(shapes[key])}: the params and the saved arrays do not belong together"
            )


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


def _dump_estimator(estimator: BaseEstimator, file_name: str) -> bytes:
    data = skops.io.dumps(estimator)
    unexpected = sorted(set(skops.io.get_untrusted_types(data=data)) - set(SKOPS_TRUSTED))
    if unexpected:  # refused now rather than when someone tries to load it
        raise TypeError(
            f"{file_name}: {type(estimator).__name__} holds types outside SKOPS_TRUSTED: {unexpected}"
        )
    return data


def _load_estimator(files: _SavedFiles, file_name: str, expected_type: str) -> BaseEstimator:
    path = files.directory / file_name
    data = files.read(file_name, f"{files.manifest_path} lists it (a {expected_type})")
    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path}: not a readable skops file ({err})") from err
    unexpected = sorted(set(untrusted) - set(SKOPS_TRUSTED))
    if unexpected:
        raise ValueError(
            f"{path}: refusing to load untrusted types {unexpected} (trusted: {list(SKOPS_TRUSTED)})"
        )
    estimator = skops.io.loads(data, trusted=list(SKOPS_TRUSTED))
    if _type_name(estimator) != expected_type:
        raise ValueError(f"{path}: expected a {expected_type}, got a {_type_name(estimator)}")
    return estimator


def _load_arrays(files: _SavedFiles, layout: Mapping[str, Any]) -> dict[str, np.ndarray]:
    if not layout:
        return {}
    path = files.directory / ARRAYS
    data = files.read(ARRAYS, f"{files.manifest_path} lists arrays {sorted(layout)}")
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path}: not a readable npz file ({err})") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"{path}: expected an npz archive of arrays, got a single {type(npz).__name__}")
    with npz:
        _check_keys(path, set(npz.files), layout)
        try:
            arrays = {key: npz[key] for key in npz.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise ValueError(f"{path}: not a readable npz file ({err})") from err
    for key, array in arrays.items():
        _check_layout(path, key, array.shape, array.dtype, layout[key])
        _check_finite(path, key, array)
    return arrays


def _load_tensors(files: _SavedFiles, layout: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if not layout:
        return {}
    path = files.directory / TENSORS
    data = files.read(TENSORS, f"{files.manifest_path} lists tensors {sorted(layout)}")
    try:
        tensors = safetensors.torch.load(data)
    except (safetensors.SafetensorError, ValueError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
    _check_keys(path, set(tensors), layout)
    for key, tensor in tensors.items():
        _check_layout(path, key, tensor.shape, tensor.dtype, layout[key])
        _check_finite(path, key, tensor)
    return tensors


def _check_finite(path: Path, key: str, values: np.ndarray | torch.Tensor) -> None:
    """A saved float array with NaN or infinite values is damaged (no scorer stores them)."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point():
            return
        bad, size = int((~torch.isfinite(values)).sum()), values.numel()
    else:
        if not np.issubdtype(values.dtype, np.floating):
            return
        bad, size = int(np.count_nonzero(~np.isfinite(values))), values.size
    if bad:
        raise ValueError(
            f"{path}: {key!r} holds {bad} NaN or infinite value(s) of {size}; the file is damaged: "
            "save the scorer again, or restore the file from a copy"
        )


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
