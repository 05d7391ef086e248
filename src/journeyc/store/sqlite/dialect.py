"""SQLite's dialect of the SQL compiled from the IR (see
:mod:`journeyc.store.compiled.dialect`): JSON1 over the ``props`` text, values in
SQLite's dynamic types (booleans read from JSON as 1/0), truth values the integers
0/1, named ``:params``; and the runner of the statements on a ``sqlite3``
connection, whose plan check reads ``EXPLAIN QUERY PLAN``."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

__all__ = ["SQLITE", "SqliteDialect", "SqliteRunner"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SqliteDialect:
    """SQLite's SQL: JSON1 over the ``props`` text, named ``:params``."""

    json_types: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {
            "num": ("integer", "real"),
            "text": ("text",),
            "bool": ("true", "false"),
            "null": ("null",),
            "array": ("array",),
            "object": ("object",),
        }
    )
    index_hint = " INDEXED BY events_user_name_at"
    true = "1"
    false = "0"
    products = True
    sum_width = 1

    def bind(self, value: object, bound: object) -> object:
        """``bound``: SQLite compares JSON values with plain SQL ones (a bool as 1/0)."""
        return bound

    def placeholders(self, sql: str) -> str:
        """SQLite takes ``:name`` as it is."""
        return sql

    def json_path(self, path: Sequence[str]) -> str | None:
        """``$.a.b``."""
        if not path or not all(_IDENT.match(p) for p in path):
            return None
        return "$." + ".".join(path)

    def json_type(self, doc: str, path: str) -> str:
        """``json_type``."""
        return f"json_type({doc}, {path})"

    def json_value(self, doc: str, path: str) -> str:
        """``json_extract``."""
        return f"json_extract({doc}, {path})"

    def json_each(self, doc: str, path: str, alias: str) -> str:
        """``json_each``."""
        return f"json_each({doc}, {path}) AS {alias}"

    def item_type(self, alias: str) -> str:
        """``json_each``'s ``type``."""
        return f"{alias}.type"

    def item_value(self, alias: str) -> str:
        """``json_each``'s ``value``."""
        return f"{alias}.value"

    def item_atom(self, alias: str) -> str:
        """``json_each``'s ``atom``."""
        return f"{alias}.atom"

    def item_key(self, alias: str) -> str:
        """``json_each``'s ``key``."""
        return f"{alias}.key"

    def contains(self, text: str, part: str) -> str:
        """``instr``."""
        return f"instr({text}, {part}) > 0"

    def text_list(self, param: str) -> str:
        """``json_each``'s values."""
        return f"SELECT value FROM json_each({param})"

    def fail(self) -> str:
        """Malformed JSON: ``json_extract`` raises."""
        return "json_extract('!', '$')"

    def order_key(self, at: str, seq: str) -> str:
        """``printf``."""
        return f"printf('%019d%019d', {at}, {seq})"

    def ifnull(self, value: str, default: str) -> str:
        """``IFNULL``."""
        return f"IFNULL({value}, {default})"

    def is_true(self, value: str) -> str:
        """A boolean is 1 or 0: the value is the condition."""
        return value

    def bool_value(self, cond: str) -> str:
        """A condition is 1 or 0: the condition is the value."""
        return cond

    def truthy(self, tag: str, value: str) -> str:
        """Over SQLite's values: arrays and objects are their JSON text."""
        return (
            f"(CASE {tag} WHEN 'bool' THEN {value} WHEN 'num' THEN {value} <> 0"
            f" WHEN 'text' THEN {value} <> '' WHEN 'array' THEN {value} <> '[]'"
            f" WHEN 'object' THEN {value} <> '{{}}' ELSE 0 END)"
        )

    def compare(self, op: str, a: str, b: str, both_num: str) -> str:
        """SQLite compares texts by code point (BINARY), numbers as numbers."""
        return f"{a} {op} {b}"

    def text_order(self, column: str) -> str:
        """BINARY, the default."""
        return column

    def distinct_key(self, jt: str, value: str) -> str:
        """Numbers as themselves (``1 = 1.0``), texts behind an ``s``, the truth
        values (a JSON type each) as ``T`` and ``F``."""
        t = self.json_types
        bools = [f"WHEN '{n}' THEN '{k}'" for n, k in zip(t["bool"], "TF", strict=True)]
        whens = [f"WHEN '{n}' THEN {value}" for n in t["num"]]
        whens += [f"WHEN '{n}' THEN 's' || {value}" for n in t["text"]]
        return f"CASE {jt} {' '.join(whens + bools)} END"

    def value_key(self, value: str, num: str, text: str, boolean: str) -> str:
        """As :meth:`distinct_key`."""
        return (
            f"CASE WHEN {num} THEN {value} WHEN {text} THEN 's' || {value}"
            f" WHEN {boolean} THEN (CASE WHEN {value} THEN 'T' ELSE 'F' END) END"
        )

    def sum_columns(self, value: str, order: str) -> tuple[str, ...]:
        """``SUM``: exact over integers (an overflow fails), else a float sum in the
        order the rows come (the set-based scan checks its plan for that)."""
        return (f"SUM({value})",)

    def sum_of(self, cells: Sequence[Any]) -> Any:
        """The one cell."""
        return cells[0]

    def min_max(self, func: str, value: str, order: str) -> str:
        """``MIN``/``MAX``: SQLite ranks numbers below texts, and keeps the first of
        equal values."""
        return f"{func.upper()}({value})"

    def at_max(self, column: str, key: str) -> str:
        """In a query with one ``max()``, SQLite takes a bare column from that max's
        row."""
        return column

    def doc_text(self, doc: str) -> str:
        """``props`` is text."""
        return doc


SQLITE = SqliteDialect()
"""The dialect of :mod:`journeyc.store.sqlite`."""


class SqliteRunner:
    """The generated statements on ``conn`` (see
    :class:`~journeyc.store.compiled.dialect.Runner`)."""

    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OverflowError)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.execute = conn.execute  # the connection's own: no call in between

    def in_index_order(self, sql: str, params: Mapping[str, object]) -> bool:
        """Whether the plan reads the ``(user_id, name, at)`` index and sorts nothing
        before grouping."""
        plan = [str(r[-1]) for r in self.conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
        return any("events_user_name_at" in p for p in plan) and not any(
            "TEMP B-TREE FOR GROUP BY" in p for p in plan
        )
