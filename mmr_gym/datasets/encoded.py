"""Query features for tables read from files: encoder names in, channels and provenance out.

Loaders that have each query's text and image path (MMR-Bench CSVs, long-format call logs) accept
``features=`` as a list of encoder names and call :func:`encode_table_queries`:

- ``"minilm"`` -> channel ``"text"`` (all-MiniLM-L6-v2, 384 dims), ``"image-stats"`` -> ``"image"``
  (27 weight-free statistics), ``"clip:<dir>"`` -> ``"text_clip"`` and ``"image_clip"``: computed
  at load time by :func:`mmr_gym.features.encode_queries`, each array cached by the content of
  its inputs (texts, image bytes), so a second load with the same data encodes nothing;
- ``"tfidf"`` -> ``"text_tfidf"``: fitted on data, so only recorded here
  (``meta["fitted_features"]``) and fitted on the training split by
  :func:`mmr_gym.fitted_features.fit_query_features` when an environment builds its split.

The loader keeps the query texts in the table (:attr:`RoutingTable.texts`) either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmr_gym.errors import TableError
from mmr_gym.features import CachePath, parse_encoders
from mmr_gym.fitted_features import encode_table_features

__all__ = ["ENCODER_NAMES", "EncodedQueries", "encode_table_queries", "encoder_names", "needs_images"]

#: What ``features=[...]`` may hold (``"clip:<dir>"`` with a model directory or hub name).
ENCODER_NAMES = ("minilm", "tfidf", "image-stats", "clip:<dir>")
MissingImages = Literal["error", "zero"]


@dataclass
class EncodedQueries:
    """The channels of a table's queries and what ``meta`` records about them."""

    channels: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # channel -> how it was made (meta["features"])
    fitted: dict[str, dict[str, Any]] = field(default_factory=dict)  # meta["fitted_features"]
    missing_images: int = 0


def encoder_names(features: str | Sequence[str]) -> list[str]:
    """Validated encoder names of a ``features=`` list (a single name counts as a list of one)."""
    names = [str(features)] if isinstance(features, str) else [str(f) for f in features]
    parse_encoders(names)
    return names


def needs_images(encoders: Sequence[str]) -> bool:
    """Whether any encoder reads the images."""
    return any(e == "image-stats" or e.startswith("clip:") for e in encoders)


def encode_table_queries(
    texts: Sequence[str],
    image_paths: Sequence[str],
    encoders: Sequence[str],
    *,
    image_error: Callable[[int, str], TableError],
    missing_images: MissingImages = "error",
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
) -> EncodedQueries:
    """Run ``encoders`` over the queries (see the module docstring); fitted ones become specs.

    Args:
        texts: one text per query.
        image_paths: one image file per query, ``""`` for a query without an image.
        encoders: validated encoder names (:func:`encoder_names`).
        image_error: ``image_error(row, problem)`` builds the error for query ``row`` whose
            image is missing (the loader names its file, column and line).
        missing_images: ``"error"``: an image path that names no file is an error (when an
            encoder reads images); ``"zero"``: that query gets a zero image row, counted.
        cache_dir: the feature cache root (None: :func:`mmr_gym.features.default_cache_dir`;
            False: no cache).
        progress: show progress bars while encoding.
    """
    if missing_images not in ("error", "zero"):
        raise ValueError(f"missing_images must be 'error' or 'zero', got {missing_images!r}")
    paths = [str(p) if p else "" for p in image_paths]
    missing = 0
    if needs_images(encoders):
        absent = [i for i, p in enumerate(paths) if p and not Path(p).is_file()]
        if absent and missing_images == "error":
            raise image_error(
                absent[0],
                f"image file not found: {paths[absent[0]]} ({len(absent)} of {len(paths)} queries' images are "
                "missing; pass missing_images='zero' to give them a zero image row)",
            )
        missing = len(absent)
    channels, notes, fitted = encode_table_features(
        [str(t) for t in texts],
        paths,
        list(encoders),
        missing_images="zero",  # absent files were handled above
        cache_dir=cache_dir,
        progress=progress,
    )
    return EncodedQueries(channels, notes, fitted, missing)
