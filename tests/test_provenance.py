"""Provenance: every report records the versions, the commit, the command and the machine."""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from _results import hand_result

import mmr_gym
from mmr_gym import provenance as provenance_module
from mmr_gym.provenance import git_commit, provenance, provenance_line
from mmr_gym.report import write_report

SOURCE = Path(provenance_module.__file__).resolve().parent


def test_the_record_names_versions_command_and_machine():
    record = provenance(["/somewhere/else/train.py", "--quick", "--seeds", "0"])
    assert record["mmr_gym"] == mmr_gym.__version__
    assert record["packages"]["numpy"] == metadata.version("numpy")
    assert record["packages"]["stable-baselines3"] == metadata.version("stable-baselines3")
    assert "ray" not in record["packages"] or record["packages"]["ray"] == metadata.version("ray")
    assert record["command"] == "train.py --quick --seeds 0"  # the script by name, no path of this machine
    assert record["machine"].endswith("CPUs") and record["created"].endswith("+00:00")
    json.dumps(record)  # JSON-ready
    line = provenance_line(record)
    assert f"mmr-gym {mmr_gym.__version__}" in line and f"numpy {metadata.version('numpy')}" in line
    assert "`train.py --quick --seeds 0`" in line


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_commit_is_the_checkout_the_package_came_from(tmp_path):
    inside = subprocess.run(
        ["git", "-C", str(SOURCE), "ls-files", "--error-unmatch", "provenance.py"], capture_output=True
    )
    if inside.returncode == 0:  # the tests run from a checkout (as CI's)
        head = subprocess.run(
            ["git", "-C", str(SOURCE), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert git_commit(SOURCE).split("+")[0] == head
    # Another repository (e.g. a venv inside someone's checkout), and no repository at all: no commit.
    other = tmp_path / "other"
    other.mkdir()
    git = ["git", "-C", str(other), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    (other / "notes.txt").write_text("another project\n")
    subprocess.run([*git, "add", "notes.txt"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "theirs"], check=True)
    (other / "provenance.py").write_text("# not ours, and untracked\n")
    assert git_commit(other) is None
    assert git_commit(tmp_path / "missing") is None


def test_write_report_records_provenance(tmp_path):
    files = write_report([hand_result("Random", [0.4, 0.5, 0.6])], tmp_path, context={"seeds": [0]})
    payload = json.loads(files["json"].read_text())
    record = payload["context"]["provenance"]
    assert record["packages"]["numpy"] == metadata.version("numpy")
    assert payload["context"]["seeds"] == [0]
    markdown = files["markdown"].read_text()
    assert f"- provenance: {provenance_line(record)}" in markdown
    # A caller's own record is kept.
    files = write_report([hand_result("Random", [0.4, 0.5, 0.6])], tmp_path, context={"provenance": "given"})
    assert json.loads(files["json"].read_text())["context"]["provenance"] == "given"
    assert "- provenance: given" in files["markdown"].read_text()
