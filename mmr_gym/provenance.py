"""Where a result came from: the code's version and commit, the packages, the command and the machine.

A seeded run repeats exactly only with the same package versions (a release of the RL library can
move an agent's figures), so every report records them beside its numbers.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

#: The distributions whose versions a result depends on (those installed are recorded).
PACKAGES = (
    "gymnasium",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "torch",
    "stable-baselines3",
    "sb3-contrib",
    "transformers",
    "ray",
)
_SOURCE = Path(__file__).resolve().parent


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """A JSON-ready record of how this process was run.

    Args:
        argv: the command line (default ``sys.argv``); the script is recorded by its file name only.

    Returns:
        ``created`` (UTC, ISO 8601), ``mmr_gym`` (version), ``git`` (the commit of the checkout the
        package was imported from, ``+dirty`` when tracked files differ from it; None outside a git
        checkout, e.g. for a wheel), ``python``, ``packages`` (name -> version), ``command`` and
        ``machine``.
    """
    from mmr_gym import __version__

    argv = sys.argv if argv is None else argv
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    command = " ".join([Path(argv[0]).name, *argv[1:]]) if argv else ""
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mmr_gym": __version__,
        "git": git_commit(_SOURCE),
        "python": platform.python_version(),
        "packages": packages,
        "command": command,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
    }


def git_commit(directory: Path) -> str | None:
    """The short commit of the git checkout holding ``directory`` (``+dirty`` if tracked files changed)."""
    try:
        # This file tracked there: a wheel installed in a venv inside some other checkout is not it.
        _git(directory, "ls-files", "--error-unmatch", Path(__file__).name)
        commit = _git(directory, "rev-parse", "--short", "HEAD")
        changed = _git(directory, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None  # no git, or not our checkout
    return commit + ("+dirty" if changed else "")


def provenance_line(record: dict[str, Any]) -> str:
    """One line for a markdown report: versions, commit, machine, date and command."""
    git = f" (git {record['git']})" if record.get("git") else ""
    versions = ", ".join(f"{name} {version}" for name, version in record["packages"].items())
    return (
        f"mmr-gym {record['mmr_gym']}{git}, Python {record['python']}, {versions}; "
        f"{record['machine']}; {record['created']}; `{record['command']}`"
    )


def _git(directory: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=True
    )
    return done.stdout.strip()
