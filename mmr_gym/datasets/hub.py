"""The full MMR-Bench data from the Hugging Face Hub, prepared once into a cached RoutingTable.

MMR-Bench publishes its outcome table and images as the Hugging Face dataset
``gh0stHunter/MMR-Bench``: ``MMR_Bench.csv`` (see :mod:`mmr_gym.datasets.mmr_bench`) beside one
image folder per dataset (``MathVerse/``, ``MathVision/``, ``MathVista/``, ``OCRBench/``,
``RealWorldQA/``, ``MMStar/``, ``SEEDBenchv2Plus/``), the layout the reference code
(``Hunter-Wrynn/MMR-Bench``) reads from its ``data/`` folder.

:func:`prepare_mmr_bench` (``mmr-gym prepare mmr-bench``) downloads that snapshot with
``huggingface_hub.snapshot_download`` (the optional ``hub`` extra: ``pip install 'mmr-gym[hub]'``)
into the cache, or uses a copy the user already has (``--local-dir``), computes query features
(MiniLM text and image statistics by default, CLIP on request) and saves the table in the cache.
:func:`load_mmr_bench_hub` (``load_table("mmr-bench-hub")``, ``gym.make("MMRRouting-v0",
dataset="mmr-bench-hub")``) then reads it back. Nothing here is needed for the default, offline run.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmr_gym.datasets.mmr_bench import IDX_PREFIXES, MERGED_FILE, load_mmr_bench, read_mmr_bench_frame
from mmr_gym.errors import TableError
from mmr_gym.features import CachePath, default_cache_dir
from mmr_gym.fitted_features import FITTED_FEATURES_KEY, encode_table_features
from mmr_gym.table import RoutingTable
from mmr_gym.table_files import replace_table_dir

__all__ = [
    "HUB_REPO_ID",
    "HUB_TABLE_NAME",
    "HubUnavailableError",
    "download_mmr_bench",
    "find_data_root",
    "hub_table_dir",
    "load_mmr_bench_hub",
    "prepare_mmr_bench",
]

HUB_REPO_ID = "gh0stHunter/MMR-Bench"
HUB_TABLE_NAME = "mmr-bench-hub"
IMAGE_FOLDERS: tuple[str, ...] = tuple(dict.fromkeys(folder for _, folder in IDX_PREFIXES.values()))
# Only the CSV and the image folders: the reference code's own download fetches the same.
ALLOW_PATTERNS: tuple[str, ...] = (MERGED_FILE, *(f"{folder}/*" for folder in IMAGE_FOLDERS))
DEFAULT_ENCODERS: tuple[str, ...] = ("minilm", "image-stats")


class HubUnavailableError(RuntimeError):
    """The Hub download cannot run here: ``huggingface_hub`` is missing or the Hub is unreachable."""


def hub_table_dir(cache_dir: CachePath = None) -> Path:
    """Where the prepared MMR-Bench table is saved: ``<cache>/tables/mmr-bench-hub``."""
    base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return base / "tables" / HUB_TABLE_NAME


def _snapshot_download(**kwargs: Any) -> str:
    """``huggingface_hub.snapshot_download`` (a seam: tests replace it, so they never use the network)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise HubUnavailableError(
            "downloading MMR-Bench needs the package huggingface-hub: pip install 'mmr-gym[hub]'; "
            "or download the dataset elsewhere and pass its folder with --local-dir"
        ) from exc
    return snapshot_download(**kwargs)


