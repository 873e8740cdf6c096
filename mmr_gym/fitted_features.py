"""Query features that are fitted on data, and so must be fitted on the training split only.

A pretrained encoder (MiniLM, CLIP) or a fixed statistic (image statistics) maps each query on
its own, so a loader can compute it once for the whole table. TF-IDF + SVD is different: its
vocabulary, IDF weights and projection are *fitted* on texts, and fitting them on every row lets
the test queries shape the basis the router is trained on. A loader does not know the split, so
it only records the channel as a spec in ``meta["fitted_features"]`` and keeps the query texts
(:attr:`RoutingTable.texts`); :func:`fit_query_features` fits the encoder on the training rows and
applies it to every row once the split is known (the environment's context does this).

Channel names keep the convention of :mod:`mmr_gym.features`: a name starting with ``"text"``
is a text channel for the environment's modality masks.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from mmr_gym.errors import TableError
from mmr_gym.features import CachePath, encode_queries, parse_encoders
from mmr_gym.table import RoutingTable

__all__ = [
    "FITTED_FEATURES_KEY",
    "TFIDF_CHANNEL",
    "TfidfEncoder",
    "encode_table_features",
    "fit_query_features",
    "tfidf_spec",
]

#: ``meta`` key of the specs of fitted channels: ``{channel: {"encoder": "tfidf", "dim": .., "seed": ..}}``.
FITTED_FEATURES_KEY = "fitted_features"
#: The channel of the ``"tfidf"`` encoder (as :data:`mmr_gym.features.CHANNEL_NAMES` names it).
TFIDF_CHANNEL = "text_tfidf"
_FITTED_ENCODERS = ("tfidf",)


class TfidfEncoder:
    """TF-IDF + truncated SVD (LSA) of query texts, fitted on some texts and applied to any.

    Rows are L2-normalised; a text with no token of the fitted vocabulary is a zero row. The width
    is always ``dim``: when there are fewer fitted texts or terms than ``dim`` the missing
    components are zero columns, and with at most ``dim`` terms the TF-IDF vectors are used
    unreduced (the SVD would only rotate them).

    Args:
        dim: the embedding width.
        seed: seed of the randomized SVD.
    """

    def __init__(self, dim: int = 64, seed: int = 0) -> None:
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.seed = int(seed)
        self._vectorizer: TfidfVectorizer | None = None
        self._svd: TruncatedSVD | None = None

    def fit(self, texts: Sequence[str]) -> TfidfEncoder:
        """Fit the vocabulary, IDF weights and SVD on ``texts`` (no outcome is used)."""
        self._vectorizer, self._svd = None, None
        texts = [str(t) for t in texts]
        if not texts:
            return self
        vectorizer = TfidfVectorizer(sublinear_tf=True)
        try:
            tfidf = vectorizer.fit_transform(texts)
        except ValueError:  # empty vocabulary: no text has a token; every row will be zero
            return self
        self._vectorizer = vectorizer
        if tfidf.shape[1] > self.dim:
            # With a single text the explained-variance ratio divides 0 by 0; that statistic is unused.
            with np.errstate(invalid="ignore", divide="ignore"):
                n_components = min(self.dim, tfidf.shape[0])
                self._svd = TruncatedSVD(n_components=n_components, random_state=self.seed).fit(tfidf)
        return self

    def transform(self, texts: Sequence[str]) -> np.ndarray:
        """The embeddings of ``texts``: float32 ``[len(texts), dim]``."""
        out = np.zeros((len(texts), self.dim), dtype=np.float64)
        if self._vectorizer is None or len(texts) == 0:
            return out.astype(np.float32)
        tfidf = self._vectorizer.transform([str(t) for t in texts])
        reduced = self._svd.transform(tfidf) if self._svd is not None else tfidf.toarray()
        out[:, : reduced.shape[1]] = reduced
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out.astype(np.float32)


def tfidf_spec(dim: int = 64, seed: int = 0) -> dict[str, Any]:
    """The ``meta["fitted_features"]`` entry of a TF-IDF channel (JSON-serialisable)."""
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    return {"encoder": "tfidf", "dim": int(dim), "seed": int(seed)}


def fitted_note(spec: Mapping[str, Any]) -> str:
    """How a fitted channel is made, for ``meta["features"]``."""
    return (
        f"TF-IDF+SVD ({spec['dim']} dims), fitted on the texts of the training split only when an "
        "environment builds its split (mmr_gym.fitted_features.fit_query_features)"
    )


def fit_query_features(
    table: RoutingTable, train_indices: Sequence[int] | np.ndarray
) -> dict[str, np.ndarray]:
    """Fit the table's fitted channels on the training rows; apply them to every row.

    Args:
        table: a table whose ``meta["fitted_features"]`` lists channels to fit (a table without
            that key gets ``{}``) and whose :attr:`~RoutingTable.texts` holds the query texts.
        train_indices: table rows of the training split (integer positions); only their texts
            are used to fit.

    Returns:
        channel -> float32 ``[table.n_queries, dim]``, in the order of the specs; pass it to
        :meth:`RoutingTable.with_features`.

    Raises:
        TableError: a spec names an unknown encoder, the table has no texts, or a channel
            already exists.
        ValueError: ``train_indices`` is empty or out of range.
    """
    specs = table.meta.get(FITTED_FEATURES_KEY) or {}
    if not specs:
        return {}
    if not isinstance(specs, Mapping):
        raise TableError(
            table.source, f"meta[{FITTED_FEATURES_KEY!r}]", None, "expected a mapping channel -> spec"
        )
    if table.texts is None:
        raise TableError(
            table.source,
            "texts",
            None,
            f"the table asks for fitted channel(s) {sorted(specs)} but holds no query texts to fit them on",
        )
    rows = np.asarray(train_indices, dtype=np.int64).ravel()
    if rows.size == 0:
        raise ValueError("fit_query_features: train_indices is empty; there is nothing to fit on")
    if rows.min() < 0 or rows.max() >= table.n_queries:
        raise ValueError(f"fit_query_features: train_indices must be rows in [0, {table.n_queries})")
    texts = table.texts.tolist()
    train_texts = table.texts[rows].tolist()
    channels: dict[str, np.ndarray] = {}
    for channel, spec in specs.items():
        where = f"meta[{FITTED_FEATURES_KEY!r}][{channel!r}]"
        if channel in table.features:
            raise TableError(table.source, where, None, "the table already has this channel")
        if not isinstance(spec, Mapping) or spec.get("encoder") not in _FITTED_ENCODERS:
            raise TableError(
                table.source, where, None, f"unknown fitted encoder in {spec!r}; known: {_FITTED_ENCODERS}"
            )
        encoder = TfidfEncoder(int(spec.get("dim", 64)), int(spec.get("seed", 0))).fit(train_texts)
        channels[str(channel)] = encoder.transform(texts)
        if not channels[str(channel)].any() and any(t.strip() for t in train_texts):
            warnings.warn(
                f"{table.source}: no training query text has a word TF-IDF can use, so every value of the "
                f"{channel!r} channel is zero (the router sees no query text)",
                stacklevel=3,
            )
    return channels


def encode_table_features(
    texts: Sequence[str],
    image_paths: Sequence[str | os.PathLike[str] | None],
    encoders: str | Sequence[str] | None,
    *,
    missing_images: Literal["error", "zero"] = "error",
    cache_dir: CachePath | Literal[False] = None,
    progress: bool = True,
    tfidf_dim: int = 64,
    tfidf_channel: str = TFIDF_CHANNEL,
) -> tuple[dict[str, np.ndarray], dict[str, str], dict[str, dict[str, Any]]]:
    """A loader's feature channels: encoders that need no fitting now, fitted ones as specs.

    ``"minilm"``, ``"image-stats"`` and ``"clip:<model>"`` run here through
    :func:`mmr_gym.features.encode_queries` (cached by content); ``"tfidf"`` becomes a spec for
    ``meta["fitted_features"]`` under ``tfidf_channel``, to be fitted on the training split by
    :func:`fit_query_features`. The loader must keep ``texts`` in the table.

    Returns:
        ``(channels, notes, fitted_specs)``: computed channels, a note per channel (fitted ones
        included) for ``meta["features"]``, and the specs for ``meta["fitted_features"]``.
    """
    names = [str(s) for s in ([encoders] if isinstance(encoders, str) else list(encoders or ()))]
    parse_encoders(names)  # validates every name, and that none is given twice
    eager = [n for n in names if n not in _FITTED_ENCODERS]
    channels, notes = encode_queries(
        texts, image_paths, eager, missing_images=missing_images, cache_dir=cache_dir, progress=progress
    )
    specs: dict[str, dict[str, Any]] = {}
    if "tfidf" in names:
        if tfidf_channel in channels:
            raise ValueError(f"the TF-IDF channel {tfidf_channel!r} clashes with a computed channel")
        specs[tfidf_channel] = tfidf_spec(tfidf_dim)
        notes[tfidf_channel] = fitted_note(specs[tfidf_channel])
    return channels, notes, specs
