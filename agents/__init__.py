"""Policies that act in the mmr-gym environments: baselines, supervised routers, budget pacing,
contextual bandits, SB3 and RLlib agents, and stochastic loggers. They depend on ``mmr_gym``; the
library never imports them."""