def download_mmr_bench(
    dest: str | os.PathLike[str], *, repo_id: str = HUB_REPO_ID, revision: str | None = None
) -> Path:
    """Download the MMR-Bench snapshot (``MMR_Bench.csv`` and the image folders) into ``dest``.

    Raises:
        HubUnavailableError: ``huggingface_hub`` is not installed, or the Hub cannot be reached;
            the message tells the user to install the ``hub`` extra or to pass ``--local-dir``.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    try:
        path = _snapshot_download(
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            allow_patterns=list(ALLOW_PATTERNS),
            local_dir=str(dest),
        )
    except HubUnavailableError:
        raise
    except Exception as exc:  # huggingface_hub raises several types for offline, 401, 404, timeouts
        raise HubUnavailableError(
            f"cannot download the dataset {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "If this machine cannot reach the Hub, download the dataset elsewhere (it holds MMR_Bench.csv "
            "and the image folders) and pass that folder with --local-dir"
        ) from exc
    return Path(path)


def find_data_root(directory: str | os.PathLike[str]) -> Path:
    """The folder holding the outcome CSVs in ``directory``: itself, its ``data/``, or its only subfolder.

    The first candidate with ``MMR_Bench.csv`` wins; failing that, the first with per-dataset
    ``<name>.csv`` files (the reference code's other layout), whatever the datasets are called.

    Raises:
        TableError: no CSV there.
    """
    directory = Path(directory)
    candidates = [directory, directory / "data"]
    if directory.is_dir():
        subfolders = [p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")]
        if len(subfolders) == 1:
            candidates.append(subfolders[0])
    for candidate in candidates:
        if (candidate / MERGED_FILE).is_file():
            return candidate
    for candidate in candidates:
        if candidate.is_dir() and any(
            p.suffix.lower() == ".csv" and p.is_file() for p in candidate.iterdir()
        ):
            return candidate
    raise TableError(
        str(directory),
        None,
        None,
        f"no {MERGED_FILE} and no <dataset>.csv files here (nor in data/): not an MMR-Bench data folder",
    )


def prepare_mmr_bench(
    *,
    local_dir: str | os.PathLike[str] | None = None,
    dest: str | os.PathLike[str] | None = None,
    repo_id: str = HUB_REPO_ID,
    revision: str | None = None,
    encoders: Sequence[str] | None = DEFAULT_ENCODERS,
    clip: str | None = None,
    cost_unit: str = "as in MMR_Bench.csv (MMR-Bench's per-call cost)",
    cache_dir: CachePath = None,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Get MMR-Bench, compute features, save the table in the cache. Returns the table's directory.

    Args:
        local_dir: a folder that already holds the data (``MMR_Bench.csv`` and image folders, or a
            Hub snapshot of them; or per-dataset ``<name>.csv`` files): nothing is downloaded. Any
            dataset may be in it, not only MMR-Bench's seven: a ``dataset_idx`` such as
            ``ChartQA_12`` names dataset ``ChartQA`` and image ``ChartQA/12.jpg``.
        dest: where to download to (default ``<cache>/mmr-bench``); an existing download is reused
            unless ``force``.
        repo_id: the Hub dataset.
        revision: a Hub branch, tag or commit (None: the default branch).
        encoders: feature encoders (:func:`mmr_gym.features.encode_queries`); default MiniLM text
            and image statistics.
        clip: a CLIP model (local directory or hub name) whose text and image embeddings are added.
        cost_unit: the unit of the CSV's ``<model>_cost`` columns, recorded in ``meta``.
        cache_dir: the cache root (default :func:`mmr_gym.features.default_cache_dir`).
        force: download again even if ``dest`` has the data.
        progress: show progress bars.

    Queries whose image file is missing keep a zero image row (``has_image`` = 0); their number is
    warned about and recorded in ``meta["missing_images"]``.
    """
    started = time.perf_counter()
    if local_dir is not None:
        data_root = find_data_root(local_dir)
        origin = {"local_dir": str(Path(local_dir).resolve())}
    else:
        target = (
            Path(dest)
            if dest is not None
            else (Path(cache_dir) if cache_dir else default_cache_dir()) / "mmr-bench"
        )
        if force or not (target / MERGED_FILE).is_file():
            download_mmr_bench(target, repo_id=repo_id, revision=revision)
        data_root = find_data_root(target)
        origin = {
            "repo_id": repo_id,
            "revision": revision or "default branch",
            "download_dir": str(target.resolve()),
        }

    outcomes = load_mmr_bench(data_root, features=None, cost_unit=cost_unit, cost_source="measured")
    frame = read_mmr_bench_frame(data_root)
    if frame["query_id"].tolist() != outcomes.query_ids.tolist():
        raise TableError(
            str(data_root), None, None, "internal: the question rows do not match the outcome rows"
        )
    if not frame["question"].astype(str).str.strip().astype(bool).any():
        warnings.warn(
            f"{data_root / MERGED_FILE}: column 'question' is empty in every row, so every text feature is "
            "the same vector (the router sees no query text)",
            stacklevel=2,
        )
    image_paths = [str(p) if p else "" for p in frame["img_path"].tolist()]
    missing = sum(1 for p in image_paths if p and not Path(p).is_file())
    if missing:
        warnings.warn(
            f"{data_root}: {missing} of {len(image_paths)} image file(s) are missing; their image features are zeros",
            stacklevel=2,
        )
    names = list(encoders or ()) + ([f"clip:{clip}"] if clip else [])
    texts = frame["question"].astype(str).tolist()
    # TF-IDF is fitted on data: only its spec is saved, fitted on the training split by the environment.
    channels, notes, fitted = encode_table_features(
        texts, image_paths, names, missing_images="zero", cache_dir=cache_dir, progress=progress
    )
    meta = dict(outcomes.meta)
    meta.update(
        {
            "source": f"MMR-Bench (Hugging Face dataset {repo_id})"
            if local_dir is None
            else "MMR-Bench (local copy)",
            "origin": origin,
            "data_root": str(data_root.resolve()),
            "features": notes,
            FITTED_FEATURES_KEY: fitted,
            "missing_images": missing,
            "prepared_seconds": round(time.perf_counter() - started, 3),
        }
    )
    table = RoutingTable(
        correct=outcomes.correct,
        cost=outcomes.cost,
        query_ids=outcomes.query_ids,
        datasets=outcomes.datasets,
        model_names=outcomes.model_names,
        features=channels,
        meta=meta,
        source=str(data_root),
        texts=texts,
    )
    directory = hub_table_dir(cache_dir)
    replace_table_dir(table, directory)
    return directory


def load_mmr_bench_hub(cache_dir: CachePath = None) -> RoutingTable:
    """The MMR-Bench table prepared by :func:`prepare_mmr_bench` (``mmr-gym prepare mmr-bench``).

    Raises:
        FileNotFoundError: it has not been prepared; the message gives the command.
    """
    directory = hub_table_dir(cache_dir)
    if not (directory / "meta.json").is_file():
        raise FileNotFoundError(
            f"the MMR-Bench table is not prepared ({directory} is missing): run 'mmr-gym prepare mmr-bench' "
            f"(downloads {HUB_REPO_ID}; needs pip install 'mmr-gym[hub]') or "
            "'mmr-gym prepare mmr-bench --local-dir DIR' with a copy of the data"
        )
    try:
        return RoutingTable.load(directory)
    except TableError as exc:
        raise exc.advised(
            "This is the prepared MMR-Bench table: run 'mmr-gym prepare mmr-bench' again (with the "
            "same options) to rebuild it"
        ) from exc
