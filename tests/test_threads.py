"""Torch threads: the environments warn once when torch would train on several, torch_threads sets and restores."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
import torch

import mmr_gym  # noqa: F401  (registers the environments)
from agents.rl import torch_threads
from mmr_gym import threads
from mmr_gym.threads import TorchThreadsWarning


@pytest.fixture
def two_threads(monkeypatch):
    """torch on two threads, no OMP_NUM_THREADS, and a process that has not warned yet."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(threads, "_warned", False)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def _threads_warnings(make) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make()
    return [str(w.message) for w in caught if issubclass(w.category, TorchThreadsWarning)]


def test_a_users_own_script_is_told_once(two_threads):
    first = _threads_warnings(lambda: gym.make("MMRRouting-v0"))
    assert len(first) == 1 and "torch uses 2 CPU threads" in first[0]
    assert "torch.set_num_threads(1)" in first[0] and "OMP_NUM_THREADS=1" in first[0]
    assert _threads_warnings(lambda: gym.make_vec("MMRRouting-v0", num_envs=2)) == []  # once per process


def test_the_vector_env_warns_too(two_threads):
    assert len(_threads_warnings(lambda: gym.make_vec("MMRRouting-v0", num_envs=2))) == 1


def test_silent_on_one_thread_or_a_chosen_count(two_threads, monkeypatch):
    with torch_threads(1):
        assert _threads_warnings(lambda: gym.make("MMRRouting-v0")) == []
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a choice, not torch's default
    assert _threads_warnings(lambda: gym.make("MMRRouting-v0")) == []


def test_torch_threads_sets_the_count_and_restores_the_callers():
    before = torch.get_num_threads()
    with torch_threads(1) as inside:
        assert inside == torch.get_num_threads() == 1
    with torch_threads(None) as inside:
        assert inside == before
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("restored on error too")
    assert torch.get_num_threads() == before
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="n must be a positive int or None"), torch_threads(bad):
            pass
