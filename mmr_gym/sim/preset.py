"""The preset behind the bundled table ``mmr-sim-default``: ten models, seven datasets, their targets.

The model roster (prices, verbosity, abilities) and the datasets (sizes of the public splits the
reference repository evaluates, prompt lengths, skill demands, and the MMR-Bench Table 2 accuracy
targets the calibration hits). :data:`PRESETS` names every preset ``python -m mmr_gym.sim`` knows.
"""

from __future__ import annotations

from collections.abc import Callable

from mmr_gym.sim.config import SKILLS, DatasetSpec, ModelSpec, SimConfig

DEFAULT_CONFIG_NAME = "mmr-sim-default"

# Model roster: the eight models the paper names plus GPT-5-mini and Qwen2.5-VL-32B (plausible
# 2025 candidates: a cheap reasoning API model and the mid-size open Qwen). Four mean costs are the
# reference repo's anchors; the others are placed between them by public list prices and typical
# verbosity (reasoning models emit many output tokens). Abilities are judgement calls: the open
# InternVL3 and Qwen2.5-VL models read text in images well for their price (InternVL3-78B leads
# OCRBench, as in its published scores), GPT-5 reasons best, Gemini 2.5 Pro is the strongest in
# perception, Claude 3.7 Sonnet is weaker at fine visual detail.
# Columns: name, mean cost [relative units], output/input price ratio, mean output tokens,
# strength [logit], skills (ocr, percep, know, symb, diag, multi) [logit per unit demand].
_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("GPT-5", 10.0, 8.0, 1500.0, 1.6, (0.2, 0.1, 0.5, 0.8, 0.5, 0.8)),
    ModelSpec("Gemini-2.5-Pro", 6.0, 8.0, 1200.0, 1.5, (0.4, 0.5, 0.5, 0.6, 0.5, 0.6)),
    ModelSpec("Claude-3.7-Sonnet", 2.5, 5.0, 350.0, 0.9, (0.2, -0.1, 0.5, 0.4, 0.2, 0.5)),
    ModelSpec("GPT-5-mini", 1.5, 8.0, 1000.0, 1.1, (0.1, 0.0, 0.2, 0.7, 0.3, 0.6)),
    ModelSpec("Gemini-2.5-Flash", 0.9, 8.3, 800.0, 1.0, (0.4, 0.3, 0.2, 0.4, 0.3, 0.3)),
    ModelSpec("Qwen2.5-VL-72B", 0.75, 3.0, 300.0, 0.9, (1.0, 0.4, 0.2, 0.0, 0.3, -0.1)),
    ModelSpec("InternVL3-78B", 0.70, 3.0, 300.0, 0.9, (1.4, 0.5, 0.2, 0.1, 0.4, 0.0)),
    ModelSpec("Qwen2.5-VL-32B", 0.30, 3.0, 350.0, 0.7, (0.6, 0.3, 0.0, 0.1, 0.2, 0.0)),
    ModelSpec("Qwen2.5-VL-7B", 0.07, 3.0, 200.0, 0.1, (0.6, 0.2, -0.2, -0.3, 0.0, -0.4)),
    ModelSpec("Qwen2.5-VL-3B", 0.03, 3.0, 180.0, -0.4, (0.5, 0.1, -0.3, -0.5, -0.1, -0.5)),
)

# Sizes: the VLMEvalKit splits the reference repo evaluates
# (configs/mmrbench_benchmark_registry.json of Hunter-Wrynn/MMR-Bench). Targets: MMR-Bench Table 2
# (the Random, BestSingle and Oracle Ps of each dataset).
_VLMEVAL = "VLMEvalKit split {} ({} questions)"
# fmt: off
_DATASETS: tuple[DatasetSpec, ...] = (
    # name, scenario, size, size source, mean prompt tokens, output factor,
    # demand (ocr, percep, know, symb, diag, multi), targets (random, best, oracle)
    DatasetSpec("OCRBench", "OCR", 1000, _VLMEVAL.format("OCRBench", 1000), 900.0, 0.3,
                (1.0, 0.3, 0.0, 0.0, 0.2, 0.0), 0.8075, 0.9050, 0.9825),
    DatasetSpec("SEEDBench2Plus", "OCR", 2277, _VLMEVAL.format("SEEDBench2_Plus", 2277), 1500.0, 0.4,
                (0.8, 0.4, 0.3, 0.0, 0.5, 0.2), 0.7102, 0.7502, 0.8913),
    DatasetSpec("MMStar", "VQA", 1500, _VLMEVAL.format("MMStar", 1500), 700.0, 0.5,
                (0.1, 0.8, 0.5, 0.2, 0.3, 0.3), 0.6942, 0.7716, 0.9650),
    DatasetSpec("RealWorldQA", "VQA", 765, _VLMEVAL.format("RealWorldQA", 765), 1300.0, 0.5,
                (0.2, 1.0, 0.3, 0.0, 0.0, 0.2), 0.7108, 0.8235, 0.9853),
    DatasetSpec("MathVista", "Math", 1000, _VLMEVAL.format("MathVista_MINI (testmini)", 1000), 900.0, 1.0,
                (0.3, 0.3, 0.2, 0.6, 0.7, 0.5), 0.6688, 0.8037, 0.9475),
    DatasetSpec("MathVerse", "Math", 788, _VLMEVAL.format("MathVerse_MINI_Vision_Only", 788), 800.0, 1.3,
                (0.1, 0.3, 0.0, 0.8, 0.9, 0.7), 0.4800, 0.7194, 0.8954),
    DatasetSpec("MathVision", "Math", 3040, _VLMEVAL.format("MathVision (full test)", 3040), 850.0, 1.6,
                (0.1, 0.2, 0.1, 1.0, 0.7, 1.0), 0.3927, 0.6932, 0.8741),
)
# fmt: on


def default_config() -> SimConfig:
    """The preset behind the bundled table ``mmr-sim-default``: 10 models, 7 datasets, 10,370 queries."""
    return SimConfig(name=DEFAULT_CONFIG_NAME, skills=SKILLS, models=_MODELS, datasets=_DATASETS)


#: Preset name -> its config (the choices of ``python -m mmr_gym.sim --config``).
PRESETS: dict[str, Callable[[], SimConfig]] = {DEFAULT_CONFIG_NAME: default_config}
