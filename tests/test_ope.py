"""Off-policy evaluation: the estimators against truths known exactly, their warnings and errors,
the log's Parquet round trip, collect_log's determinism, and the issue's bar at a small scale."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from _ope_logs import CORRECT, COST, LOGGER, TRUE_ACCURACY, TRUE_COST, exact_log, hand_log
from _tables import make_table
from scipy import stats

import mmr_gym  # noqa: F401  (registers the environments)
from agents.baselines import BestSinglePolicy, CheapestPolicy
from agents.pacing import PacedPolicy
from agents.stochastic import EpsilonGreedyPolicy, UniformPolicy
from agents.supervised import fit_router
from mmr_gym.errors import LogError
from mmr_gym.ope import (
    PropensityWarning,
    SmallSampleWarning,
    SupportWarning,
    collect_log,
    compare,
    estimate,
    read_log,
    target_probabilities,
)
from mmr_gym.policy import Policy


def _quiet(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimate(*args, **kwargs)


# --------------------------------------------------------------------------------- exact truths
@pytest.mark.parametrize("method", ["ips", "snips", "dr"])
def test_unbiased_estimators_return_the_truth_on_the_expectation_shaped_log(method):
    log, target = exact_log()
    wrong_model = (np.full((8, 3), 0.5), np.full((8, 3), 7.0))  # DR must not need a good model
    result = _quiet(log, target, method, reward_model=wrong_model, bootstrap_unit="decision")
    assert result.accuracy == pytest.approx(TRUE_ACCURACY, abs=1e-12)
    assert result.cost == pytest.approx(TRUE_COST, abs=1e-12)
    assert result.estimand == "logged contexts" and result.n_logged == 8


def test_dm_is_exact_with_the_true_model_and_off_with_a_wrong_one():
    log, target = exact_log()
    context = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    exact = _quiet(
        log, target, "dm", reward_model=(CORRECT[context], COST[context]), bootstrap_unit="decision"
    )
    assert (exact.accuracy, exact.cost) == pytest.approx((TRUE_ACCURACY, TRUE_COST), abs=1e-12)
    assert exact.ess == 8
    wrong = _quiet(
        log, target, "dm", reward_model=(np.full((8, 3), 0.5), COST[context]), bootstrap_unit="decision"
    )
    assert wrong.accuracy == pytest.approx(0.5)


def test_closed_form_figures_on_a_small_log():
    # Four decisions; target one-hot on model 1 except the last decision (uniform over 3 models).
    log = hand_log(
        context=[0, 1, 2, 3],
        action=[1, 1, 0, 2],
        propensity=[0.5, 0.2, 0.6, 0.25],
        correct=[1.0, 0.0, 1.0, 1.0],
        cost=[2.0, 4.0, 1.0, 3.0],
        k=3,
    )
    target = np.array([[0, 1, 0], [0, 1, 0], [0, 1, 0], [1 / 3, 1 / 3, 1 / 3]])
    w = np.array([1 / 0.5, 1 / 0.2, 0.0, (1 / 3) / 0.25])
    y = np.array([1.0, 0.0, 1.0, 1.0])
    c = np.array([2.0, 4.0, 1.0, 3.0])
    ips = _quiet(log, target, "ips", bootstrap_unit="decision")
    snips = _quiet(log, target, "snips", bootstrap_unit="decision")
    assert ips.accuracy == pytest.approx((w * y).sum() / 4) and ips.cost == pytest.approx((w * c).sum() / 4)
    assert snips.accuracy == pytest.approx((w * y).sum() / w.sum())
    assert snips.cost == pytest.approx((w * c).sum() / w.sum())
    assert ips.ess == pytest.approx(w.sum() ** 2 / (w**2).sum()) and ips.n_used == 3
    perf = np.full((4, 3), 0.25)
    dr = _quiet(log, target, "dr", reward_model=(perf, np.zeros((4, 3))), bootstrap_unit="decision")
    assert dr.accuracy == pytest.approx(np.mean(0.25 + w * (y - 0.25)))


def test_the_interval_is_the_bootstraps_and_agrees_with_the_normal_one_on_a_large_log():
    rng = np.random.default_rng(0)
    n, k = 4000, 4
    action = rng.integers(0, k, n)
    correct = (rng.random(n) < np.array([0.3, 0.5, 0.7, 0.9])[action]).astype(float)
    log = hand_log(np.zeros(n, dtype=int), action, np.full(n, 0.25), correct, np.ones(n), k)
    target = np.tile([0.1, 0.2, 0.3, 0.4], (n, 1))
    result = estimate(log, target, "ips", bootstrap_unit="decision", n_resamples=2000)
    terms = target[np.arange(n), action] / 0.25 * correct
    half = stats.norm.ppf(0.975) * terms.std(ddof=1) / np.sqrt(n)
    low, high = result.accuracy_ci
    assert low < result.accuracy < high
    assert (low, high) == pytest.approx((terms.mean() - half, terms.mean() + half), abs=0.1 * half)
    # The same seed gives the same interval; another seed another (it is a bootstrap).
    again = estimate(log, target, "ips", bootstrap_unit="decision", n_resamples=2000)
    other = estimate(log, target, "ips", bootstrap_unit="decision", n_resamples=2000, seed=1)
    assert again == result and other.accuracy_ci != result.accuracy_ci


def test_ips_and_snips_agree_with_vw_estimators():
    pytest.importorskip(
        "estimators.bandits.ips", reason="vw-estimators is optional: pip install vw-estimators"
    )
    from estimators.bandits import gaussian, ips, snips

    rng = np.random.default_rng(1)
    n, k = 3000, 3
    context = rng.integers(0, 5, n)
    behaviour = rng.dirichlet(np.ones(k), size=5)[context]
    action = np.array([rng.choice(k, p=p) for p in behaviour])
    correct = rng.random(n).round(2)
    target = rng.dirichlet(np.ones(k), size=5)[context]
    log = hand_log(context, action, behaviour[np.arange(n), action], correct, np.ones(n), k)
    ours = {
        m: estimate(log, target, m, bootstrap_unit="decision", n_resamples=4000) for m in ("ips", "snips")
    }
    theirs = {"ips": ips.Estimator(), "snips": snips.Estimator()}
    interval = gaussian.Interval()
    for i in range(n):
        args = (log.propensity[i], correct[i], target[i, action[i]])
        for estimator in (*theirs.values(), interval):
            estimator.add_example(*args)
    assert ours["ips"].accuracy == pytest.approx(theirs["ips"].get(), rel=1e-12)
    assert ours["snips"].accuracy == pytest.approx(theirs["snips"].get(), rel=1e-12)
    low, high = interval.get(0.05)
    half = (high - low) / 2
    assert ours["ips"].accuracy_ci == pytest.approx((low, high), abs=0.1 * half)


# ------------------------------------------------------------------------- warnings and errors
def test_near_zero_propensities_warn_with_the_decision():
    log = hand_log([0, 1, 2, 3], [0, 1, 0, 1], [0.5, 0.5, 0.5, 1e-4], [1, 0, 1, 1], [1, 1, 1, 1], k=2)
    target = np.tile([0.0, 1.0], (4, 1))
    with pytest.warns(PropensityWarning, match=r"below 0.001 .*row 3: episode 3, step 0"):
        result = estimate(log, target, "ips", bootstrap_unit="decision")
    assert any("propensity below" in w for w in result.warnings)
    # A tiny propensity on a decision the target disagrees with does not matter.
    with warnings.catch_warnings():
        warnings.simplefilter("error", PropensityWarning)
        estimate(log, np.tile([1.0, 0.0], (4, 1)), "ips", bootstrap_unit="decision", min_ess=0)


def test_support_warnings_name_the_models_the_logger_could_not_call():
    # With the logger's whole distribution: model 2 had probability 0 in context 1.
    log, target = exact_log()
    probs = LOGGER.copy()
    probs[1] = [0.5, 0.5, 0.0]
    context = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    action = np.array([0, 0, 1, 2, 0, 1, 0, 1])
    log = hand_log(
        context,
        action,
        probs[context, action],
        CORRECT[context, action],
        COST[context, action],
        3,
        behaviour_probs=probs[context],
    )
    with pytest.warns(SupportWarning, match=r"50.00% of its probability .*\['m2'\]"):
        estimate(log, target, "snips", bootstrap_unit="decision", min_ess=0)
    # Without it: the models never logged at all.
    action = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    plain = hand_log(context, action, np.full(8, 0.5), CORRECT[context, action], COST[context, action], 3)
    with pytest.warns(SupportWarning, match=r"never called \(\['m2'\]\)"):
        estimate(plain, target, "ips", bootstrap_unit="decision", min_ess=0)
    # DM needs no overlap: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", SupportWarning)
        estimate(
            log, target, "dm", reward_model=(np.zeros((8, 3)), np.zeros((8, 3))), bootstrap_unit="decision"
        )


def test_small_logs_warn_or_fail_clearly():
    log, target = exact_log()
    with pytest.warns(SmallSampleWarning, match="effective sample of"):
        estimate(log, target, "ips", bootstrap_unit="decision")
    with pytest.raises(ValueError, match="1 decision.* at least 2"):
        _quiet(log.select([0]), target[:1], "ips", bootstrap_unit="decision")
    one_episode = hand_log([0, 1], [0, 1], [0.5, 0.5], [1, 0], [1, 1], 2, episode=[0, 0])
    with pytest.raises(ValueError, match=r"1 episode\(s\) .*bootstrap_unit='decision'"):
        _quiet(one_episode, np.full((2, 2), 0.5), "ips")
    # No overlap at all: IPS and SNIPS have nothing to estimate from.
    with pytest.raises(ValueError, match="never calls the model the logger called"):
        _quiet(log, np.eye(3)[(log.action + 1) % 3], "snips")


def test_bad_arguments_are_named():
    log, target = exact_log()
    with pytest.raises(ValueError, match="unknown method 'mips'"):
        estimate(log, target, "mips")
    with pytest.raises(ValueError, match="needs a reward_model"):
        estimate(log, target, "dr")
    with pytest.raises(ValueError, match=r"must be two arrays \(8, 3\)"):
        estimate(log, target, "dm", reward_model=(np.zeros((8, 2)), np.zeros((8, 2))))
    with pytest.raises(ValueError, match=r"row 1: .* not a distribution"):
        estimate(log, np.vstack([target[:1], [[0.5, 0.6, 0.0]], target[2:]]), "ips")
    with pytest.raises(ValueError, match="unknown bootstrap_unit"):
        estimate(log, target, "ips", bootstrap_unit="query")


def test_the_log_refuses_bad_rows_by_column_and_row():
    def build(**change):
        args = dict(
            context=[0, 1], action=[0, 1], propensity=[0.5, 0.5], correct=[1.0, 0.0], cost=[1.0, 2.0], k=2
        )
        return hand_log(**{**args, **change})

    with pytest.raises(LogError, match=r"column 'propensity', row 1 \(episode 1, step 0\): propensity 0.0"):
        build(propensity=[0.5, 0.0])
    with pytest.raises(LogError, match=r"column 'correct', row 0 .*not in \[0, 1\]"):
        build(correct=[1.5, 0.0])
    with pytest.raises(LogError, match=r"column 'cost', row 1"):
        build(cost=[1.0, -1.0])
    with pytest.raises(LogError, match=r"column 'action', row 1 .*masked"):
        build(mask=np.array([[True, True], [True, False]]))
    with pytest.raises(LogError, match=r"column 'behaviour_probs', row 0 .*differs from 'propensity'"):
        build(behaviour_probs=[[0.4, 0.6], [0.5, 0.5]])
    with pytest.raises(LogError, match=r"column 'action', row 0 .*outside \[0, 2\)"):
        build(action=[2, 1])
    with pytest.raises(LogError, match="meta has no 'c_ref'"):
        DecisionLogWithout("c_ref")


def DecisionLogWithout(key):  # noqa: N802  (reads as the constructor it calls)
    log = hand_log([0, 1], [0, 1], [0.5, 0.5], [1.0, 0.0], [1.0, 2.0], 2)
    meta = {k: v for k, v in log.meta.items() if k != key}
    return type(log)(**{**_fields(log), "meta": meta})


def _fields(log):
    names = (
        "episode",
        "step",
        "query_id",
        "dataset",
        "observations",
        "action_mask",
        "budget_remaining",
        "budget_total",
        "action",
        "propensity",
        "correct",
        "cost",
        "behaviour_probs",
        "source",
    )
    return {name: getattr(log, name) for name in names}


# ------------------------------------------------------------------ collect_log, Parquet, seeds
@pytest.fixture(scope="module")
def small_env():
    return gym.make(
        "MMRRouting-v0",
        dataset=make_table(n=300, k=4, seed=5),
        split="test",
        episode_length=10,
        budget_ratio=None,
    )


def _same_log(a, b) -> None:
    for name, value in _fields(a).items():
        if name in ("source",):
            continue
        if name == "observations":
            assert value.keys() == b.observations.keys()
            for key in value:
                np.testing.assert_array_equal(value[key], b.observations[key])
        elif value is None:
            assert b.behaviour_probs is None
        else:
            np.testing.assert_array_equal(value, getattr(b, name), err_msg=name)
    assert a.meta == b.meta


def test_collect_log_is_deterministic_and_round_trips_through_parquet(small_env, tmp_path):
    log = collect_log(small_env, UniformPolicy(seed=3), 57, seed=11)
    assert len(log) == 57 and log.n_episodes == 6 and log.step.max() == 9
    _same_log(log, collect_log(small_env, UniformPolicy(seed=3), 57, seed=11))
    other = collect_log(small_env, UniformPolicy(seed=3), 57, seed=12)
    assert not np.array_equal(other.action, log.action)
    # What was logged is what the table says.
    table = small_env.unwrapped.ctx.table
    rows = np.array([np.flatnonzero(table.query_ids == q)[0] for q in log.query_id])
    np.testing.assert_array_equal(log.correct, table.correct[rows, log.action])
    np.testing.assert_allclose(log.cost, table.cost[rows, log.action])
    np.testing.assert_array_equal(log.observations["query"], small_env.unwrapped.ctx.query_obs[rows])
    np.testing.assert_allclose(log.propensity, 0.25)
    path = log.to_parquet(tmp_path / "logs" / "uniform.parquet")
    back = read_log(path)
    _same_log(log, back)
    assert back.source == str(path)
    target = target_probabilities(log, BestSinglePolicy(), small_env)
    from_file, from_memory = _quiet(back, target, "snips").to_dict(), _quiet(log, target, "snips").to_dict()
    assert {k: v for k, v in from_file.items() if k != "warnings"} == {
        k: v for k, v in from_memory.items() if k != "warnings"
    }


def test_read_log_names_the_file_and_column(tmp_path, small_env):
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = collect_log(small_env, UniformPolicy(), 20, seed=0)
    path = log.to_parquet(tmp_path / "log.parquet")
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["propensity"]), tmp_path / "no_propensity.parquet")
    with pytest.raises(LogError, match=r"no_propensity.parquet, column 'propensity': missing"):
        read_log(tmp_path / "no_propensity.parquet")
    broken = table.set_column(table.column_names.index("cost"), "cost", pa.array([-1.0] + [1.0] * 19))
    pq.write_table(broken, tmp_path / "negative.parquet")
    with pytest.raises(LogError, match=r"negative.parquet, column 'cost', row 0"):
        read_log(tmp_path / "negative.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "other.parquet")
    with pytest.raises(LogError, match="not written by DecisionLog.to_parquet"):
        read_log(tmp_path / "other.parquet")


def test_collect_log_refuses_policies_that_hide_or_misstate_their_propensities(small_env):
    with pytest.raises(TypeError, match="does not state its propensities"):
        collect_log(small_env, BestSinglePolicy(), 5)

    class Masked(UniformPolicy):
        def action_probabilities(self, obs, info):
            return np.full(4, 0.25)

    budgeted = gym.make(
        "MMRRouting-v0",
        dataset=make_table(n=300, k=4, seed=5),
        split="test",
        episode_length=10,
        budget_ratio=0.1,
    )
    with pytest.raises(ValueError, match=r"episode 0, step \d+: .*masked"):
        collect_log(budgeted, Masked(), 50)
    flat = gym.make("MMRRoutingFlat-v0", dataset=make_table(n=300, k=4, seed=5), episode_length=10)
    with pytest.raises(ValueError, match="Dict observation"):
        collect_log(flat, UniformPolicy(), 5)


def test_targets_are_one_hot_with_the_environments_fallback(small_env):
    log = collect_log(small_env, UniformPolicy(), 30, seed=0)

    class AlwaysMasked(Policy):
        def act(self, obs, info):
            return 3

    mask = log.action_mask.copy()
    mask[:, 3] = False
    mask[np.arange(30), log.action] = True
    fields = _fields(log)
    fields.update(action_mask=mask, behaviour_probs=mask / mask.sum(1, keepdims=True))
    fields["propensity"] = fields["behaviour_probs"][np.arange(30), log.action]
    masked_log = type(log)(**fields, meta=log.meta)
    probs = target_probabilities(masked_log, AlwaysMasked(), None)
    costs = log.observations["model_costs"]
    for row in range(30):
        expected = 3 if mask[row, 3] else int(np.argmin(np.where(mask[row], costs[row], np.inf)))
        assert probs[row, expected] == 1.0 and probs[row].sum() == 1.0
    cheapest = target_probabilities(log, CheapestPolicy(), small_env)
    np.testing.assert_array_equal(cheapest.argmax(1), np.argmin(costs, axis=1))


def test_a_paced_target_is_judged_on_the_logged_budget_state():
    table = make_table(n=300, k=4, seed=5)
    env = gym.make("MMRRouting-v0", dataset=table, split="test", episode_length=10, budget_ratio=0.3)
    log = collect_log(env, UniformPolicy(), 40, seed=0)
    seen = []

    class Recorder(PacedPolicy):
        def begin_episode(self, env):
            seen.append(env.budget)
            super().begin_episode(env)

    target_probabilities(log, Recorder(fit_router("linear", env.unwrapped)), env)
    assert seen == pytest.approx(list(log.budget_total[log.step == 0]))
    unbudgeted = gym.make("MMRRouting-v0", dataset=table, split="test", episode_length=10, budget_ratio=None)
    with pytest.raises(ValueError, match="budget"):
        target_probabilities(collect_log(unbudgeted, UniformPolicy(), 20), BestSinglePolicy(), env)
    with pytest.raises(
        ValueError, match=r"BestSinglePolicy prepares each episode in begin_episode\(env\): pass env"
    ):
        target_probabilities(log, BestSinglePolicy(), None)
    longer = gym.make("MMRRouting-v0", dataset=table, split="test", episode_length=20, budget_ratio=0.3)
    with pytest.raises(ValueError, match="10 queries long, env's 20"):
        target_probabilities(log, BestSinglePolicy(), longer)


# ------------------------------------------------------------------ the bar, at a small scale
def test_snips_and_dr_find_each_targets_accuracy_and_cover_it(small_env):
    """The issue's bar, scaled down: uniform logger, 20 logs of 1,000 decisions on a small table."""
    env = small_env.unwrapped
    ctx = env.ctx
    split = ctx.split_indices
    router = fit_router("linear", env)
    targets = {
        "BestSingle": BestSinglePolicy,
        "Cheapest": CheapestPolicy,
        "Paced-Linear": lambda: PacedPolicy(router),
    }
    # The truth from the table alone: each target's choice on every query of the split.
    best = np.lexsort(
        (
            ctx.table.subset(ctx.train_indices).model_mean_cost(),
            -ctx.table.subset(ctx.train_indices).model_accuracy(),
        )
    )[0]
    predicted = router.predict(ctx.query_obs[split])[0]
    truth = {
        "BestSingle": ctx.table.correct[split, best].mean(),
        "Cheapest": ctx.table.correct[split, ctx.cost_estimate[split].argmin(1)].mean(),
        "Paced-Linear": ctx.table.correct[split, predicted.argmax(1)].mean(),
    }
    errors = {(t, m): [] for t in targets for m in ("snips", "dr")}
    covered = {key: 0 for key in errors}
    for seed in range(20):
        log = collect_log(small_env, UniformPolicy(seed=seed), 1000, seed=seed)
        model = router.predict(log.observations["query"])
        for name, make in targets.items():
            probs = target_probabilities(log, make(), small_env)
            for method in ("snips", "dr"):
                result = _quiet(log, probs, method, reward_model=model, n_resamples=1000, seed=seed)
                errors[name, method].append(result.accuracy - truth[name])
                covered[name, method] += result.accuracy_ci[0] <= truth[name] <= result.accuracy_ci[1]
    for key, errs in errors.items():
        # Unbiased: the mean error is within 3 standard errors of 0, and small.
        assert abs(np.mean(errs)) < max(3 * np.std(errs) / np.sqrt(len(errs)), 0.005), key
        assert np.sqrt(np.mean(np.square(errs))) < 0.05, key
        assert covered[key] >= 16, (key, covered[key])  # 95% intervals: at least 80% of 20


