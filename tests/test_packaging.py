"""The wheel built from this checkout holds every module and the bundled tables, and installed from it
the bundled table loads (the tables sit in ``envs_data/`` at the top of the checkout and install as
``mmr_gym/envs_data``: pyproject's ``package-dir``).

Marked ``wheel``: it builds the wheel with pip (offline: ``--no-build-isolation --no-index``, with
this environment's setuptools, which the dev extra brings to >= 77), about 10 s in all;
``pytest -m "not wheel"`` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mmr_gym.datasets import bundled_table_names, load_table

pytestmark = pytest.mark.wheel

ROOT = Path(__file__).resolve().parents[1]
# What the build reads: the packages and package-dir of pyproject.toml, and the README (the long
# description). Built from a copy: pip writes build/ and *.egg-info into the source tree.
BUILD_SOURCES = ("pyproject.toml", "README.md", "mmr_gym", "agents", "envs_data")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")


def _source_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file() and "__pycache__" not in path.parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(
            f"pyproject.toml needs setuptools >= 77 to build, this environment has {setuptools.__version__}: "
            "pip install -e '.[dev]'"
        )
    source = tmp_path_factory.mktemp("source")
    for name in BUILD_SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=_JUNK)
        else:
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    built = subprocess.run(
        [*command, "--no-index", "--quiet", "--wheel-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("mmr_gym-*.whl")
    return path


def test_wheel_holds_every_module_and_the_bundled_tables_unchanged(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        modules = [
            path.relative_to(ROOT).as_posix()
            for package in ("mmr_gym", "agents")
            for path in _source_files(ROOT / package)
            if path.suffix == ".py"
        ]
        assert "mmr_gym/sim/generator.py" in modules  # subpackages are walked
        missing = sorted(set(modules) - names)
        assert not missing, f"not in the wheel: add their packages to pyproject.toml's packages: {missing}"
        tables = _source_files(ROOT / "envs_data")
        assert ROOT / "envs_data" / "mmr-sim-default" / "outcomes.parquet" in tables
        for path in tables:
            installed = f"mmr_gym/envs_data/{path.relative_to(ROOT / 'envs_data').as_posix()}"
            assert installed in names
            assert archive.read(installed) == path.read_bytes(), installed
    # The layout's top-level folders are not packages of their own in the wheel.
    assert not [name for name in names if name.split("/")[0] in ("envs_data", "benchmarks", "tests")]


def test_bundled_table_loads_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # what pip does with a pure-Python wheel, less the metadata
    script = (
        "import json, gymnasium as gym, mmr_gym\n"
        "from mmr_gym.datasets import bundled_table_names, load_table\n"
        "gym.make('MMRRouting-v0').reset(seed=0)\n"
        "print(json.dumps({'package': mmr_gym.__file__, 'tables': bundled_table_names(),"
        " 'fingerprint': load_table().fingerprint()}))\n"
    )
    elsewhere = tmp_path / "elsewhere"  # not the checkout: its mmr_gym must not be importable
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    ran = subprocess.run(
        [sys.executable, "-c", script], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr
    installed = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(installed["package"]).resolve() == (site / "mmr_gym" / "__init__.py").resolve()
    assert installed["tables"] == bundled_table_names() == ["mmr-sim-default"]
    assert installed["fingerprint"] == load_table().fingerprint()
