"""mmr_gym.progress: bars where someone watches, a few plain lines in a file, every unit counted."""

from __future__ import annotations

import io
import re

import pytest
from _tables import make_table

from agents.baselines import BASELINES
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import evaluate_policy
from mmr_gym.progress import LineProgress, Stages, interactive, progress

CONTROL = re.compile(r"[\r\x1b\x08]")  # carriage return, escape sequences, backspace


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_file_gets_a_few_plain_lines():
    out = io.StringIO()
    bar = progress(total=10_000, desc="train DQN (seed 3)", unit="steps", file=out, min_interval=0.0)
    assert isinstance(bar, LineProgress)
    for _ in range(10_000):
        bar.update(1)
    bar.close()
    bar.close()  # closing twice writes nothing more
    lines = out.getvalue().splitlines()
    assert not CONTROL.search(out.getvalue())
    # started, 25%, 50%, 75%, done: never a line per update
    assert len(lines) == 5, lines
    assert all(line.startswith("train DQN (seed 3): ") for line in lines)
    assert lines[0].endswith("10,000 steps") and "about" in lines[2] and "left" in lines[2]
    assert lines[-1].startswith("train DQN (seed 3): done, 10,000 steps in ")


def test_lines_are_spaced_in_time():
    out = io.StringIO()
    with progress(total=100, desc="evaluate X", unit="queries", file=out, min_interval=3600.0) as bar:
        for _ in range(100):
            bar.update(1)
    assert len(out.getvalue().splitlines()) == 2  # started, done: no quarter came an hour after the last line


def test_a_terminal_gets_a_tqdm_bar_and_disabled_gets_nothing():
    terminal = Terminal()
    assert interactive(terminal) and not interactive(io.StringIO())
    bar = progress(total=10, desc="train PPO (seed 0)", unit="steps", file=terminal)
    bar.update(10)
    bar.close()
    assert "\r" in terminal.getvalue() and "train PPO (seed 0)" in terminal.getvalue()
    quiet = io.StringIO()
    bar = progress(total=10, desc="x", file=quiet, enabled=False)
    bar.update(10)
    bar.close()
    assert quiet.getvalue() == ""


def test_stages_name_the_step_and_its_phase_and_promise_no_time():
    out = io.StringIO()
    stages = Stages(3, "policy", file=out)
    stages.start("random")
    stages.phase("evaluating (seeds 0, 1)")
    stages.start("rl-dqn")
    stages.phase("seed 1 (2/3): training")
    stages.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and not CONTROL.search(out.getvalue())
    assert re.fullmatch(r"\[policy 1/3, [^\]]+\] random: evaluating \(seeds 0, 1\)", lines[0]), lines[0]
    assert re.fullmatch(r"\[policy 2/3, [^\]]+\] rl-dqn: seed 1 \(2/3\): training", lines[1]), lines[1]
    assert "left" not in out.getvalue()


def test_stages_on_a_terminal_draw_one_bar():
    terminal = Terminal()
    stages = Stages(2, "policy", file=terminal)
    stages.start("random")
    stages.phase("evaluating")
    stages.start("rl-dqn")
    stages.phase("seed 0 (1/1): training")
    stages.close()
    text = terminal.getvalue()
    assert "policy 1/2: random, evaluating" in text and "policy 2/2: rl-dqn, seed 0 (1/1): training" in text
    assert "policy 2/2: finished" in text and "<" not in text  # tqdm's "elapsed<left": no time left


@pytest.mark.parametrize("vectorized", [True, False])
def test_evaluation_counts_every_query_of_every_stream(capsys, vectorized):
    """Queries answered, plus those an early end of the episode left: the bar ends at its total."""
    env = MMRRoutingEnv(make_table(n=300, k=4, seed=1), split="test", episode_length=20)
    evaluate_policy(
        BASELINES["best-single"],  # the dearest model: tight budgets end its episodes early
        env,
        budget_ratios=(0.05, 1.0),
        seeds=(0, 1),
        max_queries=100,
        vectorized=vectorized,
    )
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert not CONTROL.search(err)
    assert lines[0] == "evaluate BestSingle (seeds 0, 1; 2 budgets): 400 queries", lines
    assert lines[-1].startswith("evaluate BestSingle (seeds 0, 1; 2 budgets): done, 400 queries in "), lines