# ------------------------------------------------------------------------------------ compare
def test_compare_gives_the_exact_difference_and_a_paired_interval():
    log, target = exact_log()
    uniform = np.full((8, 3), 1 / 3)
    result = compare(log, target, uniform, "ips", bootstrap_unit="decision", min_ess=0)
    uniform_truth = 0.5 * CORRECT[0].mean() + 0.5 * CORRECT[1].mean()
    assert result.accuracy_difference == pytest.approx(TRUE_ACCURACY - uniform_truth, abs=1e-12)
    assert result.candidate.accuracy == pytest.approx(TRUE_ACCURACY, abs=1e-12)
    assert result.verdict() in {"better", "worse", "undecided"}
    with pytest.raises(ValueError, match="replay accepts different decisions"):
        compare(log, target, uniform, "replay")


def test_pairing_cancels_what_two_routers_share(small_env):
    log = collect_log(small_env, UniformPolicy(), 2000, seed=4)
    best = target_probabilities(log, BestSinglePolicy(), small_env)
    # A candidate that follows BestSingle except on a tenth of the queries.
    candidate = best.copy()
    candidate[np.char.endswith(log.query_id, "0")] = np.eye(4)[0]
    result = _quiet_compare(log, candidate, best, "ips")
    width = np.diff(result.accuracy_difference_ci)[0]
    assert width < 0.6 * min(
        np.diff(result.candidate.accuracy_ci)[0], np.diff(result.baseline.accuracy_ci)[0]
    )
    assert result.accuracy_difference == pytest.approx(result.candidate.accuracy - result.baseline.accuracy)
    same = _quiet_compare(log, best, best, "dr", reward_model=(np.zeros((2000, 4)), np.zeros((2000, 4))))
    assert same.accuracy_difference == 0 and same.accuracy_difference_ci == (0.0, 0.0)
    assert same.verdict() == "undecided"


