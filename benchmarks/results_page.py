"""Write the docs' results page (``docs/results.md``) from the output files of real runs.

    python benchmarks/results_page.py --collect runs/results   # take a run's files, then write the page
    python benchmarks/results_page.py                          # write the page from docs/results/
    python benchmarks/results_page.py --check                  # exit 1 if the page is not what it writes

No figure of the page is typed by hand: each section embeds the report that ``train.py`` or a
benchmark wrote (its tables, plots and provenance line: versions, commit, machine, date, command),
kept in ``docs/results/<section>/`` beside the page. ``make results`` makes the runs and collects
them; a section whose files are absent from ``--collect`` keeps the files it has. Collected text is
cleaned of the machine's paths (the checkout, the home directory) so the page names none.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: the checkout's root, so that the package `benchmarks` imports
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.env_speed.report import format_markdown
from mmr_gym.scenarios.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "results.md"
DATA = ROOT / "docs" / "results"
# What a machine path looks like once cleaning is done: none may be left.
MACHINE_PATH = re.compile(r"(?<![\w.:/])/(?:work|tmp|root|home|Users|var|opt)/[\w.-]")


@dataclass(frozen=True)
class Section:
    """One section of the page: what made its files and how they become Markdown."""

    name: str  # its folder under docs/results/ and under a --collect directory
    title: str
    intro: str
    files: tuple[str, ...]  # what is collected (the first one must exist for the section to count)
    render: Callable[[Path], str]  # the section's folder -> its Markdown body


def _demoted(markdown: str, folder: str) -> str:
    """A report's Markdown inside a section: no title, headings one level down, images from its folder."""
    lines = markdown.strip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    text = "\n".join("#" + line if line.startswith("## ") else line for line in lines).strip("\n")
    return re.sub(r"\]\(([\w.-]+\.png)\)", rf"](results/{folder}/\1)", text)


def _default_run(folder: Path) -> str:
    return _demoted((folder / "results.md").read_text(encoding="utf-8"), folder.name)


def _bench_env(folder: Path) -> str:
    results = json.loads((folder / "bench_env.json").read_text(encoding="utf-8"))
    return _demoted(format_markdown(results), folder.name)


def _bench_eval(folder: Path) -> str:
    text = _demoted((folder / "bench_eval.md").read_text(encoding="utf-8"), folder.name)
    lines = text.splitlines()  # its last line is the bare provenance line
    return "\n".join([*lines[:-1], f"Provenance: {lines[-1]}"]) if lines[-1].startswith("mmr-gym ") else text


def _scenarios(folder: Path) -> str:
    body = _demoted((folder / "scenarios.md").read_text(encoding="utf-8"), folder.name)
    plots = [f"![{name}: regret over time](results/{folder.name}/timeline-{name}.png)" for name in PRESETS]
    return "\n\n".join([body, *plots])


def _ope(folder: Path) -> str:
    body = _demoted((folder / "ope.md").read_text(encoding="utf-8"), folder.name)
    body = re.sub(r"^(mmr-gym \S+ \(git)", r"Provenance: \1", body, count=1, flags=re.M)
    return body + "\n\n![estimates against the truth](results/ope/ope.png)"


