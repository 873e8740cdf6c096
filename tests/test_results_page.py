"""docs/results.md is what benchmarks/results_page.py writes from the runs' files, with their provenance."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmarks.results_page import DATA, MACHINE_PATH, PAGE, SECTIONS, clean, collect, page

PROVENANCE = re.compile(r"mmr-gym \d+\.\d+\.\d+ \(git [0-9a-f]{7,}(\+dirty)?\), Python \d")


def test_the_page_is_what_the_script_writes_from_the_committed_files():
    assert PAGE.read_text(encoding="utf-8") == page(), "run python benchmarks/results_page.py"


def test_every_section_on_the_page_carries_its_provenance():
    text = PAGE.read_text(encoding="utf-8")
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    titles = [s.splitlines()[0] for s in sections]
    assert "The default run" in titles  # the main job's table is always there
    for section in sections:
        body = section.split("\n", 1)[1]
        assert PROVENANCE.search(body), f"section {section.splitlines()[0]!r} has no provenance line"
    for image in re.findall(r"\]\((results/[^)]+\.png)\)", text):
        assert (PAGE.parent / image).is_file(), image


def test_the_committed_files_name_no_path_of_a_machine():
    for path in DATA.rglob("*"):
        if path.suffix in (".md", ".json"):
            left = MACHINE_PATH.search(path.read_text(encoding="utf-8"))
            assert left is None, f"{path}: {left.group(0)}"


def test_collect_takes_each_sections_files_and_cleans_the_checkouts_paths(tmp_path: Path):
    root = tmp_path / "checkout"
    runs = root / "runs" / "results" / "default"
    runs.mkdir(parents=True)
    report = (
        "# mmr-gym: routing policies\n\n"
        f"- table: RoutingTable(source='{root}/envs_data/mmr-sim-default')\n"
        f"- math-v: {root.parent}/shared/data/math-v\n\n"
        "- provenance: mmr-gym 0.1.0 (git 1234567), Python 3.11.7; `train.py`\n\n"
        "## Comparison with the baselines\n\n![cost-accuracy frontiers](pareto.png)\n"
    )
    (runs / "results.md").write_text(report, encoding="utf-8")
    (runs / "results.json").write_text(f'{{"source": "{root}/envs_data/x"}}', encoding="utf-8")
    for name in ("pareto.png", "collapse.png"):
        (runs / name).write_bytes(b"png")
    data = tmp_path / "data"
    assert collect(root / "runs" / "results", root, data) == ["default"]
    kept = (data / "default" / "results.md").read_text(encoding="utf-8")
    assert "source='envs_data/mmr-sim-default'" in kept and "../shared/data/math-v" in kept
    assert str(tmp_path) not in kept + (data / "default" / "results.json").read_text(encoding="utf-8")
    written = page(data)
    assert "### Comparison with the baselines" in written  # one level below the section
    assert "](results/default/pareto.png)" in written
    assert [s.name for s in SECTIONS if f"## {s.title}" in written] == ["default"]


def test_a_path_left_after_cleaning_stops_the_collection(tmp_path: Path):
    with pytest.raises(SystemExit, match="a path of this machine"):
        clean("read from /tmp/elsewhere/table.csv", tmp_path / "checkout")
