"""MMR-Bench CSV loading, load_table's sources, and RoutingTable's own validation.

Error messages name the file, the column and the file line (header = line 1); the tests assert on
those exact substrings.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _tables import make_table

import mmr_gym.datasets as datasets_module
from mmr_gym.datasets import (
    BUNDLED_DEFAULT,
    DATASET_LOADERS,
    bundled_table_names,
    load_mmr_bench,
    load_table,
    read_mmr_bench_frame,
    source_digest,
)
from mmr_gym.datasets.columns import outcome_arrays
from mmr_gym.errors import TableError
from mmr_gym.features import tfidf_features
from mmr_gym.fitted_features import fit_query_features
from mmr_gym.table import RoutingTable

MERGED = """
dataset_idx,question,answer,gpt_correct,gpt_cost,qwen_correct,qwen_cost
SEEDBench2_Plus_0,"What does the
sign say?",STOP,1,10.0,0,0.03
MathVista_17,Solve for x,3,1,10.0,1,0.03

OCRBench_2,Read the plate,AB12,0,10.0,0.5,0.03
MMStar_5,Which animal is it?,cat,1,12.5,1,0.05
"""


# ---------------------------------------------------------------------------------------- valid input
def test_merged_csv_models_arrays_datasets_ids_and_images(write_csv):
    path = write_csv("MMR_Bench.csv", MERGED)
    (path.parent / "MathVista").mkdir()
    (path.parent / "MathVista" / "17.png").touch()  # an existing extension other than .jpg is found
    table = load_table(path.parent)  # a directory with MMR_Bench.csv
    assert table.model_names == ("gpt", "qwen")
    np.testing.assert_array_equal(table.correct, [[1, 0], [1, 1], [0, 0.5], [1, 1]])
    np.testing.assert_allclose(table.cost, [[10, 0.03], [10, 0.03], [10, 0.03], [12.5, 0.05]], rtol=1e-6)
    assert table.query_ids.tolist() == ["SEEDBench2_Plus_0", "MathVista_17", "OCRBench_2", "MMStar_5"]
    assert table.datasets.tolist() == ["SEEDBench2Plus", "MathVista", "OCRBench", "MMStar"]
    assert table.meta["files"] == [str(path)]
    assert table.meta["n_rows"] == 4
    assert table.meta["model_names"] == ["gpt", "qwen"]
    assert table.meta["cost_source"] == "measured"
    assert table.meta["nan_filled"] == {}

    frame = read_mmr_bench_frame(path)
    root = path.parent.resolve()
    assert frame["img_path"].tolist() == [
        str(root / "SEEDBenchv2Plus" / "0.jpg"),
        str(root / "MathVista" / "17.png"),
        str(root / "OCRBench" / "2.jpg"),
        str(root / "MMStar" / "5.jpg"),
    ]
    assert frame["question"][0] == "What does the\nsign say?"
    assert frame["line"].tolist() == [2, 4, 6, 7]  # a quoted newline and a blank line are counted
    assert frame["query_id"].tolist() == table.query_ids.tolist()


def test_merged_csv_dataset_selection_ignores_case_and_punctuation(write_csv):
    path = write_csv("MMR_Bench.csv", MERGED)
    table = load_mmr_bench(path.parent, datasets=["seedbench2_plus", "MMSTAR"])
    assert table.query_ids.tolist() == ["SEEDBench2_Plus_0", "MMStar_5"]
    assert load_mmr_bench(path, datasets="mathvista").query_ids.tolist() == ["MathVista_17"]


def test_per_dataset_csvs(write_csv, tmp_path):
    write_csv(
        "mathvista.csv",
        """
        question,img_path,b_correct,b_cost,a_correct,a_cost
        q one,1.jpg,1,0.5,0,0.1
        q two,/abs/2.jpg,0,0.5,1,0.1
        """,
    )
    (tmp_path / "mathvista").mkdir()  # relative image paths resolve against <root>/<name>/
    write_csv("toy.csv", "question,a_cost,a_correct,b_cost,b_correct\nq three,0.2,1,0.7,1\n")
    table = load_table(tmp_path)
    assert table.model_names == ("b", "a")  # column order of the first file
    assert table.datasets.tolist() == ["MathVista", "MathVista", "toy"]
    assert table.query_ids.tolist() == ["MathVista_0", "MathVista_1", "toy_0"]
    np.testing.assert_array_equal(table.correct, [[1, 0], [0, 1], [1, 1]])
    np.testing.assert_allclose(table.cost, [[0.5, 0.1], [0.5, 0.1], [0.7, 0.2]], rtol=1e-6)
    frame = read_mmr_bench_frame(tmp_path)
    assert frame["img_path"].tolist() == [str(tmp_path.resolve() / "mathvista" / "1.jpg"), "/abs/2.jpg", ""]

    only = load_mmr_bench(tmp_path, datasets=["Toy"])
    assert only.query_ids.tolist() == ["toy_0"]
    assert only.meta["files"] == [str(tmp_path / "toy.csv")]


def test_missing_numbers_are_filled_counted_and_warned(write_csv):
    path = write_csv(
        "d.csv",
        """
        question,m_correct,m_cost,n_correct,n_cost
        a,1,2.0,,1
        b,0,,NaN,3
        c,1,4.0,1,
        """,
    )
    with pytest.warns(UserWarning, match=r"filled 4 missing value\(s\) with the column mean"):
        table = load_mmr_bench(path)
    assert table.meta["nan_filled"] == {"m_cost": 1, "n_correct": 2, "n_cost": 1}
    np.testing.assert_allclose(table.cost[:, 0], [2, 3, 4])
    np.testing.assert_allclose(table.correct[:, 1], [1, 1, 1])
    np.testing.assert_allclose(table.cost[:, 1], [1, 3, 2])


def test_feature_columns_become_channels(write_csv):
    path = write_csv(
        "d.csv",
        """
        question,feature_text_1,feature_text_0,feature_image_0,m_correct,m_cost
        a,0.5,1.5,-1,1,1
        b,2,3,4e-3,0,1
        """,
    )
    table = load_mmr_bench(path)
    np.testing.assert_allclose(table.features["text"], [[1.5, 0.5], [3, 2]])
    np.testing.assert_allclose(table.features["image"], [[-1], [4e-3]])
    assert table.features["text"].dtype == np.float32
    assert table.meta["features"] == {
        "text": "CSV columns feature_text_0..feature_text_1 (2 dims)",
        "image": "CSV columns feature_image_0..feature_image_0 (1 dims)",
    }
    assert "fitted_features" not in table.meta
    tfidf = load_mmr_bench(path, features="tfidf")
    assert dict(tfidf.features) == {} and set(tfidf.meta["fitted_features"]) == {"text_tfidf"}
    assert dict(load_mmr_bench(path, features=None).features) == {}


def test_tfidf_fallback_is_deferred_to_the_training_split(write_csv):
    """Without feature columns the TF-IDF fallback is not fitted at load time (the split is unknown):
    the table keeps the questions and a spec, and fit_query_features fits on training rows only."""
    from mmr_gym.fitted_features import fit_query_features

    path = write_csv("MMR_Bench.csv", MERGED)
    table = load_mmr_bench(path)
    assert dict(table.features) == {}
    assert table.meta["fitted_features"] == {"text_tfidf": {"encoder": "tfidf", "dim": 64, "seed": 0}}
    assert table.meta["features"]["text_tfidf"].startswith(
        "TF-IDF+SVD (64 dims), fitted on the texts of the training split"
    )
    assert table.texts.tolist() == [
        "What does the\nsign say?",
        "Solve for x",
        "Read the plate",
        "Which animal is it?",
    ]
    text = fit_query_features(table, [0, 1, 2, 3])["text_tfidf"]
    assert text.shape == (4, 64) and text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, rtol=1e-5)
    with pytest.raises(TableError, match="no feature columns"):
        load_mmr_bench(path, features="csv")


def test_tfidf_features_is_deterministic_and_handles_empty_texts():
    texts = [f"question {i} about {w}" for i, w in enumerate(["cats", "dogs", "sums", "maps"] * 30)] + [""]
    first, second = tfidf_features(texts, dim=16, seed=3), tfidf_features(texts, dim=16, seed=3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first[:-1], axis=1), 1.0, rtol=1e-5)
    assert not first[-1].any()  # no token: a zero row
    assert not tfidf_features(["", " "], dim=4).any()


def test_save_load_round_trip_preserves_fingerprint(write_csv, tmp_path):
    table = load_mmr_bench(write_csv("MMR_Bench.csv", MERGED))
    saved = table.save(tmp_path / "saved")
    again = load_table(saved)
    assert again.fingerprint() == table.fingerprint()
    assert again.meta["files"] == table.meta["files"]
    assert again.model_names == table.model_names


# ---------------------------------------------------------------------------------------- load_table
def test_load_table_sources(write_csv, tmp_path, monkeypatch):
    table = load_mmr_bench(write_csv("MMR_Bench.csv", MERGED))
    assert load_table(table) is table
    assert DATASET_LOADERS["mmr-bench"] is load_mmr_bench
    via_registry = load_table("mmr-bench", path=tmp_path / "MMR_Bench.csv", datasets=["OCRBench"])
    assert via_registry.query_ids.tolist() == ["OCRBench_2"]

    bundled = tmp_path / "pkg" / "envs_data"
    table.save(bundled / BUNDLED_DEFAULT)
    table.subset([0, 1]).save(bundled / "other")
    monkeypatch.setattr(datasets_module, "_bundled_root", lambda: bundled)
    assert bundled_table_names() == [BUNDLED_DEFAULT, "other"]
    assert load_table().fingerprint() == table.fingerprint()
    assert load_table("other").n_queries == 2
    with pytest.raises(ValueError, match=re.escape("bundled table ['mmr-sim-default', 'other']")):
        load_table("no-such-table")
    with pytest.raises(TableError, match=re.escape(f"{tmp_path / 'nope.csv'}: file not found")):
        load_table(tmp_path / "nope.csv")


def test_missing_bundled_default_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets_module, "_bundled_root", lambda: tmp_path / "envs_data")
    assert bundled_table_names() == []
    with pytest.raises(FileNotFoundError, match="the bundled table 'mmr-sim-default' is missing"):
        load_table()


@pytest.mark.skipif(BUNDLED_DEFAULT not in bundled_table_names(), reason="bundled table not generated yet")
def test_real_bundled_default_loads():
    table = load_table()
    assert table.n_queries > 0 and table.n_models > 1


# ---------------------------------------------------------------------------------------- bad input
HEADER = "dataset_idx,question,m_correct,m_cost,n_correct,n_cost"

BAD_CSVS = [
    # (id, file text, column named, line named or None, problem)
    ("empty-file", "", None, None, "empty file"),
    ("header-only", HEADER + "\n", None, None, "no rows"),
    ("no-question", "dataset_idx,m_correct,m_cost\nMMStar_1,1,1\n", "question", None, "missing column"),
    ("no-models", "dataset_idx,question,answer\nMMStar_1,q,a\n", None, None, "no model columns"),
    ("correct-without-cost", "dataset_idx,question,m_correct,m_cost,n_correct\nMMStar_1,q,1,1,0\n",
     "n_correct", None, "model 'n' has no cost column 'n_cost'"),
    ("cost-without-correct", "dataset_idx,question,m_correct,m_cost,n_cost\nMMStar_1,q,1,1,0\n",
     "n_cost", None, "model 'n' has no correctness column 'n_correct'"),
    ("non-numeric-cost", f"{HEADER}\nMMStar_1,q,1,1,0,1\nMMStar_2,q,1,1,0,abc\n", "n_cost", 3, "not a number: 'abc'"),
    ("non-numeric-correct", f"{HEADER}\nMMStar_1,q,yes,1,0,1\n", "m_correct", 2, "not a number: 'yes'"),
    ("negative-cost", f"{HEADER}\nMMStar_1,q,1,1,0,1\nMMStar_2,q,1,-0.5,0,1\n", "m_cost", 3,
     "value -0.5 is not a finite number >= 0"),
    ("infinite-cost", f"{HEADER}\nMMStar_1,q,1,inf,0,1\n", "m_cost", 2, "value inf is not a finite number >= 0"),
    ("correct-above-one", f"{HEADER}\nMMStar_1,q,1,1,0,1\nMMStar_2,q,1,1,2,1\n", "n_correct", 3,
     "value 2.0 is not in [0, 1]"),
    ("correct-below-zero", f"{HEADER}\nMMStar_1,q,-1,1,0,1\n", "m_correct", 2, "value -1.0 is not in [0, 1]"),
    ("duplicate-dataset-idx", f'{HEADER}\nMMStar_1,"multi\nline",1,1,0,1\nMMStar_2,q,1,1,0,1\nMMStar_1,q,1,1,0,1\n',
     "dataset_idx", 5, "duplicate query id 'MMStar_1' (first at line 2)"),
    ("duplicate-model-column", "dataset_idx,question,m_correct,m_cost,m_correct\nMMStar_1,q,1,1,1\n",
     "m_correct", 1, "the header names this column twice (fields 3 and 5); model columns must be unique"),
    ("ragged-row", f"{HEADER}\nMMStar_1,q,1,1,0,1\nMMStar_2,q,1,1\n", None, 3, "4 fields, but the header has 6"),
    ("empty-dataset-idx", f"{HEADER}\nMMStar_1,q,1,1,0,1\n,q,1,1,0,1\n", "dataset_idx", 3, "empty"),
    ("unparsable-dataset-idx", f"{HEADER}\nMMStar,q,1,1,0,1\n", "dataset_idx", 2, "'MMStar' does not name a dataset"),
    ("no-dataset-idx", "question,m_correct,m_cost\nq,1,1\n", "dataset_idx", None, "missing column"),
    ("all-missing-column", f"{HEADER}\nMMStar_1,q,1,,0,1\nMMStar_2,q,1,,0,1\n", "m_cost", None, "every value is missing"),
    ("feature-not-a-number", f"{HEADER},feature_text_0\nMMStar_1,q,1,1,0,1,0.1\nMMStar_2,q,1,1,0,1,x\n",
     "feature_text_0", 3, "not a number: 'x'"),
    ("feature-missing-value", f"{HEADER},feature_text_0,feature_text_1\nMMStar_1,q,1,1,0,1,0.1,\n",
     "feature_text_1", 2, "feature value '' is missing or not finite"),
    ("feature-index-gap", f"{HEADER},feature_text_0,feature_text_2\nMMStar_1,q,1,1,0,1,0.1,0.2\n",
     "feature_text_1", None, "channel 'text' has columns up to index 2 but not index 1"),
    # Issue 17: another separator is named, not reported as a missing 'question' column.
    ("semicolons", "dataset_idx;question;m_correct;m_cost\nMMStar_1;What is 1,5 + 2?;1;0.5\n", None, 1,
     "the header is separated by semicolons (';'), not commas"),
    ("semicolons-quoted", '"dataset_idx";"question";"m_correct";"m_cost"\n"MMStar_1";"q";1;0.5\n', None, 1,
     "separated by semicolons"),
    ("tabs", "dataset_idx\tquestion\tm_correct\tm_cost\nMMStar_1\tq\t1\t0.5\n", None, 1,
     "the header is separated by tabs ('\\t'), not commas"),
    ("bars", "dataset_idx|question|m_correct|m_cost\nMMStar_1|q|1|0.5\n", None, 1, "separated by vertical bars"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "column", "line", "problem"), [c[1:] for c in BAD_CSVS], ids=[c[0] for c in BAD_CSVS]
)
def test_bad_csv_names_file_column_and_line(write_csv, text, column, line, problem):
    path = write_csv("MMR_Bench.csv", text)
    with pytest.raises(TableError) as info:
        load_mmr_bench(path)
    message = str(info.value)
    assert message.startswith(str(path))
    if column is not None:
        assert f"column {column!r}" in message
    if line is not None:
        assert f": line {line}: " in message
    assert problem in message


def test_missing_file_and_directory_without_csv(tmp_path):
    with pytest.raises(TableError, match=re.escape(f"{tmp_path / 'x.csv'}: file not found")):
        load_mmr_bench(tmp_path / "x.csv")
    with pytest.raises(TableError, match=re.escape(f"{tmp_path}: no CSV files")):
        load_mmr_bench(tmp_path)


def test_unknown_dataset_selection(write_csv, tmp_path):
    write_csv("MMR_Bench.csv", MERGED)
    with pytest.raises(TableError, match=re.escape("no rows of dataset(s) ['MathVerse']")):
        load_mmr_bench(tmp_path, datasets=["MathVerse"])
    with pytest.raises(
        TableError, match=re.escape("no CSV file for dataset 'gsm8k'; found ['MMR_Bench.csv']")
    ):
        load_mmr_bench(tmp_path, datasets=["gsm8k"])


def test_files_with_different_models(write_csv, tmp_path):
    write_csv("a.csv", "question,m_correct,m_cost\nq,1,1\n")
    b = write_csv("b.csv", "question,n_correct,n_cost\nq,1,1\n")
    with pytest.raises(
        TableError, match=re.escape(f"{b}: models differ from {tmp_path / 'a.csv'}: missing ['m']")
    ):
        load_mmr_bench(tmp_path)


def test_duplicate_ids_across_files(write_csv, tmp_path):
    a = write_csv("a.csv", "dataset_idx,question,m_correct,m_cost\nX_1,q,1,1\n")
    b = write_csv("b.csv", "dataset_idx,question,m_correct,m_cost\nX_2,q,1,1\nX_1,q,0,1\n")
    with pytest.raises(TableError) as info:
        load_mmr_bench(tmp_path)
    assert (
        str(info.value)
        == f"{b}, column 'dataset_idx': line 3: duplicate query id 'X_1' (first at {a} line 2)"
    )


# ---------------------------------------------------------------------------------------- RoutingTable
def _table(**overrides) -> RoutingTable:
    fields = {
        "correct": np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32),
        "cost": np.ones((3, 2), dtype=np.float32),
        "query_ids": ["a", "b", "c"],
        "datasets": ["d", "d", "e"],
        "model_names": ("m", "n"),
        "source": "src",
    }
    return RoutingTable(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"model_names": ("m", "m")}, "src, column 'model_names', row 1: duplicate value 'm' (first at row 0)"),
        ({"query_ids": ["a", "b", "a"]}, "src, column 'query_ids', row 2: duplicate value 'a' (first at row 0)"),
        ({"cost": np.ones((3, 3))}, "src, column 'cost': expected shape (3, 2) like `correct`, got (3, 3)"),
        ({"features": {"text": np.ones((2, 4))}}, "src, column \"features['text']\": expected 3 rows"),
        ({"features": {"text": np.array([[0.0], [np.nan], [1.0]])}}, "row 1: non-finite feature value"),
        ({"correct": np.zeros((0, 2)), "cost": np.zeros((0, 2)), "query_ids": [], "datasets": []},
         "src: the table has no queries"),
        ({"cost": -np.ones((3, 2))}, "src, column 'm_cost', row 0: value -1.0 (query 'a') is not a finite number >= 0"),
    ],
)  # fmt: skip
def test_routing_table_validation(overrides, expected):
    with pytest.raises(TableError) as info:
        _table(**overrides)
    assert expected in str(info.value)


def test_outcome_arrays_keeps_row_offset_convention():
    frame = pd.DataFrame({"m_correct": [1.0, 0.0], "m_cost": [1.0, -2.0]})
    with pytest.raises(TableError, match=re.escape("f.parquet, column 'm_cost', row 2:")):
        outcome_arrays(frame, ["m"], "f.parquet", row_offset=1)


# ---------------------------------------------------------------------------------------- reliability probe
def test_a_question_of_a_megabyte_is_read(write_csv, default_csv_field_limit):
    question = "why " * 262_144  # 1 MiB, beyond the csv module's default field limit of 128 KiB
    path = write_csv("MMR_Bench.csv", f'{HEADER}\nMMStar_1,"{question}",1,1,0,1\nMMStar_2,short,0,1,1,2\n')
    table = load_mmr_bench(path)
    assert table.n_queries == 2
    assert read_mmr_bench_frame(path)["question"][0] == question


def test_a_file_whose_questions_are_all_empty_is_warned_about(write_csv):
    path = write_csv("MMR_Bench.csv", f"{HEADER}\nMMStar_1,,1,1,0,1\nMMStar_2, ,0,1,1,2\n")
    with pytest.warns(UserWarning, match=re.escape(f"{path}: column 'question' is empty in every row")):
        table = load_mmr_bench(path)
    assert not fit_query_features(table, np.arange(table.n_queries))["text_tfidf"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_mmr_bench(path, features=None)  # no text features asked for: nothing to warn about


def test_questions_without_a_usable_word_are_warned_about(write_csv):
    path = write_csv("MMR_Bench.csv", f"{HEADER}\nMMStar_1,?,1,1,0,1\nMMStar_2,!,0,1,1,2\n")
    table = load_mmr_bench(path)
    with pytest.warns(UserWarning, match="no training query text has a word TF-IDF can use"):
        fit_query_features(table, np.arange(table.n_queries))


def test_a_directory_without_csv_says_what_it_expected(tmp_path):
    with pytest.raises(
        TableError, match=r"no CSV files: expected MMR_Bench\.csv or <dataset>\.csv files \(or a table "
    ):
        load_table(tmp_path)


# ---------------------------------------------------------------------------------------- source_digest
def test_source_digest_of_a_saved_table_changes_when_another_table_is_saved_there(tmp_path):
    directory = tmp_path / "t"
    make_table(n=40, k=3).save(directory)
    first = source_digest(directory)
    assert source_digest(directory) == first
    make_table(n=40, k=3).save(directory)  # the same table again: the same content
    assert source_digest(directory) == first
    make_table(n=40, k=3, seed=1).save(directory)
    assert source_digest(directory) != first
    assert source_digest(str(directory)) == source_digest(directory)


def test_source_digest_of_csvs_follows_their_bytes_and_names(write_csv, tmp_path):
    path = write_csv("MMR_Bench.csv", MERGED)
    first = source_digest(path)
    assert source_digest(tmp_path) != first  # a directory of CSVs is another kind of source
    directory_digest = source_digest(tmp_path)
    path.write_text(MERGED.replace("10.0", "11.0"), encoding="utf-8")
    assert source_digest(path) != first
    assert source_digest(tmp_path) != directory_digest
    other = tmp_path / "copy"
    other.mkdir()
    (other / "MMR_Bench.csv").write_bytes(path.read_bytes())
    assert source_digest(other / "MMR_Bench.csv") == source_digest(path)  # content, not location
    (other / "MMR_Bench.csv").rename(other / "MathVista.csv")  # the name says the dataset
    assert source_digest(other / "MathVista.csv") != source_digest(path)


def test_source_digest_of_a_missing_path_is_named(tmp_path):
    with pytest.raises(TableError, match=re.escape(f"{tmp_path / 'nothing'}: file not found")):
        source_digest(tmp_path / "nothing")


def test_source_digest_of_the_bundled_table_is_its_checksum_list():
    bundled = Path(datasets_module.__file__).parents[2] / "envs_data" / BUNDLED_DEFAULT
    assert re.fullmatch(r"[0-9a-f]{64}", source_digest(bundled))


def test_a_question_column_in_another_case_is_pointed_out(write_csv):
    path = write_csv("MMR_Bench.csv", "dataset_idx,Question,m_correct,m_cost\nMMStar_1,q,1,1\n")
    with pytest.raises(
        TableError, match=r"missing column .*found 'Question': column names are case-sensitive"
    ):
        load_mmr_bench(path)


def test_loader_arguments_of_the_wrong_type_are_named(write_csv, tmp_path):
    path = write_csv("MMR_Bench.csv", MERGED)
    with pytest.raises(TypeError, match=r"datasets must be a dataset name or a list of names, got 5"):
        load_mmr_bench(path, datasets=5)
    with pytest.raises(TypeError, match=r"datasets must be a dataset name or a list of names, got \[1\]"):
        load_mmr_bench(path, datasets=[1])
    with pytest.raises(TypeError, match=r"cost_unit must be a string"):
        load_mmr_bench(path, cost_unit=None)
    with pytest.raises(
        TypeError, match=r"load_table: source must be None, a RoutingTable, a name or a path, got int"
    ):
        load_table(5)


def test_one_file_of_a_saved_table_points_to_its_directory(tmp_path):
    directory = make_table(n=20).save(tmp_path / "t")
    with pytest.raises(
        TableError, match=re.escape(f"one file of a saved table: pass its directory ({directory})")
    ):
        load_table(directory / "outcomes.parquet")
