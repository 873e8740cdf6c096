"""The main job: train routing agents on MMRRouting-v0, compare them with baselines and the oracles, report.

    python train.py                      # bundled simulated table, the default policies
    python train.py --quick              # a small sweep and short training, for smoke tests
    python train.py --policies random,oracle,rl-ppo,rl-dqn --timesteps 300000 --seeds 0,1
    python train.py --dataset path/to/table --env-kwargs '{"modality": "text"}'

Every learning agent is fitted on the training split, once per seed, and scored on the test split
(the evaluation streams of that seed); the spread over seeds covers both the training and the
stream draws. RL agents train budget-conditioned (a budget ratio per episode from
``--train-budget-range``) on 75% of the training split and are checkpoint-selected on the other 25%
(``agents.rl.validation_split``); nothing is ever chosen on the test split.

Writes into the run directory: results.md / results.csv / points.csv / results.json (one record
per policy: name, nAUC, Ps, QNC, regret, overrun_rate, points...), pareto.png, the saved RL agents
(``agents/<policy>/seed<k>/model.zip``, reloadable with ``agents.rl.load_agent``) and their
TensorBoard logs (``tensorboard --logdir <run-dir>/agents``); prints the table. Also, reloadable
with ``agents.persistence.load_scorer``: each fitted supervised router (``agents/<router>/seed<k>/``)
and each bandit learner as it stood after answering the test streams of one budget (it learns
online; one learner per budget and seed: ``agents/<bandit>[-warm]/seed<k>/budget<ratio>/``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mmr_gym  # noqa: F401  (registers the environments)
from agents.adaptive import ADAPTIVE_BANDITS
from agents.bandits import BANDITS, paced_bandit
from agents.baselines import BASELINES
from agents.pacing import PacedPolicy
from agents.persistence import save_scorer
from agents.rl import (
    ALGOS,
    DISPLAY_NAMES,
    TRAIN_BUDGET_RATIOS,
    VEC_ENV_BACKENDS,
    SB3Policy,
    torch_threads,
    train_agent,
    training_env_kwargs,
    validation_split,
)
from agents.scenario_agents import SCENARIO_AGENTS, Deployment, models_at_start, rl_router_policy
from agents.supervised import ROUTERS, fit_router
from mmr_gym.env import MMRRoutingEnv
from mmr_gym.evaluate import (
    DEFAULT_BUDGET_RATIOS,
    PolicyResult,
    evaluate_policy,
    evaluation_rows,
    merge_seed_results,
    per_query_oracle_result,
    threshold_result,
)
from mmr_gym.policy import Policy
from mmr_gym.progress import Stages
from mmr_gym.report import comparison_markdown, markdown_table, write_report

# --------------------------------------------------------------------------------- the run
QUICK_BUDGET_RATIOS = (0.05, 0.2, 0.5, 1.0, 1.5)
QUICK_MAX_QUERIES = 1000
# The hyperparameters were chosen at 150k steps, where validation returns flatten (agents/rl.py); it
# keeps the default run well inside 15 minutes on two slow cores.
DEFAULT_TIMESTEPS = 150_000
QUICK_TIMESTEPS = 20_000


@dataclass
class Run:
    """What every agent of one run shares: the environments' kwargs, the sweep, where files go."""

    run_dir: Path
    env_kwargs: dict[str, Any]  # shared by the training and the test environments
    test_env: MMRRoutingEnv
    train_env: MMRRoutingEnv  # the training split, for routers fitted with full information
    budget_ratios: list[float]
    seeds: list[int]
    max_queries: int | None
    timesteps: int
    train_budget_range: tuple[float, float]
    budget_sampling: str
    rl_validation: str
    vec_env: str
    progress: bool
    stages: Stages  # which policy runs, which seed, what it does (no time left: see Stages)

    def evaluate(
        self,
        policy: Policy | Callable[[], Policy],
        seeds: Sequence[int],
        on_point: Callable[[Policy, float, int], None] | None = None,
    ) -> PolicyResult:
        """``policy`` over the budget sweep on the test split, streams of ``seeds`` (``on_point``: see evaluate_policy)."""
        return evaluate_policy(
            policy,
            self.test_env,
            budget_ratios=self.budget_ratios,
            seeds=seeds,
            max_queries=self.max_queries,
            progress=self.progress,
            on_point=on_point,
        )


