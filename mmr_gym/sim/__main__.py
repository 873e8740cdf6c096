"""``python -m mmr_gym.sim``: see :mod:`mmr_gym.sim.cli`."""

from mmr_gym.sim.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