SECTIONS = (
    Section(
        "default",
        "The default run",
        "`make run` (`python train.py`): the default policies, seeds and budget sweep on the bundled "
        "**simulated** table; the run's context below says what it ran. Costs are the simulator's "
        "relative units: do not report these figures as the named models' accuracies or prices.",
        ("results.md", "results.json", "pareto.png", "collapse.png"),
        _default_run,
    ),
    Section(
        "bench_env",
        "Environment speed",
        "`mmr-gym bench --out bench_env.json` (`benchmarks/bench_env.py`): steps per second against "
        "CartPole measured in the same run, and memory ([how it is measured](performance.md)). One "
        "run: ratios move between runs on a shared machine; `--runs 3` repeats it.",
        ("bench_env.json",),
        _bench_env,
    ),
    Section(
        "bench_eval",
        "Evaluation speed",
        "`python benchmarks/bench_eval.py --out DIR`: `evaluate_policy` batched on the vector "
        "environment against the single environment, on `train.py`'s sweep.",
        ("bench_eval.md", "bench_eval.json"),
        _bench_eval,
    ),
    Section(
        "scenarios",
        "A world that changes",
        "`python benchmarks/bench_scenarios.py --out DIR`: every [scenario](scenarios.md) preset, the "
        "static paced router against the agents that adapt, on the bundled simulated table; the "
        "regret after each event against the same world without it.",
        ("scenarios.md", "scenarios.json", *(f"timeline-{name}.png" for name in PRESETS)),
        _scenarios,
    ),
    Section(
        "ope",
        "Off-policy evaluation",
        "`python benchmarks/bench_ope.py --out DIR`: every estimator of [off-policy "
        "evaluation](ope.md) against the truth the table knows, over many logs.",
        ("ope.md", "ope.json", "ope.png"),
        _ope,
    ),
)


def clean(text: str, source_root: Path) -> str:
    """``text`` without the paths of this machine: the checkout's become relative, the home is ``~``."""
    for root, shown in (
        (source_root.parent / "shared", "../shared"),
        (source_root, "."),
        (Path.home(), "~"),
    ):
        text = text.replace(f"{root}/", f"{shown}/").replace(str(root), shown)
    text = re.sub(r"(?<![\w.])\./(?=[\w.-])", "", text)  # ./envs_data/x -> envs_data/x
    left = MACHINE_PATH.search(text)
    if left:
        raise SystemExit(
            f"a path of this machine is left after cleaning: ...{text[left.start() : left.end() + 40]}..."
        )
    return text


def collect(runs: Path, source_root: Path, data: Path = DATA) -> list[str]:
    """Copy each section's files found under ``runs/<section>/`` into ``data/<section>/``."""
    taken = []
    for section in SECTIONS:
        folder = runs / section.name
        if not (folder / section.files[0]).is_file():
            continue
        target = data / section.name
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in section.files:
            source = folder / name
            if source.suffix in (".md", ".json"):
                (target / name).write_text(
                    clean(source.read_text(encoding="utf-8"), source_root), encoding="utf-8"
                )
            else:
                shutil.copyfile(source, target / name)
        taken.append(section.name)
    return taken


def page(data: Path = DATA) -> str:
    """The whole results page, from the sections' files under ``data``."""
    parts = [
        "# Results",
        "",
        "<!-- Written by benchmarks/results_page.py from the files in docs/results/: do not edit by hand. -->",
        "",
        "Each section below embeds the report a run wrote, unchanged but for its headings and image "
        "paths: its tables, its plots and its provenance line (the mmr-gym version and git commit, the "
        "packages that move results, the machine, the date and the command). A seeded run repeats "
        "exactly only for one set of package versions. `make results` makes the runs again and "
        "rewrites this page; the files behind each section are in `docs/results/` of the repository.",
    ]
    for section in SECTIONS:
        folder = data / section.name
        if not (folder / section.files[0]).is_file():
            continue
        parts += ["", f"## {section.title}", "", section.intro, "", section.render(folder)]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--collect", type=Path, default=None, help="a directory with <section>/ outputs to take first"
    )
    parser.add_argument(
        "--source-root",
        type=Path,
        default=Path.cwd(),
        help="the checkout the runs were made in, for cleaning paths (default: the current directory)",
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if docs/results.md differs from what it writes"
    )
    args = parser.parse_args(argv)
    if args.check:
        if PAGE.read_text(encoding="utf-8") != page():
            print(f"{PAGE} is not what {Path(__file__).name} writes from {DATA}: run it", file=sys.stderr)
            return 1
        return 0
    if args.collect is not None:
        taken = collect(args.collect, args.source_root.resolve())
        print(f"collected {', '.join(taken) or 'nothing'} from {args.collect}")
    PAGE.write_text(page(), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
