"""PostgreSQL's dialect of the SQL compiled from the IR (see
:mod:`journeyc.store.compiled.dialect`), over the ``props`` ``jsonb`` column.

Every value the generated SQL handles is a ``jsonb``: a property read with ``#>``, a
list item of ``jsonb_array_elements``, a bound parameter (:meth:`PostgresDialect.bind`
wraps it), a condition used as a value (``to_jsonb``). So one SQL type holds what
SQLite's dynamic types hold, equality is ``jsonb``'s (numbers by value, so ``1 = 1.0``;
texts byte for byte), and no cast can fail on a value of another class. Texts are
ordered by code point (``COLLATE "C"``), as Python orders them. Truth values are
booleans. Sums, minimums and maximums order their input themselves (``ORDER BY``
inside the aggregate), so the set-based scans need no plan check. No statement fails
on a value jsonb holds (each cast is guarded by the value's type, a float cast by its
range), so none aborts the caller's transaction.

What has no exact form here yet, and goes to the engine's Python path: ``a * b``
(Python multiplies floats with rounding, numeric exactly), and bound floats whose
shortest text is not their exact value and that are too large for every integer
near them to be told apart (``abs(x) >= 2**52``): jsonb compares numbers as decimals.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from psycopg.types.json import Jsonb

from journeyc.store.abc import NoExactFormError

__all__ = ["POSTGRES", "PostgresDialect"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # not a ``::`` cast
_FLOAT_EXACT_BELOW = 2.0**52  # below it, a float's shortest text orders as the float
# The decimals a float8 cast takes without failing: PostgreSQL refuses what overflows,
# and what underflows to zero.
_FLOAT_MAX = "1.7976931348623157e308"
_FLOAT_MIN = "1e-307"


class PostgresDialect:
    """PostgreSQL's SQL: ``jsonb`` values, booleans, ``%(name)s`` parameters."""

    json_types: Mapping[str, tuple[str, ...]] = MappingProxyType(
        {
            "num": ("number",),
            "text": ("string",),
            "bool": ("boolean",),
            "null": ("null",),
            "array": ("array",),
            "object": ("object",),
        }
    )
    index_hint = ""
    true = "TRUE"
    false = "FALSE"
    products = False
    sum_width = 3

    def bind(self, value: object, bound: object) -> object:
        """``value`` as a ``jsonb`` parameter (a float only where jsonb's decimal
        comparison agrees with Python's: see the module's docstring)."""
        if value.__class__ is float:
            f = float(value)
            if not math.isfinite(f) or (
                abs(f) >= _FLOAT_EXACT_BELOW and Decimal(repr(f)) != Decimal(f)
            ):
                raise NoExactFormError
        return Jsonb(value)

    def placeholders(self, sql: str) -> str:
        """``:name`` as psycopg's ``%(name)s`` (a literal ``%`` doubled)."""
        return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))

    def json_path(self, path: Sequence[str]) -> list[str] | None:
        """The names, bound as a ``text[]`` (names of the same form as SQLite's: a
        number would index a list)."""
        if not path or not all(_IDENT.match(p) for p in path):
            return None
        return list(path)

    def json_type(self, doc: str, path: str) -> str:
        """``jsonb_typeof`` of ``#>``."""
        return f"jsonb_typeof({doc} #> {path})"

    def json_value(self, doc: str, path: str) -> str:
        """``#>``: the jsonb there."""
        return f"({doc} #> {path})"

    def json_each(self, doc: str, path: str, alias: str) -> str:
        """``jsonb_array_elements`` of the list there, none when it is no list (the
        function raises on anything else, and SQL does not promise to test a guard
        first), numbered from 1 (``key``)."""
        at = f"({doc} #> {path})"
        return (
            f"jsonb_array_elements(CASE jsonb_typeof({at}) WHEN 'array' THEN {at} END)"
            f" WITH ORDINALITY AS {alias}(value, key)"
        )

    def item_type(self, alias: str) -> str:
        """``jsonb_typeof`` of the item."""
        return f"jsonb_typeof({alias}.value)"

    def item_value(self, alias: str) -> str:
        """The item's jsonb."""
        return f"{alias}.value"

    def item_atom(self, alias: str) -> str:
        """The item's jsonb (comparisons test the class first)."""
        return f"{alias}.value"

    def item_key(self, alias: str) -> str:
        """The ordinality."""
        return f"{alias}.key"

    def contains(self, text: str, part: str) -> str:
        """``strpos`` over the texts of two jsonb strings."""
        return f"strpos({text} #>> '{{}}', {part} #>> '{{}}') > 0"

    def text_list(self, param: str) -> str:
        """``jsonb_array_elements_text`` of the JSON text bound."""
        return f"SELECT jsonb_array_elements_text(CAST({param} AS jsonb))"

    def fail(self) -> str:
        """Malformed JSON, computed per row (a constant would fail at planning);
        unused while :attr:`products` is False."""
        return "CAST(CAST(random() AS text) || '!' AS jsonb)"

    def order_key(self, at: str, seq: str) -> str:
        """``lpad``, compared by code point."""
        return (
            f"(lpad(CAST({at} AS text), 19, '0') || lpad(CAST({seq} AS text), 19, '0'))"
            ' COLLATE "C"'
        )

    def ifnull(self, value: str, default: str) -> str:
        """``COALESCE``."""
        return f"COALESCE({value}, {default})"

    def is_true(self, value: str) -> str:
        """The jsonb ``true``."""
        return f"({value} = CAST('true' AS jsonb))"

    def bool_value(self, cond: str) -> str:
        """``to_jsonb``."""
        return f"to_jsonb({cond})"

    def truthy(self, tag: str, value: str) -> str:
        """Over jsonb: compared with the jsonb of each class's false value."""

        whens = [f"WHEN 'bool' THEN {value} = CAST('true' AS jsonb)"]
        whens += [
            f"WHEN '{cls}' THEN {value} <> CAST('{false}' AS jsonb)"
            for cls, false in (("num", "0"), ("text", '""'), ("array", "[]"), ("object", "{}"))
        ]
        return f"(CASE {tag} {' '.join(whens)} ELSE FALSE END)"

    def compare(self, op: str, a: str, b: str, both_num: str) -> str:
        """Numbers as jsonb (by value), texts by code point (jsonb would compare them
        in the database's collation)."""
        texts = f"({a} #>> '{{}}') COLLATE \"C\" {op} ({b} #>> '{{}}') COLLATE \"C\""
        if both_num == self.true:
            return f"{a} {op} {b}"
        if both_num == self.false:
            return texts
        return f"(CASE WHEN {both_num} THEN {a} {op} {b} ELSE {texts} END)"

    def text_order(self, column: str) -> str:
        """``COLLATE "C"``."""
        return f'{column} COLLATE "C"'

    def distinct_key(self, jt: str, value: str) -> str:
        """The jsonb itself: jsonb equality is the rule (``1 = 1.0``, a type each)."""
        return f"CASE WHEN {jt} IN ('number', 'string', 'boolean') THEN {value} END"

    def value_key(self, value: str, num: str, text: str, boolean: str) -> str:
        """As :meth:`distinct_key`."""
        return f"CASE WHEN {num} OR {text} OR {boolean} THEN {value} END"

    def sum_columns(self, value: str, order: str) -> tuple[str, ...]:
        """The exact sum (numeric), the float sum in ``order``, and whether a float
        (a number written with a point: jsonb writes no exponents) took part. A number
        no float holds (jsonb holds any decimal) makes the float sum NaN instead of
        failing the statement (:meth:`sum_of` then refuses it)."""
        n = f"CAST({value} AS numeric)"
        fits = f"({n} = 0 OR abs({n}) BETWEEN {_FLOAT_MIN} AND {_FLOAT_MAX})"
        floats = (
            f"CASE WHEN {fits} THEN CAST({value} AS float8)"
            f" WHEN {value} IS NOT NULL THEN CAST('NaN' AS float8) END"
        )
        return (
            f"SUM({n})",
            f"SUM({floats} ORDER BY {order})",
            f"bool_or(strpos(CAST({value} AS text), '.') > 0)",
        )

    def sum_of(self, cells: Sequence[Any]) -> Any:
        """The float sum once a float took part, else the exact one as an int;
        ``OverflowError`` when a float took part beside a number no float holds (the
        engine's Python path decides)."""
        exact, floats, any_float = cells[0], cells[1], cells[2]
        if exact is None:
            return None
        if not any_float:
            return int(exact)
        total = float(floats)
        if math.isnan(total):
            raise OverflowError("a number no float holds in a float sum")
        return total

    def min_max(self, func: str, value: str, order: str) -> str:
        """The first value of ``array_agg`` sorted by class (numbers first for
        ``min``, texts first for ``max``), value (numbers as numbers, texts by code
        point) and ``order``."""
        way = "ASC" if func == "min" else "DESC"
        jt = f"jsonb_typeof({value})"
        return (
            f"(array_agg({value} ORDER BY {jt} = 'string' {way},"
            f" CASE WHEN {jt} = 'number' THEN CAST({value} AS numeric) END {way},"
            f" CASE WHEN {jt} = 'string' THEN {value} #>> '{{}}' END COLLATE \"C\" {way},"
            f" {order}) FILTER (WHERE {value} IS NOT NULL))[1]"
        )

    def at_max(self, column: str, key: str) -> str:
        """The first of ``array_agg`` by ``key`` descending."""
        return f"(array_agg({column} ORDER BY {key} DESC))[1]"

    def doc_text(self, doc: str) -> str:
        """jsonb's text."""
        return f"CAST({doc} AS text)"


POSTGRES = PostgresDialect()
"""The dialect of :mod:`journeyc.store.postgres`."""
