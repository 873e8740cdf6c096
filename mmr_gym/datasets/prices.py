"""The per-token price table behind estimated costs (``mmr_gym/data/prices.csv``), and its sources.

Each row prices one model configuration (USD per 1M input and output tokens, image tokens per
image) and says whether the figures were read in a public price list (``price_status``
"sourced", with ``source_url``, the list's own date ``as_of`` and the date it was read
``read_on``) or not ("unsourced"). :func:`price_sources` gives that record per model for a
table's ``meta["price_sources"]``, which reports print.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import os
import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from mmr_gym.datasets.columns import allow_large_csv_fields
from mmr_gym.errors import TableError

__all__ = ["PRICE_STATUSES", "ModelPrice", "default_prices_text", "load_prices", "price_sources"]


@dataclass(frozen=True)
class ModelPrice:
    """One row of the price table: a MATH-V model configuration and its public per-token price."""

    model: str
    provider_model: str
    kind: str  # "multimodal" or "text"
    input_usd_per_1m: float
    output_usd_per_1m: float
    image_tokens: int
    source_url: str  # the public price list the figures were read in ("" when unsourced)
    as_of: str  # the date that list gives for itself
    note: str
    price_status: str = "unsourced"  # "sourced": both prices read at source_url on read_on
    read_on: str = ""  # YYYY-MM-DD


_PRICE_COLUMNS = tuple(ModelPrice.__dataclass_fields__)
# Columns a user's price file may leave out (files written before prices were sourced).
_OPTIONAL_PRICE_COLUMNS = {"price_status": "unsourced", "read_on": ""}
PRICE_STATUSES = ("sourced", "unsourced")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


#: More tokens per image than any provider bills (a typo, not a price).
MAX_IMAGE_TOKENS = 1_000_000


def default_prices_text() -> tuple[str, str]:
    resource = files("mmr_gym") / "data" / "prices.csv"
    return resource.read_text(encoding="utf-8"), "mmr_gym/data/prices.csv"


def load_prices(path: str | os.PathLike[str] | None = None) -> dict[str, ModelPrice]:
    """The price table: model name -> :class:`ModelPrice`.

    Args:
        path: a CSV with the columns of ``mmr_gym/data/prices.csv`` (lines starting with ``#`` are
            comments); None reads that packaged file.

    Raises:
        TableError: a missing column, a bad number, an unknown ``kind`` or a repeated model, naming
            the file, the column and the line.
    """
    if path is None:
        text, source = default_prices_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TableError(source, None, None, "file not found") from None
        except UnicodeDecodeError as exc:
            raise TableError(
                source, None, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            ) from None
    lines = text.splitlines()
    # Comment lines are blanked, not removed, so line numbers in errors match the file.
    body = "\n".join("" if line.lstrip().startswith("#") else line for line in lines)
    allow_large_csv_fields()
    reader = csv.reader(io.StringIO(body))
    header: list[str] | None = None
    prices: dict[str, ModelPrice] = {}
    for record in reader:
        line = reader.line_num
        if not record or not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [c.strip() for c in record]
            known = set(_PRICE_COLUMNS) | set(_OPTIONAL_PRICE_COLUMNS)
            for i, column in enumerate(header):
                if column not in known:
                    raise TableError(
                        source,
                        column,
                        None,
                        f"line {line}: unknown column (the columns are {_PRICE_COLUMNS})",
                    )
                if column in header[:i]:
                    raise TableError(source, column, None, f"line {line}: the header names this column twice")
            missing = [c for c in _PRICE_COLUMNS if c not in header and c not in _OPTIONAL_PRICE_COLUMNS]
            if missing:
                raise TableError(
                    source, missing[0], None, f"line {line}: missing column (expected {_PRICE_COLUMNS})"
                )
            continue
        if len(record) != len(header):
            raise TableError(
                source, None, None, f"line {line}: {len(record)} fields, the header has {len(header)}"
            )
        row = {**_OPTIONAL_PRICE_COLUMNS, **dict(zip(header, (c.strip() for c in record), strict=True))}
        values: dict[str, Any] = {}
        for column in _PRICE_COLUMNS:
            cell = row[column]
            if column in ("input_usd_per_1m", "output_usd_per_1m", "image_tokens"):
                try:
                    number = float(cell)
                except ValueError:
                    raise TableError(source, column, None, f"line {line}: not a number: {cell!r}") from None
                if not math.isfinite(number) or number < 0:
                    raise TableError(
                        source, column, None, f"line {line}: {cell!r} is not a finite number >= 0"
                    )
                if column == "image_tokens" and (number != int(number) or number > MAX_IMAGE_TOKENS):
                    raise TableError(
                        source,
                        column,
                        None,
                        f"line {line}: {cell!r} is not a whole number of tokens <= {MAX_IMAGE_TOKENS}",
                    )
                values[column] = int(number) if column == "image_tokens" else number
            else:
                values[column] = cell
        if values["kind"] not in ("multimodal", "text"):
            raise TableError(
                source, "kind", None, f"line {line}: {values['kind']!r} is not 'multimodal' or 'text'"
            )
        if not values["model"]:
            raise TableError(source, "model", None, f"line {line}: empty model name")
        if values["model"] in prices:
            raise TableError(source, "model", None, f"line {line}: model {values['model']!r} appears twice")
        _check_sourcing(source, line, values)
        prices[values["model"]] = ModelPrice(**values)
    if header is None or not prices:
        raise TableError(source, None, None, "empty price table: no model's price")
    return prices


def _is_date(text: str) -> bool:
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _check_sourcing(source: str, line: int, values: dict[str, Any]) -> None:
    """A sourced price names the list it was read in (a URL) and the date it was read."""
    status = values["price_status"]
    if status not in PRICE_STATUSES:
        raise TableError(
            source, "price_status", None, f"line {line}: {status!r} is not one of {PRICE_STATUSES}"
        )
    if status != "sourced":
        return
    if not values["source_url"].startswith(("https://", "http://")):
        raise TableError(
            source, "source_url", None, f"line {line}: a sourced price needs the URL of its price list"
        )
    if not _DATE.match(values["read_on"]) or not _is_date(values["read_on"]):
        raise TableError(
            source, "read_on", None, f"line {line}: a sourced price needs the date it was read (YYYY-MM-DD)"
        )


def price_sources(prices: dict[str, ModelPrice]) -> dict[str, dict[str, Any]]:
    """Where each model's per-token prices come from, for ``meta["price_sources"]`` and reports.

    Returns model -> ``{"status": "sourced" | "unsourced", "input_usd_per_1m",
    "output_usd_per_1m", "source_url", "as_of", "read_on", "note"}``.
    """
    return {
        model: {
            "status": price.price_status,
            "input_usd_per_1m": price.input_usd_per_1m,
            "output_usd_per_1m": price.output_usd_per_1m,
            "source_url": price.source_url,
            "as_of": price.as_of,
            "read_on": price.read_on,
            "note": price.note,
        }
        for model, price in prices.items()
    }
