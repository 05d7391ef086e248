"""The dialect seam of the SQL compiled from the IR (aggregates, set-based segment
evaluation): the pieces of SQL that differ between databases, and what a statement
runs on.

The generators (:mod:`journeyc.store.compiled.aggregates`,
:mod:`journeyc.store.compiled.population`) write standard SQL (``CASE``, ``EXISTS``,
``COUNT(DISTINCT …)``, window functions) and ask a :class:`Dialect` for the rest:
the style of its parameters (the generators write ``:name``), how a JSON document
is read (a value's type, its value, the rows of a list), its truth values, how a
value is told apart for ``distinct``/``top``, how a sum, a minimum or a maximum is
taken exactly as :mod:`journeyc.engine.aggregates` takes it, and a few functions.
SQLite's is :data:`journeyc.store.sqlite.dialect.SQLITE` (JSON1 over the ``props``
text, values as SQLite's dynamic types, truth values the integers 0/1);
PostgreSQL's :data:`journeyc.store.postgres.dialect.POSTGRES` (every value a
``jsonb``, real booleans, ``%(name)s``).

Every method of a :class:`Dialect` returns SQL text; none runs anything. A
:class:`Runner` runs the statements on a database's connection, and says which of
its errors mean "no exact answer here" (the engine then computes in Python) and
whether a set-based scan hands each user's rows over in index order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = ["Dialect", "Rows", "Runner"]


class Rows(Protocol):
    """The result of a statement (a DB-API cursor has this)."""

    def fetchone(self) -> Any:
        """The first row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every row."""
        ...

    def __iter__(self) -> Iterator[Any]: ...


class Runner(Protocol):
    """Runs the generated statements on one database."""

    errors: tuple[type[BaseException], ...]
    """What a statement that fails on the data raises (an integer overflow, malformed
    JSON): the answer then has no exact form in SQL."""

    def execute(self, sql: str, params: Mapping[str, object] | Sequence[object] = ()) -> Rows:
        """Run ``sql`` (in the dialect's parameter style) with ``params``."""
        ...

    def in_index_order(self, sql: str, params: Mapping[str, object]) -> bool:
        """Whether the set-based scan ``sql`` feeds each user's rows to its aggregates
        in the ``(user_id, name, at)`` index's order (True for a dialect whose
        order-sensitive aggregates order their input themselves)."""
        ...


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

    true: str
    """The condition that always holds (SQLite: ``1``)."""

    false: str
    """The condition that never holds (SQLite: ``0``)."""

    products: bool
    """Whether ``a * b`` has a SQL form (the product exactly as Python computes it,
    or a failing statement)."""

    def bind(self, value: object, bound: object) -> object:
        """A value of the outer scope or a literal (None, bool, int, float or str), as
        the parameter the dialect compares with values read from JSON, given ``bound``,
        the value in SQL's plain form (a bool as 1/0); raises ``NoExactFormError`` when
        it has no exact form there."""
        ...

    def json_path(self, path: Sequence[str]) -> object | None:
        """The path value (bound as a parameter) of a property path; None when a name
        would need quoting."""
        ...

    def ifnull(self, value: str, default: str) -> str:
        """``value``, or ``default`` when it is NULL."""
        ...

    def is_true(self, value: str) -> str:
        """The condition that ``value``, a boolean value, is true."""
        ...

    def bool_value(self, cond: str) -> str:
        """The condition ``cond`` as a value (as :meth:`json_value` gives a boolean)."""
        ...

    def truthy(self, tag: str, value: str) -> str:
        """The condition that ``value`` of class ``tag`` (an expression) is true as
        :func:`journeyc.engine.values.truthy` says: a true boolean, a number not zero,
        a text, list or object not empty."""
        ...

    def compare(self, op: str, a: str, b: str, both_num: str) -> str:
        """``a op b`` for two values of the same class, numbers (``both_num``) or
        texts (by code point)."""
        ...

    def text_order(self, column: str) -> str:
        """A text column, compared by code point (as Python compares strings)."""
        ...

    def distinct_key(self, jt: str, value: str) -> str:
        """A value telling property values apart as ``distinct`` and ``top`` do
        (``1`` and ``1.0`` one value, ``true`` and ``1`` two; NULL: skipped), ``jt``
        and ``value`` the property's JSON type and value."""
        ...

    def value_key(self, value: str, num: str, text: str, boolean: str) -> str:
        """As :meth:`distinct_key`, for a value whose class the conditions ``num``,
        ``text`` and ``boolean`` test."""
        ...

    sum_width: int
    """How many columns :meth:`sum_columns` gives."""

    def sum_columns(self, value: str, order: str) -> tuple[str, ...]:
        """The columns of the sum of the numbers ``value`` (NULL: skipped): exact over
        integers, else every term added as a float in the order of the ``order``
        expressions (the engine's ``_sum``)."""
        ...

    def sum_of(self, cells: Sequence[Any]) -> Any:
        """The sum (None when nothing was summed) from the cells of :meth:`sum_columns`."""
        ...

    def min_max(self, func: str, value: str, order: str) -> str:
        """The column of ``min`` or ``max`` (``func``) of ``value``, numbers and texts
        (NULL: skipped): numbers rank below texts, texts by code point, and of equal
        values the first in the order of ``order`` wins."""
        ...

    def at_max(self, column: str, key: str) -> str:
        """In a grouped query, ``column`` of the row with the greatest ``key``."""
        ...

    def doc_text(self, doc: str) -> str:
        """A JSON document as its text."""
        ...

    def json_type(self, doc: str, path: str) -> str:
        """The JSON type name (one of :attr:`json_types`) at ``path`` of ``doc``,
        NULL when there is nothing there."""
        ...

    def json_value(self, doc: str, path: str) -> str:
        """The SQL value at ``path`` of ``doc``, in the dialect's representation of
        values (SQLite: numbers and text as such, booleans as 1/0, arrays and objects
        as their JSON text; PostgreSQL: the jsonb)."""
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
