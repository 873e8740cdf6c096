"""RoutingTable: explicit splits by query id, the "in" split's rounding, query texts, added channels."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from mmr_gym.errors import TableError
from mmr_gym.table import RoutingTable, in_split_train_size
from tests._tables import make_table


# ---------------------------------------------------------------------------------------- explicit splits
def test_explicit_ids_give_exactly_those_rows() -> None:
    table = make_table(n=10)
    train, test = table.split_indices(train_ids=["q7", "q1", "q3"], test_ids=["q0", "q9"])
    assert train.tolist() == [1, 3, 7] and test.tolist() == [0, 9]  # sorted rows; q2.. in neither
    assert train.dtype == np.int64 and test.dtype == np.int64
    train_table, test_table = table.split("ids", train_ids=np.array(["q2", "q5"]), test_ids=["q4"])
    assert train_table.query_ids.tolist() == ["q2", "q5"] and test_table.query_ids.tolist() == ["q4"]


def test_one_part_given_the_other_is_every_other_query() -> None:
    table = make_table(n=6)
    train, test = table.split_indices(train_ids=["q0", "q4"])
    assert train.tolist() == [0, 4] and test.tolist() == [1, 2, 3, 5]
    train, test = table.split_indices(test_ids=["q5"])
    assert train.tolist() == [0, 1, 2, 3, 4] and test.tolist() == [5]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"train_ids": ["q0", "nope", "q1", "gone"]},
            ValueError,
            "train_ids has 2 id(s) that are not query ids of the table, e.g. ['nope', 'gone']",
        ),
        ({"test_ids": ["q1", "q2", "q1"]}, ValueError, "test_ids repeats query id 'q1' (positions 0 and 2)"),
        (
            {"train_ids": ["q0", "q1"], "test_ids": ["q1", "q0", "q3"]},
            ValueError,
            "2 query id(s) are in both train_ids and test_ids, e.g. ['q0', 'q1']",
        ),
        (
            {"train_ids": [f"q{i}" for i in range(6)]},
            ValueError,
            "train_ids/test_ids leave the test part empty",
        ),
        ({"train_ids": [], "test_ids": ["q1"]}, ValueError, "train_ids/test_ids leave the train part empty"),
        (
            {"train_ids": "q1"},
            TypeError,
            "train_ids must be a sequence of query ids, got the single string 'q1'",
        ),
    ],
)
def test_bad_explicit_ids_are_named(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_table(n=6).split_indices(**kwargs)


def test_ids_need_the_ids_mode() -> None:
    table = make_table(n=6)
    with pytest.raises(ValueError, match="explicit train_ids/test_ids need mode 'ids'"):
        table.split_indices("in", train_ids=["q0"])
    with pytest.raises(ValueError, match="split mode 'ids' needs train_ids, test_ids or both"):
        table.split_indices("ids")
    with pytest.raises(
        ValueError, match=re.escape("expected 'in' or 'out' (or 'ids' with train_ids/test_ids)")
    ):
        table.split_indices("random")


# ---------------------------------------------------------------------------------------- the "in" split's size
@pytest.mark.parametrize("n", [5, 7, 13, 99, 101, 250, 10_370])
@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.25, 0.3, 0.5, 0.7])
def test_sklearn_rounding_is_train_test_split(n: int, fraction: float) -> None:
    try:
        expected = len(train_test_split(np.arange(n), train_size=fraction, random_state=0)[0])
    except ValueError:  # scikit-learn refuses an empty training part: so do we
        with pytest.raises(ValueError, match="leaves an empty part"):
            in_split_train_size(n, fraction, "sklearn")
        return
    assert in_split_train_size(n, fraction, "sklearn") == expected


def test_the_two_roundings_differ_only_above_a_half() -> None:
    assert in_split_train_size(13, 0.2, "round") == 3 and in_split_train_size(13, 0.2, "sklearn") == 2
    assert in_split_train_size(12, 0.2, "round") == 2 == in_split_train_size(12, 0.2, "sklearn")
    # The bundled table (10,370 queries) and MATH-V (3,040) at the paper's 0.2: one split either way.
    assert in_split_train_size(10_370, 0.2, "round") == 2074 == in_split_train_size(10_370, 0.2, "sklearn")
    assert in_split_train_size(3040, 0.2, "round") == 608 == in_split_train_size(3040, 0.2, "sklearn")
    with pytest.raises(ValueError, match="leaves an empty part"):
        in_split_train_size(4, 0.2, "sklearn")  # 0.8 rounds down to 0, as scikit-learn refuses it
    with pytest.raises(ValueError, match="train_rounding must be 'sklearn' or 'round'"):
        in_split_train_size(10, 0.2, "ceil")  # type: ignore[arg-type]


def test_split_rounding_option_reaches_the_permutation() -> None:
    table = make_table(n=13)
    default_train, _ = table.split_indices("in", seed=3)
    sk_train, sk_test = table.split_indices("in", seed=3, train_rounding="sklearn")
    assert default_train.size == 3 and sk_train.size == 2 and sk_test.size == 11
    # The same permutation, cut one query earlier.
    order = np.random.default_rng(3).permutation(13)
    assert sk_train.tolist() == sorted(order[:2].tolist())


# ---------------------------------------------------------------------------------------- texts
def _with_texts(table: RoutingTable, texts: list[str]) -> RoutingTable:
    return RoutingTable(
        correct=table.correct,
        cost=table.cost,
        query_ids=table.query_ids,
        datasets=table.datasets,
        model_names=table.model_names,
        features=dict(table.features),
        meta=table.meta,
        source=table.source,
        texts=texts,
    )


def test_texts_follow_every_selection_and_survive_save(tmp_path) -> None:
    base = make_table(n=5, k=3)
    table = _with_texts(base, [f"question {i}" for i in range(5)])
    assert table.subset([4, 1]).texts.tolist() == ["question 4", "question 1"]
    assert table.select_models(["model2"]).texts.tolist() == table.texts.tolist()
    assert table.with_features({"extra": np.zeros((5, 1))}).texts.tolist() == table.texts.tolist()
    again = RoutingTable.load(table.save(tmp_path / "t"))
    assert again.texts.tolist() == table.texts.tolist()
    assert again.fingerprint() == table.fingerprint()
    assert RoutingTable.load(base.save(tmp_path / "b")).texts is None
    with pytest.raises(TableError, match=re.escape("column 'texts': expected 5 entries")):
        _with_texts(base, ["a", "b"])


def test_texts_are_part_of_the_fingerprint_only_when_present() -> None:
    base = make_table(n=5)
    a = _with_texts(base, ["a", "b", "c", "d", "e"])
    b = _with_texts(base, ["a", "b", "c", "d", "E"])
    assert len({base.fingerprint(), a.fingerprint(), b.fingerprint()}) == 3
    assert base.subset(np.arange(5)).fingerprint() == base.fingerprint()


def test_with_features_adds_and_refuses_to_replace() -> None:
    table = make_table(n=4)
    added = table.with_features({"text_tfidf": np.ones((4, 2))})
    assert set(added.features) == {"text", "image", "text_tfidf"} and set(table.features) == {"text", "image"}
    assert added.features["text_tfidf"].dtype == np.float32
    with pytest.raises(ValueError, match=r"already has feature channel\(s\) \['text'\]"):
        table.with_features({"text": np.ones((4, 2))})
    with pytest.raises(TableError, match="expected 4 rows"):
        table.with_features({"new": np.ones((3, 2))})


# ---------------------------------------------------------------------------------------- source
def test_a_table_without_a_source_name_is_named_in_memory() -> None:
    table = make_table(n=10)
    unnamed = dataclasses.replace(table, source=None)
    assert unnamed.source == "<memory>"
    with pytest.raises(ValueError, match=r"^<memory>: train_ids has 1 id"):
        unnamed.split_indices(train_ids=["nope"], test_ids=["q0"])
    with pytest.raises(TypeError, match="source must be a str"):
        dataclasses.replace(table, source=3)
