"""``python -m mmr_gym.sim``: simulate a preset, save the table, print its calibration and statistics."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from mmr_gym.sim.generator import simulate
from mmr_gym.sim.preset import DEFAULT_CONFIG_NAME, PRESETS
from mmr_gym.sim.summary import dataset_summary, format_calibration, format_summary

_DESCRIPTION = "A seeded generative model of MMR-Bench-style outcome tables (SIMULATED data)."


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmr_gym.sim --out DIR [--seed N] [--config NAME]``: simulate, save, print tables."""
    parser = argparse.ArgumentParser(prog="python -m mmr_gym.sim", description=_DESCRIPTION)
    parser.add_argument("--out", required=True, type=Path, help="directory to write the table to")
    parser.add_argument("--seed", type=int, default=0, help="seed of np.random.default_rng (default 0)")
    parser.add_argument("--config", default=DEFAULT_CONFIG_NAME, choices=sorted(PRESETS), help="preset name")
    args = parser.parse_args(argv)

    table = simulate(PRESETS[args.config](), seed=args.seed)
    table.save(args.out)
    print(f"wrote {table!r} to {args.out}")
    print(f"fingerprint: {table.fingerprint()}\n")
    print("Calibration (accuracies; expected = over the Bernoulli draws given the latents):\n")
    print(format_calibration(table) + "\n")
    print(f"Measured per-dataset statistics (cost in {table.cost_unit}):\n")
    print(format_summary(dataset_summary(table)))
    return 0