# An agent's fit for one seed returns, per reported policy name, either a Policy factory (scored on
# budgeted streams of that seed by the runner) or a PolicyResult it scored itself (threshold protocol;
# bandits, which save their learners after scoring).
Scorable = Callable[[], Policy] | PolicyResult
FitFn = Callable[[Run, int], dict[str, Scorable]]


@dataclass(frozen=True)
class AgentSpec:
    """One learning entry of ``--policies``: a summary, how to fit it for one seed, and what the
    progress calls that fit (``"fitting"``, ``"training"``, ...)."""

    summary: str
    fit: FitFn
    fitting: str = "fitting"


def _router_agent(router: str) -> FitFn:
    """A supervised router, scored by MMR-Bench's threshold protocol and as a budget-paced policy."""

    def fit(run: Run, seed: int) -> dict[str, Scorable]:
        model = fit_router(router, run.train_env, seed=seed)
        metadata = {"seed": seed, "env_kwargs": {**run.env_kwargs, "split": "train"}}
        save_scorer(model, run.run_dir / "agents" / router / f"seed{seed}", metadata=metadata)
        rows = evaluation_rows(run.test_env, run.max_queries)
        perf, cost = model.predict(run.test_env.ctx.query_obs[rows])
        threshold = threshold_result(
            f"{model.name} (threshold)", run.test_env, perf, cost, max_queries=run.max_queries
        )

        def paced() -> Policy:
            # A fresh PacedPolicy per (budget, seed): its price of budget adapts within a sweep point.
            return PacedPolicy(model)

        return {paced().name: paced, threshold.name: threshold}

    return fit


def _bandit_agent(bandit: str, warm_start: bool = False) -> FitFn:
    """A contextual bandit inside budget pacing, learning online (bandit feedback) on the test streams.

    A fresh learner per (budget, seed), as the evaluator builds policies; it learns across that
    sweep point's episodes. Cold by default; ``warm_start`` first fits it on the training split.
    Each learner is saved once it has answered its streams, under
    ``agents/<bandit>[-warm]/seed<k>/budget<ratio>/``.
    """
    directory_name = f"{bandit}-warm" if warm_start else bandit

    def fit(run: Run, seed: int) -> dict[str, Scorable]:
        def make() -> Policy:
            return paced_bandit(bandit, run.train_env, warm_start=warm_start, seed=seed)

        def save(policy: PacedPolicy, ratio: float, point_seed: int) -> None:  # make() built it
            metadata = {
                "seed": point_seed,
                "budget_ratio": ratio,
                "warm_start": warm_start,
                "env_kwargs": {**run.env_kwargs, "split": "train"},  # what the learner was sized for
                "answered": f"the test streams of seed {point_seed} at budget ratio {ratio}",
            }
            directory = run.run_dir / "agents" / directory_name / f"seed{point_seed}" / f"budget{ratio}"
            save_scorer(policy.scorer, directory, metadata=metadata)

        # Scored here, not by the runner, so that each learner is saved once it has answered its streams.
        result = run.evaluate(make, [seed], on_point=save)
        return {result.name: result}

    return fit