@pytest.mark.parametrize("method", ["dm", "dr"])
def test_compare_asks_the_reward_model_once(method):
    """Both routers are judged on the same logged queries: one prediction serves both, and the
    comparison is the one made from the predictions themselves."""
    log, target = exact_log()
    uniform = np.full((8, 3), 1 / 3)
    context = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    predictions = (CORRECT[context] + 0.05, COST[context] * 0.9)

    class CountingModel:
        calls = 0

        def predict(self, queries):
            self.calls += 1
            return predictions

    model = CountingModel()
    options = dict(bootstrap_unit="decision", min_ess=0, n_resamples=200)
    result = _quiet_compare(log, target, uniform, method, reward_model=model, **options)
    assert model.calls == 1
    assert result == _quiet_compare(log, target, uniform, method, reward_model=predictions, **options)


def _quiet_compare(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compare(*args, **kwargs)


def test_logged_actions_follow_the_stated_distribution(small_env):
    policy = EpsilonGreedyPolicy(BestSinglePolicy(), epsilon=0.4, seed=0)
    log = collect_log(small_env, policy, 3000, seed=2)
    np.testing.assert_allclose(log.propensity, log.behaviour_probs[np.arange(3000), log.action])
    # Without a budget BestSingle calls one model: it should get 0.6 + 0.4 / 4 of the calls.
    favourite = np.bincount(log.action, minlength=4).argmax()
    expected = log.behaviour_probs[:, favourite].mean()
    assert expected == pytest.approx(0.7)
    observed = np.mean(log.action == favourite)
    assert observed == pytest.approx(expected, abs=4 * np.sqrt(0.21 / 3000))
