"""The product catalog: a feed of products, and what e-commerce events teach about them.

The recommendation filters (:mod:`journeyc.messages.recommend`) read the ``products``
table. Two things write it:

- the catalog feed, a JSON-lines or CSV file loaded with ``journeyc catalog load``
  (or ``journeyc simulate --catalog``): each good row replaces the whole product, so
  the feed is the truth about a product and its stock;
- the event log: as ``product_viewed`` and ``order_completed`` events are appended, the
  products they name are learned
  (:func:`journeyc.store.sqlite.products.upsert_from_events`). Events only add
  products the table does not know and fill fields that are empty; they never
  overwrite a value and never change ``in_stock``.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from journeyc.events import error_path, json_reason, reject_constant, text_problems
from journeyc.store.product_ids import product_id_text

if TYPE_CHECKING:
    from journeyc.store.abc import Catalog, Store

Format: TypeAlias = Literal["jsonl", "csv"]

FIELDS = ("id", "name", "brand", "category", "price", "url", "image", "in_stock")
"""The columns a feed row may set; any other key is kept in the product's ``extra``."""

CHUNK = 1000
"""Rows per ``executemany`` when loading a feed (progress is reported between them)."""


# ---------------------------------------------------------------- the model


def _text(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _number(value: object) -> object:
    if isinstance(value, bool):
        raise PydanticCustomError("float_type", "expected a number")
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


ProductId = Annotated[str, BeforeValidator(product_id_text), Field(min_length=1)]
Text = Annotated[str | None, BeforeValidator(_text)]
Price = Annotated[
    Annotated[float, Field(ge=0, allow_inf_nan=False)] | None, BeforeValidator(_number)
]


class Product(BaseModel):
    """One product of the catalog.

    ``id`` is required (a number is read as its digits); ``price`` is a non-negative
    number; ``in_stock`` defaults to true. Keys other than the named fields are kept
    in ``extra`` and given to templates beside them.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ProductId
    name: Text = None
    brand: Text = None
    category: Text = None
    price: Price = None
    url: Text = None
    image: Text = None
    in_stock: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _collect_extra(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        known = {k: v for k, v in data.items() if k in FIELDS}
        extra = {k: v for k, v in data.items() if k not in FIELDS and k != "extra"}
        given = data.get("extra")
        if isinstance(given, Mapping):
            extra = {**given, **extra}
        elif given is not None:
            extra["extra"] = given
        return {**known, "extra": extra}


# ---------------------------------------------------------------- reading a feed


@dataclass(frozen=True, slots=True)
class BadRow:
    """A feed row that was refused: where it is, which field, and why."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """The row problem as JSON-ready data."""
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True, slots=True)
class CatalogFile:
    """What a feed file holds: its good products in file order, the problems of the
    rows that were refused (one or more per row), and how many rows it had."""

    products: list[Product]
    problems: list[BadRow]
    rows: int

    @property
    def refused(self) -> int:
        """How many rows were refused."""
        return len({p.line for p in self.problems})


_MESSAGES = {
    "missing": "is required",
    "string_type": "expected a string",
    "string_too_short": "must not be empty",
    "too_short": "must not be empty",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must not be negative",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected an object",
    "model_type": "expected an object",
}


def feed_format(path: Path | str, fmt: Format | None = None) -> Format:
    """``fmt``, else the format the file name says: ``.csv`` is CSV, anything else
    JSON lines."""
    if fmt is not None:
        return fmt
    return "csv" if str(path).lower().endswith(".csv") else "jsonl"


def read_catalog(
    path: Path | str,
    fmt: Format | None = None,
    progress: Callable[[int], None] | None = None,
) -> CatalogFile:
    """Read a catalog feed: JSON lines (one product object a line, blank lines skipped)
    or CSV (a header row naming the columns, ``id`` among them; empty cells are
    missing values).

    Every row is checked; a bad row is reported as ``FILE:LINE: $.field: message``
    and left out, the good ones are returned. ``progress(bytes_read)`` is told how far
    the file has been read. Raises ``OSError`` when the file cannot be read.
    """
    name = str(path)
    with Path(path).open("rb") as f:
        lines = _counting(f, progress)
        if feed_format(path, fmt) == "csv":
            return _read_csv(lines, name)
        return _read_jsonl(lines, name)


def _counting(f: io.BufferedReader, progress: Callable[[int], None] | None) -> Iterator[bytes]:
    done = 0
    for n, raw in enumerate(f, start=1):
        done += len(raw)
        if progress is not None and n % CHUNK == 0:
            progress(done)
        yield raw
    if progress is not None:
        progress(done)


def _read_jsonl(lines: Iterator[bytes], name: str) -> CatalogFile:
    products: list[Product] = []
    problems: list[BadRow] = []
    rows = 0
    for lineno, raw in enumerate(lines, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rows += 1
            problems.append(BadRow(name, lineno, "$", f"not UTF-8 text ({exc.reason})"))
            continue
        if not line.strip():
            continue
        rows += 1
        try:
            obj = json.loads(line, parse_constant=reject_constant)
        except ValueError as exc:
            problems.append(BadRow(name, lineno, "$", f"not valid JSON ({json_reason(exc)})"))
            continue
        _validate(obj, name, lineno, products, problems)
    return CatalogFile(products, problems, rows)


def _read_csv(lines: Iterator[bytes], name: str) -> CatalogFile:
    products: list[Product] = []
    problems: list[BadRow] = []
    undecodable: dict[int, str] = {}

    def text_lines() -> Iterator[str]:
        for lineno, raw in enumerate(lines, start=1):
            try:
                yield raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                # Keep the line count right for the rows that follow.
                undecodable[lineno] = f"not UTF-8 text ({exc.reason})"
                yield "\n"

    reader = csv.reader(text_lines(), strict=True)
    header: list[str] | None = None
    rows = 0
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rows += 1
            problems.append(BadRow(name, start, "$", f"not valid CSV ({exc})"))
            end = reader.line_num
            continue
        end = reader.line_num
        if start in undecodable:
            rows += 1
            problems.append(BadRow(name, start, "$", undecodable[start]))
            continue
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if "id" not in header:
                problems.append(BadRow(name, start, "$", "the header has no `id` column"))
                return CatalogFile([], problems, 0)
            continue
        rows += 1
        if len(cells) > len(header):
            problems.append(
                BadRow(name, start, "$", f"{len(cells)} cells, the header has {len(header)}")
            )
            continue
        obj = {k: v for k, v in zip(header, cells, strict=False) if k and v.strip()}
        _validate(obj, name, start, products, problems)
    return CatalogFile(products, problems, rows)


def _validate(
    obj: object, name: str, lineno: int, products: list[Product], problems: list[BadRow]
) -> None:
    if not isinstance(obj, Mapping):
        problems.append(BadRow(name, lineno, "$", "expected an object"))
        return
    bad = text_problems(obj)  # lone surrogates from JSON escapes: no UTF-8 text to store
    if bad:
        problems.extend(BadRow(name, lineno, p.path, p.message) for p in bad)
        return
    try:
        products.append(Product.model_validate(obj))
    except ValidationError as exc:
        problems.extend(_bad_row(err, name, lineno) for err in exc.errors())


def _bad_row(err: ErrorDetails, name: str, lineno: int) -> BadRow:
    return BadRow(name, lineno, error_path(err), _MESSAGES.get(err["type"], err["msg"]))


# ---------------------------------------------------------------- writing


@dataclass(frozen=True, slots=True)
class Upserted:
    """What a load did: products added, and products that were there and replaced."""

    new: int
    updated: int


def upsert_products(
    store: Store,
    products: Sequence[Product],
    *,
    at_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Upserted:
    """Write feed products in one transaction: each replaces the whole product of its
    id (a field it leaves out becomes empty), so the feed's values and stock win over
    anything events taught. A product given twice ends as its last row.

    ``at_ms`` (default: now) is recorded as the rows' ``updated_at``;
    ``progress(done)`` is told how many products have been written.
    """
    if at_ms is None:
        at_ms = time.time_ns() // 1_000_000
    catalog: Catalog = store.catalog()  # typed by its interface: mypy checks the store's
    new = catalog.replace_products(products, at_ms, chunk=CHUNK, progress=progress)
    return Upserted(new, len({p.id for p in products}) - new)