def _rl_agent(algo: str) -> FitFn:
    """An SB3 agent trained budget-conditioned, saved under ``agents/rl-<algo>/seed<k>``."""

    def fit(run: Run, seed: int) -> dict[str, Scorable]:
        train_kwargs = training_env_kwargs({**run.env_kwargs, "budget_ratio": run.train_budget_range})
        if run.rl_validation == "holdout":
            fit_kwargs, val_kwargs = validation_split(train_kwargs, fraction=0.25, seed=seed)
        else:  # the training queries themselves, on other streams and budget draws
            fit_kwargs, val_kwargs = train_kwargs, train_kwargs
        model = train_agent(
            algo,
            fit_kwargs,
            total_timesteps=run.timesteps,
            seed=seed,
            log_dir=run.run_dir / "agents" / f"rl-{algo}" / f"seed{seed}",
            eval_env_kwargs=val_kwargs,
            eval_freq=max(run.timesteps // 8, 1_000),
            n_eval_episodes=20,
            budget_sampling=run.budget_sampling,
            vec_env=run.vec_env,
            progress=run.progress,
        )
        policy = SB3Policy(model)  # stateless between episodes: one instance serves every stream
        return {policy.name: lambda: policy}

    return fit


def _scenario_agent(name: str) -> FitFn:
    """An agent of :data:`agents.scenario_agents.SCENARIO_AGENTS` (or ``rl-router``: MaskablePPO on the
    observation plus LinearMF's predictions and recent statistics, trained on worlds drawn from the
    presets built for the training split), from LinearMF fitted on the training split and told only
    the models that exist at the start of the test streams' timeline."""

    def fit(run: Run, seed: int) -> dict[str, Scorable]:
        router = fit_router("linear-mf", run.train_env, seed=seed)
        env = run.test_env
        known = models_at_start(env.model_names, env.config.world(env.ctx))
        deployment = Deployment(run.train_env, router, known, seed)
        if name == "rl-router":
            from agents.rl.adaptive import train_router_agent

            train_kwargs = training_env_kwargs({**run.env_kwargs, "budget_ratio": run.train_budget_range})
            model = train_router_agent(train_kwargs, router, total_timesteps=run.timesteps, seed=seed)
            make = rl_router_policy(model, deployment)
        else:
            make = SCENARIO_AGENTS[name][1](deployment)  # a fresh policy per (budget, seed)
        return {make().name: make}

    return fit


AGENTS: dict[str, AgentSpec] = {
    **{
        name: AgentSpec(f"{cls.name} router: threshold protocol and budget-paced", _router_agent(name))
        for name, cls in ROUTERS.items()
    },
    **{
        name: AgentSpec(
            f"{cls.name} bandit with budget pacing, cold start",
            _bandit_agent(name),
            "learning online on the test streams",
        )
        for name, cls in BANDITS.items()
    },
    **{
        f"{name}-warm": AgentSpec(
            f"{cls.name} bandit with budget pacing, warm-started on the training split",
            _bandit_agent(name, warm_start=True),
            "warm start, then learning online on the test streams",
        )
        for name, cls in BANDITS.items()
    },
    **{
        f"rl-{algo}": AgentSpec(
            f"{DISPLAY_NAMES[algo]} (stable-baselines3), budget-conditioned", _rl_agent(algo), "training"
        )
        for algo in ALGOS
    },
    "static-linear-mf": AgentSpec(SCENARIO_AGENTS["static"][0], _scenario_agent("static")),
    **{
        name: AgentSpec(SCENARIO_AGENTS[name][0], _scenario_agent(name))
        for name in ("adaptive-pacing", *ADAPTIVE_BANDITS)
    },
    "rl-router": AgentSpec(
        "MaskablePPO on the observation plus LinearMF's predictions and recent statistics",
        _scenario_agent("rl-router"),
    ),
}
"""Learning agents by ``--policies`` name. Adding one is one entry: a summary and ``fit(run, seed)``."""

DEFAULT_POLICIES = (
    "random",
    "cheapest",
    "best-single",
    "oracle",
    "auto",  # the router family and settings chosen by cross-validation on the training split
    "linucb",
    "rl-maskable-ppo",
    "rl-dqn",  # the best RL agent on the validation split (see agents/rl.py)
)


def run_agent(run: Run, name: str) -> list[PolicyResult]:
    """Fit ``AGENTS[name]`` once per seed, score each fit on that seed's streams, merge over seeds."""
    by_policy: dict[str, list[PolicyResult]] = {}
    for number, seed in enumerate(run.seeds, 1):
        which = f"seed {seed} ({number}/{len(run.seeds)})"
        run.stages.phase(f"{which}: {AGENTS[name].fitting}")
        for policy_name, scorable in AGENTS[name].fit(run, seed).items():
            if not isinstance(scorable, PolicyResult):
                run.stages.phase(f"{which}: evaluating {policy_name}")
                scorable = run.evaluate(scorable, [seed])
            by_policy.setdefault(policy_name, []).append(scorable)
    return [merge_seed_results(results) for results in by_policy.values()]


# --------------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    choices = sorted(BASELINES) + sorted(AGENTS)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", default=None, help="bundled name or path (default: the bundled simulated table)"
    )
    parser.add_argument(
        "--scenario",
        default=None,
        help="run the evaluation streams (and RL training) in a changing world: a preset of mmr_gym.scenarios "
        "(price-cut, outage, new-model, regression, drift, combined, ...)",
    )
    parser.add_argument(
        "--features",
        default=None,
        help="comma-separated encoders for a CSV, call log or MATH-V: minilm, image-stats, clip:<dir>, tfidf",
    )
    parser.add_argument(
        "--policies", default=",".join(DEFAULT_POLICIES), help=f"comma-separated, from {choices}"
    )
    parser.add_argument(
        "--budget-ratios",
        default=",".join(map(str, DEFAULT_BUDGET_RATIOS)),
        help="evaluation budgets as multiples of episode_length * c_ref",
    )
    parser.add_argument(
        "--seeds", default="0,1,2", help="comma-separated seeds: one fit and one set of test streams each"
    )
    parser.add_argument(
        "--episode-length", type=int, default=100, help="queries per episode (one budget window; default 100)"
    )
    parser.add_argument(
        "--env-kwargs", default="{}", help='extra MMRRouting-v0 kwargs as JSON, e.g. \'{"modality": "text"}\''
    )
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help=f"RL training steps per seed (default {DEFAULT_TIMESTEPS:,}; quick {QUICK_TIMESTEPS:,})",
    )
    parser.add_argument(
        "--train-budget-range",
        default=",".join(map(str, TRAIN_BUDGET_RATIOS)),
        help="low,high: the budget ratio range RL agents train on (drawn per episode)",
    )
    parser.add_argument(
        "--budget-sampling",
        choices=("log-uniform", "uniform"),
        default="log-uniform",
        help="how RL training draws the budget ratio from that range (log-uniform: more tight budgets)",
    )
    parser.add_argument(
        "--rl-validation",
        choices=("holdout", "train"),
        default="holdout",
        help="RL checkpoint selection on 25%% of the training split held out (default), or on the training queries",
    )
    parser.add_argument(
        "--vec-env",
        choices=VEC_ENV_BACKENDS,
        default="native",
        help="SB3 VecEnv for RL training: the native vector env behind the SB3 adapter (default), or a "
        "DummyVecEnv of single envs",
    )
    parser.add_argument("--run-dir", default=None, help="output directory (default: runs/<timestamp>)")
    parser.add_argument(
        "--quick", action="store_true", help="few budgets, one seed, 1,000 test queries, short RL training"
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch CPU threads for the whole run (default 1: several times faster for these small "
        "networks, more so on busy cores; 0 leaves torch's own choice)",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress at all (without it: bars on a terminal, a few plain lines per phase when "
        "the output goes to a file or a pipe)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    budget_ratios = [float(x) for x in args.budget_ratios.split(",")]
    seeds = [int(x) for x in args.seeds.split(",")]
    max_queries = None
    timesteps = args.timesteps or DEFAULT_TIMESTEPS
    if args.quick:
        budget_ratios, seeds, max_queries = list(QUICK_BUDGET_RATIOS), seeds[:1], QUICK_MAX_QUERIES
        timesteps = args.timesteps or QUICK_TIMESTEPS
    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = sorted(set(names) - set(BASELINES) - set(AGENTS))
    if unknown:
        print(
            f"unknown policies {unknown}; choose from {sorted(BASELINES) + sorted(AGENTS)}", file=sys.stderr
        )
        return 2
    low, high = (float(x) for x in args.train_budget_range.split(","))

    env_kwargs: dict[str, Any] = {"dataset": args.dataset, "episode_length": args.episode_length}
    if args.features:
        env_kwargs["features"] = [f.strip() for f in args.features.split(",") if f.strip()]
    if args.scenario:
        env_kwargs["scenario"] = args.scenario
    env_kwargs.update(json.loads(args.env_kwargs))
    for key in ("split", "budget_ratio"):  # chosen per use: test/train split, sweep or training range
        env_kwargs.pop(key, None)
    run = Run(
        run_dir=Path(args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")),
        env_kwargs=env_kwargs,
        test_env=MMRRoutingEnv(**env_kwargs, split="test"),
        train_env=MMRRoutingEnv(**env_kwargs, split="train"),
        budget_ratios=budget_ratios,
        seeds=seeds,
        max_queries=max_queries,
        timesteps=timesteps,
        train_budget_range=(low, high),
        budget_sampling=args.budget_sampling,
        rl_validation=args.rl_validation,
        vec_env=args.vec_env,
        progress=not args.no_progress,
        stages=Stages(len(names), "policy", enabled=not args.no_progress),
    )
    env = run.test_env
    table = env.ctx.table
    print(f"table: {table!r}")
    print(
        f"test split: {env.ctx.split_indices.size} queries; c_ref = {env.c_ref:.4g} {env.cost_unit} "
        f"(reference model {env.model_names[env.ctx.reference_model]!r}, cost source: "
        f"{table.meta.get('cost_source', 'unspecified')})"
    )

    results: list[PolicyResult] = []
    timings: dict[str, float] = {}
    with torch_threads(args.torch_threads or None):
        for name in names:
            run.stages.start(name)
            t0 = time.perf_counter()
            if name in BASELINES:
                run.stages.phase(f"evaluating (seeds {', '.join(map(str, seeds))})")
                results.append(run.evaluate(BASELINES[name], seeds))
            else:
                results.extend(run_agent(run, name))
            timings[name] = round(time.perf_counter() - t0, 1)
        run.stages.close()
    results.append(per_query_oracle_result(env, max_queries=max_queries))

    context = {
        "table": repr(table),
        "scenario": args.scenario or "none (the world does not change)",
        "cost unit": f"{env.cost_unit} ({table.meta.get('cost_source', 'unspecified')})",
        "split": f"test ({env.ctx.split_indices.size} queries"
        f"{'' if max_queries is None else f', a fixed random {max_queries} of them'})",
        "budget ratios": budget_ratios,
        "seeds": seeds,
        "episode length": args.episode_length,
        "c_ref": env.c_ref,
        "RL": f"{timesteps:,} steps per seed, budget ratio per episode in [{low:g}, {high:g}] ({args.budget_sampling}), "
        f"checkpoint selected on {'25% of the training split held out' if args.rl_validation == 'holdout' else 'the training split'}",
        "seconds per policy": timings,
        "torch threads": args.torch_threads or "torch's default",
    }
    simulated = table.meta.get("cost_source") == "simulated"
    files = write_report(
        results,
        run.run_dir,
        title=f"mmr-gym: routing policies on MMRRouting-v0{' (simulated data)' if simulated else ''}",
        context=context,
        figure_note="Outcome table simulated by mmr-gym's generator, not measured on real models."
        if simulated
        else f"Costs: {table.meta.get('cost_source', 'unspecified')}.",
        price_sources=table.meta.get("price_sources"),  # where per-token prices come from (MATH-V)
    )
    print()
    print(markdown_table(results))
    print()
    print(comparison_markdown(results))
    print()
    print(f"wrote {', '.join(str(p) for p in files.values())} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
