"""Query feature encoders.

:func:`tfidf_features` is the text-only fallback used when a table carries no precomputed
features: it needs no model download and runs anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer


def tfidf_features(texts: Sequence[str], dim: int = 64, seed: int = 0) -> np.ndarray:
    """TF-IDF + truncated SVD (LSA) embeddings of ``texts``: float32 ``[len(texts), dim]``.

    Rows are L2-normalised; a text with no token in the vocabulary is a zero row. The vocabulary,
    IDF weights and SVD are fitted on ``texts`` themselves (unsupervised: no outcome is used), so
    callers that split train/test afterwards should know every text shaped the basis. When there
    are fewer texts or terms than ``dim``, the missing components are zero columns, so the width is
    always ``dim`` (with at most ``dim`` terms the TF-IDF vectors are used unreduced: the SVD would
    only rotate them).

    Args:
        texts: the query texts (one per query).
        dim: the embedding width.
        seed: seed of the randomized SVD.
    """
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    out = np.zeros((len(texts), dim), dtype=np.float64)
    if len(texts) == 0:
        return out.astype(np.float32)
    try:
        tfidf = TfidfVectorizer(sublinear_tf=True).fit_transform([str(t) for t in texts])
    except ValueError:  # empty vocabulary: no text has a token
        return out.astype(np.float32)
    if tfidf.shape[1] <= dim:
        # The SVD onto every component would only rotate the rows: keep the TF-IDF columns themselves.
        reduced = tfidf.toarray()
    else:
        # With a single text the explained-variance ratio divides 0 by 0; that statistic is unused.
        with np.errstate(invalid="ignore", divide="ignore"):
            svd = TruncatedSVD(n_components=min(dim, tfidf.shape[0]), random_state=seed)
            reduced = svd.fit_transform(tfidf)
    out[:, : reduced.shape[1]] = reduced
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out.astype(np.float32)
