"""The dialect seam of the SQL compiled from the IR (aggregates, set-based segment
evaluation): the few pieces of SQL that differ between databases.

The generators (:mod:`journeyc.store.sqlite.aggregates`,
:mod:`journeyc.store.sqlite.population`) write standard SQL (``CASE``, ``EXISTS``,
``COUNT(DISTINCT …)``, window functions) and ask a :class:`Dialect` for the rest:
the style of its parameters (the generators write ``:name``), how a JSON document
is read (a value's type, its value, the rows of a list), and a few functions.
:data:`SQLITE` is SQLite's (its JSON1 functions over the ``props`` text); a
PostgreSQL dialect (``jsonb_typeof``, ``jsonb_array_elements``, ``%(name)s``) fills
the same methods, and the generators stay as they are.

Every method returns SQL text; none runs anything.

Not behind the seam yet, for the PostgreSQL dialect to take on: the ``where``
translation's truth values are SQLite's integers 0/1 (PostgreSQL wants booleans),
``IFNULL`` (``COALESCE`` there), the JSON texts ``'[]'``/``'{}'`` of empty lists and
objects, and the plan check of the set-based scans (SQLite's ``EXPLAIN QUERY PLAN``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

__all__ = ["SQLITE", "Dialect", "SqliteDialect"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Dialect(Protocol):
    """What the generators ask of a database's SQL."""

    json_types: Mapping[str, tuple[str, ...]]
    """The names the dialect's JSON type function gives each value class of the
    ``where`` translation (``num``, ``text``, ``bool``, ``null``, ``array``,
    ``object``)."""

    index_hint: str
    """Written after ``FROM events`` in set-based scans: forces the ``(user_id, name,
    at)`` index, whose order the aggregates rely on (empty where the planner needs
    no hint)."""

    def placeholders(self, sql: str) -> str:
        """``sql``, written with ``:name`` parameters, in the dialect's own style."""
        ...

    def json_path(self, path: Sequence[str]) -> str | None:
        """The path value (bound as a parameter) of a property path; None when a name
        would need quoting."""
        ...

    def json_type(self, doc: str, path: str) -> str:
        """The JSON type name (one of :attr:`json_types`) at ``path`` of ``doc``,
        NULL when there is nothing there."""
        ...

    def json_value(self, doc: str, path: str) -> str:
        """The SQL value at ``path`` of ``doc`` (numbers and text as such, booleans
        as 1/0, arrays and objects as their JSON text)."""
        ...

    def json_each(self, doc: str, path: str, alias: str) -> str:
        """A table of the items of the list at ``path`` of ``doc``, named ``alias``
        (a FROM item); see the ``item_*`` columns."""
        ...

    def item_type(self, alias: str) -> str:
        """The JSON type name of an item of :meth:`json_each`."""
        ...

    def item_value(self, alias: str) -> str:
        """An item as a value (arrays and objects as their JSON text)."""
        ...

    def item_atom(self, alias: str) -> str:
        """An item as a scalar (NULL for arrays and objects)."""
        ...

    def item_key(self, alias: str) -> str:
        """An item's place in its list."""
        ...

    def contains(self, text: str, part: str) -> str:
        """Whether text ``part`` occurs in text ``text``."""
        ...

    def text_list(self, param: str) -> str:
        """A one-column table of the texts of a parameter holding a JSON array of
        texts (the operand of ``IN``)."""
        ...

    def fail(self) -> str:
        """An expression that raises an error when evaluated (the statement fails,
        and the caller answers in Python)."""
        ...

    def order_key(self, at: str, seq: str) -> str:
        """Text that sorts as ``(at, seq)``, both non-negative: each as a zero-padded
        19-digit decimal (the width of a non-negative int64)."""
        ...


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


SQLITE = SqliteDialect()
"""The dialect of :mod:`journeyc.store.sqlite`."""
