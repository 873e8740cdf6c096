"""A saved RoutingTable: every file checked against its SHA-256 on loading; damage is named, never loaded."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow
import pytest
from _concurrency import run_concurrently
from _tables import make_table

from mmr_gym import datasets
from mmr_gym.datasets import load_table
from mmr_gym.errors import TableError, UnverifiedTableWarning
from mmr_gym.files import CHECKSUM_FILE, format_checksums, parse_checksums
from mmr_gym.table import RoutingTable
from mmr_gym.table_files import FEATURES_FILE, META_FILE, OUTCOMES_FILE, replace_table_dir

BUNDLED = Path(__file__).resolve().parents[1] / "envs_data" / "mmr-sim-default"
ADVICE = r"re-create the table with the command or loader that made it.*or restore the file from a copy"


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return make_table(n=60, k=3).save(tmp_path / "table")


def flip_byte(path: Path, position: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 if position is None else position] ^= 0x01
    path.write_bytes(bytes(data))


def rewrite(directory: Path, name: str, data: bytes) -> None:
    """Replace a file and record its new SHA-256: a consistent directory whose content is wrong."""
    (directory / name).write_bytes(data)
    digests = parse_checksums((directory / CHECKSUM_FILE).read_text())
    digests[name] = hashlib.sha256(data).hexdigest()
    (directory / CHECKSUM_FILE).write_text(format_checksums(digests))


def make_legacy(directory: Path) -> None:
    """Turn a saved table into what an mmr-gym older than checksums wrote."""
    header = json.loads((directory / META_FILE).read_text())
    del header["checksum_file"]
    (directory / META_FILE).write_text(json.dumps(header, indent=2, sort_keys=True) + "\n")
    (directory / CHECKSUM_FILE).unlink()


# ---------------------------------------------------------------------------------------- saving
def test_save_writes_a_sha256sum_list_of_every_file(saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        [OUTCOMES_FILE, FEATURES_FILE, META_FILE, CHECKSUM_FILE]
    )
    digests = parse_checksums((saved / CHECKSUM_FILE).read_text())
    assert set(digests) == {OUTCOMES_FILE, FEATURES_FILE, META_FILE}
    for name, digest in digests.items():
        assert hashlib.sha256((saved / name).read_bytes()).hexdigest() == digest
    # The sha256sum format: '<hex>  <name>' lines, sorted by name.
    lines = (saved / CHECKSUM_FILE).read_text().splitlines()
    assert lines == sorted(lines, key=lambda line: line.split("  ")[1])
    assert all(len(line.split("  ")[0]) == 64 for line in lines)


def test_a_saved_table_round_trips(saved: Path) -> None:
    assert RoutingTable.load(saved).fingerprint() == make_table(n=60, k=3).fingerprint()


def test_saving_again_leaves_no_temporary_files(saved: Path) -> None:
    make_table(n=30, k=2, seed=1).save(saved)
    assert len(list(saved.iterdir())) == 4
    assert RoutingTable.load(saved).n_queries == 30


# ---------------------------------------------------------------------------------------- damage
@pytest.mark.parametrize("name", [OUTCOMES_FILE, FEATURES_FILE, META_FILE])
def test_a_flipped_byte_is_named_with_what_to_do(saved: Path, name: str) -> None:
    flip_byte(saved / name)
    with pytest.raises(
        TableError, match=rf"{name}: damaged or changed since the table was saved.*{ADVICE}"
    ) as err:
        RoutingTable.load(saved)
    assert err.value.source == str(saved / name)


@pytest.mark.parametrize("name", [OUTCOMES_FILE, FEATURES_FILE])
def test_a_truncated_file_is_named(saved: Path, name: str) -> None:
    data = (saved / name).read_bytes()
    (saved / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(TableError, match=rf"{name}: damaged or changed"):
        RoutingTable.load(saved)


@pytest.mark.parametrize(
    ("name", "library_error"),
    [(OUTCOMES_FILE, pyarrow.ArrowInvalid), (FEATURES_FILE, zipfile.BadZipFile)],
)
def test_a_truncated_file_of_an_unverified_table_is_our_error_chained_to_the_librarys(
    saved: Path, name: str, library_error: type
) -> None:
    make_legacy(saved)
    data = (saved / name).read_bytes()
    (saved / name).write_bytes(data[: len(data) // 2])
    with (
        pytest.warns(UnverifiedTableWarning),
        pytest.raises(TableError, match=rf"{name}: not a readable") as err,
    ):
        RoutingTable.load(saved)
    assert err.value.source == str(saved / name)
    assert isinstance(err.value.__cause__, library_error)


@pytest.mark.parametrize("legacy", [False, True], ids=["verified", "unverified"])
def test_a_missing_features_file_is_an_error_not_a_table_without_features(saved: Path, legacy: bool) -> None:
    if legacy:
        make_legacy(saved)
    (saved / FEATURES_FILE).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedTableWarning)
        with pytest.raises(TableError, match=rf"{FEATURES_FILE}: missing.*{ADVICE}"):
            RoutingTable.load(saved)


def test_a_missing_meta_json_is_named_not_reported_as_no_csv(saved: Path) -> None:
    (saved / META_FILE).unlink()
    for load in (RoutingTable.load, load_table):
        with pytest.raises(
            TableError, match=r"meta\.json: missing, but the directory holds a saved table's other"
        ):
            load(saved)


def test_a_missing_checksum_list_is_refused_when_meta_json_names_it(saved: Path) -> None:
    (saved / CHECKSUM_FILE).unlink()
    with pytest.raises(
        TableError, match=rf"{CHECKSUM_FILE}: missing, but meta\.json says the table was saved"
    ):
        RoutingTable.load(saved)


def test_a_malformed_checksum_list_is_named(saved: Path) -> None:
    (saved / CHECKSUM_FILE).write_text("not a checksum\n")
    with pytest.raises(TableError, match=rf"{CHECKSUM_FILE}: not a checksum list \(line 1: expected"):
        RoutingTable.load(saved)


def test_a_checksum_list_without_a_table_file_is_refused(saved: Path) -> None:
    digests = parse_checksums((saved / CHECKSUM_FILE).read_text())
    del digests[FEATURES_FILE]
    (saved / CHECKSUM_FILE).write_text(format_checksums(digests))
    with pytest.raises(TableError, match=rf"{CHECKSUM_FILE}: does not list {FEATURES_FILE}"):
        RoutingTable.load(saved)


# ---------------------------------------------------------------------------------------- tables without checksums
def test_a_table_saved_before_checksums_loads_with_a_warning_and_saving_adds_them(saved: Path) -> None:
    make_legacy(saved)
    with pytest.warns(UnverifiedTableWarning, match=rf"{saved}: no {CHECKSUM_FILE} .*load and save it again"):
        table = RoutingTable.load(saved)
    assert table.fingerprint() == make_table(n=60, k=3).fingerprint()
    table.save(saved)
    assert (saved / CHECKSUM_FILE).is_file()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnverifiedTableWarning)
        RoutingTable.load(saved)


# ---------------------------------------------------------------------------------------- structure
@pytest.mark.parametrize(
    ("header", "message"),
    [
        ([1, 2, 3], r"meta\.json: expected a JSON object .*got a list"),
        ("table", r"meta\.json: expected a JSON object .*got a str"),
        ({"format_version": 1, "model_names": "model0", "meta": {}}, r"column 'model_names'.*non-empty list"),
        ({"format_version": 1, "model_names": ["model0"], "meta": []}, r"column 'meta'.*JSON object"),
        (
            {"format_version": 2, "model_names": ["model0"], "meta": {}},
            r"column 'format_version'.*expected 1, got 2",
        ),
    ],
)
def test_a_meta_json_of_the_wrong_shape_is_named(saved: Path, header: object, message: str) -> None:
    rewrite(saved, META_FILE, json.dumps(header).encode())
    with pytest.raises(TableError, match=message):
        RoutingTable.load(saved)


def test_a_model_dropped_from_meta_json_is_refused(saved: Path) -> None:
    header = json.loads((saved / META_FILE).read_text())
    header["model_names"] = ["model0", "model2"]  # model1's columns are still in the parquet
    rewrite(saved, META_FILE, json.dumps(header).encode())
    with pytest.raises(
        TableError,
        match=r"meta\.json, column 'model_names': lists \['model0', 'model2'\], but outcomes\.parquet has "
        r"columns for the models \['model0', 'model1', 'model2'\].*missing from meta\.json: \['model1'\]",
    ):
        RoutingTable.load(saved)


def test_a_model_dropped_from_the_parquet_is_refused(saved: Path) -> None:
    frame = pd.read_parquet(saved / OUTCOMES_FILE).drop(columns=["model1_correct", "model1_cost"])
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    rewrite(saved, OUTCOMES_FILE, buffer.getvalue())
    with pytest.raises(TableError, match=r"missing from outcomes\.parquet: \['model1'\]"):
        RoutingTable.load(saved)


def test_models_in_another_order_are_refused(saved: Path) -> None:
    header = json.loads((saved / META_FILE).read_text())
    header["model_names"] = ["model1", "model0", "model2"]
    rewrite(saved, META_FILE, json.dumps(header).encode())
    with pytest.raises(TableError, match="do not belong together"):
        RoutingTable.load(saved)


def test_an_unexpected_parquet_column_is_refused(saved: Path) -> None:
    frame = pd.read_parquet(saved / OUTCOMES_FILE).assign(note="x")
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    rewrite(saved, OUTCOMES_FILE, buffer.getvalue())
    with pytest.raises(TableError, match=r"outcomes\.parquet, column 'note': unexpected column"):
        RoutingTable.load(saved)


def test_a_features_file_that_is_not_an_archive_is_named(saved: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((60, 2), dtype=np.float32))
    rewrite(saved, FEATURES_FILE, buffer.getvalue())
    with pytest.raises(
        TableError, match=r"features\.npz: expected an npz archive of channels, got a single array"
    ):
        RoutingTable.load(saved)
    rewrite(saved, FEATURES_FILE, b"hello")
    with pytest.raises(TableError, match=r"features\.npz: not a readable npz archive"):
        RoutingTable.load(saved)


def test_feature_rows_that_do_not_match_the_queries_are_named(saved: Path) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, text=np.zeros((59, 4), dtype=np.float32))
    rewrite(saved, FEATURES_FILE, buffer.getvalue())
    with pytest.raises(TableError, match=r"features\['text'\].*expected 60 rows"):
        RoutingTable.load(saved)


# ---------------------------------------------------------------------------------------- bundled and cached tables
def test_the_bundled_table_has_checksums_that_match() -> None:
    digests = parse_checksums((BUNDLED / CHECKSUM_FILE).read_text())
    assert set(digests) == {OUTCOMES_FILE, FEATURES_FILE, META_FILE}
    for name, digest in digests.items():
        assert hashlib.sha256((BUNDLED / name).read_bytes()).hexdigest() == digest, name
    assert json.loads((BUNDLED / META_FILE).read_text())["checksum_file"] == CHECKSUM_FILE


def test_a_damaged_bundled_table_says_how_to_get_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "envs_data" / "mmr-sim-default"
    shutil.copytree(BUNDLED, copy)
    (copy / FEATURES_FILE).unlink()
    monkeypatch.setattr(datasets, "_bundled_root", lambda: tmp_path / "envs_data")
    with pytest.raises(
        TableError,
        match=r"features\.npz: missing.*bundled table 'mmr-sim-default': reinstall mmr-gym, or regenerate",
    ):
        load_table()


def test_replace_table_dir_swaps_a_whole_table(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "t"
    replace_table_dir(make_table(n=20, k=2), target)
    flip_byte(target / OUTCOMES_FILE)  # a damaged entry is replaced whole
    replace_table_dir(make_table(n=30, k=3, seed=1), target)
    assert RoutingTable.load(target).n_queries == 30
    assert sorted(p.name for p in target.parent.iterdir()) == ["t"]  # no temporary or old directory left


def test_meta_that_is_not_json_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    table = make_table(n=10)
    bad = RoutingTable(
        table.correct, table.cost, table.query_ids, table.datasets, table.model_names, meta={"x": object()}
    )
    with pytest.raises(TypeError, match=r"its meta must hold JSON values only"):
        bad.save(tmp_path / "t")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize(
    ("field", "value", "row"),
    [("query_ids", None, 3), ("query_ids", float("nan"), 3), ("query_ids", " ", 3), ("datasets", None, 3)],
)
def test_missing_ids_and_dataset_names_are_refused(field: str, value: object, row: int) -> None:
    table = make_table(n=10)
    values = {"query_ids": list(table.query_ids), "datasets": list(table.datasets)}
    values[field][row] = value
    with pytest.raises(TableError, match=rf"column '{field}', row {row}: missing value"):
        RoutingTable(table.correct, table.cost, values["query_ids"], values["datasets"], table.model_names)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"train_fraction": "0.2"}, TypeError, r"train_fraction must be a number, got '0\.2' \(str\)"),
        ({"train_fraction": True}, TypeError, r"train_fraction must be a number"),
        ({"train_fraction": 1.0}, ValueError, r"train_fraction must be a finite number > 0 and < 1"),
        ({"seed": 1.5}, TypeError, r"seed must be an integer"),
        (
            {"mode": "out", "test_datasets": "alpha"},
            TypeError,
            r"test_datasets must be a list of dataset names",
        ),
    ],
)
def test_split_arguments_are_checked(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        make_table(n=20).split(**kwargs)


# ---------------------------------------------------------------------------------------- concurrent processes
TABLES = [make_table(n=200, k=4, seed=seed) for seed in range(2)]
FINGERPRINTS = {table.fingerprint() for table in TABLES}


def test_readers_see_whole_tables_while_a_cache_entry_is_swapped(tmp_path: Path) -> None:
    target = tmp_path / "tables" / "t"
    replace_table_dir(TABLES[0], target)

    def write(i: int) -> None:
        replace_table_dir(TABLES[i % 2], target)

    def read() -> None:
        assert RoutingTable.load(target).fingerprint() in FINGERPRINTS

    results = run_concurrently(tmp_path / "sync", write, read, rounds=30)
    assert len(results) == 3 and all(r["reads"] >= 10 for r in results), results
    assert [r["failures"] for r in results] == [0, 0, 0], results


def test_readers_see_whole_tables_while_another_process_saves_in_place(tmp_path: Path) -> None:
    target = TABLES[0].save(tmp_path / "t")

    def write(i: int) -> None:
        TABLES[i % 2].save(target)
        time.sleep(0.15)  # saves now and then, as a person regenerating a table

    def read() -> None:
        assert RoutingTable.load(target).fingerprint() in FINGERPRINTS

    results = run_concurrently(tmp_path / "sync", write, read, rounds=12)
    assert len(results) == 3 and all(r["reads"] >= 10 for r in results), results
    assert [r["failures"] for r in results] == [0, 0, 0], results
