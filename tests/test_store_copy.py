"""`journeyc store copy SRC DST`: a store's rows moved between SQLite and PostgreSQL
(real files, a real server), every table compared after the round trip."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from journeyc.events import parse_event
from journeyc.store.copy import CopyError, copy_store
from journeyc.store.open import open_store
from journeyc.store.postgres.schema import SUMMED
from journeyc.store.sqlite.schema import TABLES
from journeyc.store.tables import COPIED, NOT_COPIED, Table
from journeyc.store.targets import shown
from tests.daemon_helpers import clean_env

ROOT = Path(__file__).resolve().parent.parent


def journeyc(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyc", *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _sqlite_column(table: Table, column: str) -> str:
    return "rowid" if (table.name, column) == ("segment_changes", "id") else f'"{column}"'


def sqlite_tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every copied table of the SQLite file at ``path``: rows in key order, JSON
    decoded (PostgreSQL keeps values, not the text), flags as bools."""
    found: dict[str, list[tuple[Any, ...]]] = {}
    with sqlite3.connect(path) as conn:
        for table in COPIED:
            cols = ", ".join(_sqlite_column(table, c) for c in table.columns)
            key = ", ".join(_sqlite_column(table, c) for c in table.key)
            rows = conn.execute(f'SELECT {cols} FROM "{table.name}" ORDER BY {key}').fetchall()
            found[table.name] = [_neutral(table, row) for row in rows]
    return found


def _neutral(table: Table, row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(
        (
            json.loads(v)
            if c in table.json and v is not None
            else bool(v)
            if c in table.flags and v is not None
            else v
        )
        for c, v in zip(table.columns, row, strict=True)
    )


def sequences(path: Path) -> dict[str, int]:
    """The numbers handed out per AUTOINCREMENT table (a fresh store has outbox's 0)."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("SELECT name, seq FROM sqlite_sequence WHERE seq > 0").fetchall())


def pg_last_values(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            t.name: conn.execute(
                "SELECT coalesce(pg_sequence_last_value("
                "pg_get_serial_sequence(%s, %s)::regclass), 0)",
                (t.name, t.identity),
            ).fetchone()[0]
            for t in COPIED
            if t.identity is not None
        }


# ---------------------------------------------------------------- the tables


def test_the_copy_names_every_column_of_every_table_of_both_stores(
    postgres_url: str, tmp_path: Path
) -> None:
    spec = {t.name: set(t.columns) for t in COPIED}
    assert set(spec) == set(TABLES) - NOT_COPIED
    db = tmp_path / "s.db"
    open_store(db).close()
    with sqlite3.connect(db) as conn:
        for name in spec:
            lite = {c for (c,) in conn.execute(f"SELECT name FROM pragma_table_info('{name}')")}
            # SQLite's segment_changes numbers its rows by rowid, copied as the id.
            assert lite == spec[name] - ({"id"} if name == "segment_changes" else set()), name
    with psycopg.connect(postgres_url) as conn:
        for name in spec:
            pg = {
                c
                for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
                    " AND is_generated = 'NEVER'",  # a generated column is the database's
                    (name,),
                )
            }
            assert pg == spec[name], name


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example journeys simulated over the example events into a SQLite store,
    stopped while a user still waits (an instance in flight)."""
    where = tmp_path_factory.mktemp("sim")
    result = journeyc(
        "simulate",
        str(ROOT / "journeys"),
        "--events",
        str(ROOT / "examples" / "events.jsonl"),
        "--catalog",
        str(ROOT / "examples" / "catalog.jsonl"),
        "--until",
        "2026-01-06T00:00:00Z",
        "--db",
        str(where / "sim.db"),
        cwd=where,
    )
    assert result.returncode == 0, result.stderr
    return where / "sim.db"


def test_a_simulated_store_goes_to_postgresql_and_back_unchanged(
    simulated: Path, postgres_url: str, tmp_path: Path
) -> None:
    before = sqlite_tables(simulated)
    for name in ("events", "journeys", "instances", "outbox", "actions", "segment_members"):
        assert before[name], f"the simulation wrote no {name}: the test would prove little"
    url = postgres_url.replace("postgres:@", "postgres:s3cret@")  # trusted: any password
    there = journeyc("store", "copy", str(simulated), url, "--json", cwd=tmp_path)
    assert there.returncode == 0, there.stderr
    report = json.loads(there.stdout)
    assert report["target"] == shown(url) and "s3cret" not in there.stdout + there.stderr
    assert {t["name"]: t["rows"] for t in report["tables"]} == {
        k: len(v) for k, v in before.items()
    }
    assert report["rows"] == sum(len(v) for v in before.values())

    back = tmp_path / "back.db"
    again = journeyc("store", "copy", url, str(back), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "every table's rows counted" in again.stdout
    assert sqlite_tables(back) == before
    # Numbers handed out stay handed out: instances that ended are gone, their ids too.
    assert sequences(back) == sequences(simulated)
    assert pg_last_values(postgres_url) == {
        t.name: sequences(simulated).get(t.name, max((r[0] for r in before[t.name]), default=0))
        for t in COPIED
        if t.identity is not None
    }
    # The copied tables were analyzed: the server plans from their rows.
    with psycopg.connect(postgres_url) as conn:
        analyzed = conn.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'events'"
        ).fetchone()
    assert analyzed is not None and analyzed[0] == len(before["events"])
    # The PostgreSQL store goes on numbering past the copied events.
    with open_store(postgres_url) as store:
        last = max(r[0] for r in before["events"])
        store.append_events(
            [parse_event({"type": "track", "userId": "n", "event": "x", "messageId": "new"}, 1)]
        )
        assert store.events_after(last)[0].seq == last + 1


def test_a_target_with_data_is_refused_and_resume_finishes_a_stopped_copy(
    simulated: Path, postgres_url: str, tmp_path: Path
) -> None:
    assert journeyc("store", "copy", str(simulated), postgres_url, cwd=tmp_path).returncode == 0
    refused = journeyc("store", "copy", str(simulated), postgres_url, cwd=tmp_path)
    assert refused.returncode == 1
    assert "the target holds data" in refused.stderr and "Traceback" not in refused.stderr
    # A copy that stopped after the events: the later tables are empty (each table is
    # copied in one transaction: whole or nothing).
    later = [
        t.name for t in COPIED[COPIED.index(next(t for t in COPIED if t.name == "instances")) :]
    ]
    with psycopg.connect(postgres_url) as conn:
        for table in _pg_tables():  # a sums view's rows are in its totals and deltas
            if table.removesuffix("_totals").removesuffix("_deltas") in later:
                conn.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
    resumed = journeyc(
        "store", "copy", str(simulated), postgres_url, "--resume", "--json", cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    kept = {t["name"] for t in json.loads(resumed.stdout)["tables"] if t["kept"]}
    assert {"events", "profiles", "journeys"} <= kept and not kept & set(later)
    back = tmp_path / "back.db"
    assert journeyc("store", "copy", postgres_url, str(back), cwd=tmp_path).returncode == 0
    assert sqlite_tables(back) == sqlite_tables(simulated)
    # A table neither empty nor whole is no copy that stopped: refused.
    with psycopg.connect(postgres_url) as conn:
        conn.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    partial = journeyc("store", "copy", str(simulated), postgres_url, "--resume", cwd=tmp_path)
    assert partial.returncode == 1 and "events (" in partial.stderr


def test_a_row_postgresql_cannot_hold_undoes_its_table_and_exits_1(
    postgres_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "nul.db"
    with open_store(db) as store:
        store.append_events(
            [
                parse_event({"type": "track", "userId": "u", "event": "a", "messageId": "1"}, 1),
                parse_event(
                    {
                        "type": "track",
                        "userId": "u",
                        "event": "b",
                        "messageId": "2",
                        "properties": {"t": "x\u0000y"},
                    },
                    2,
                ),
            ]
        )
    result = journeyc("store", "copy", str(db), postgres_url, cwd=tmp_path)
    assert result.returncode == 1
    assert "events: PostgreSQL refused a row" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.db", "out.db"], "no store at missing.db"),
        (["same.db", "same.db"], "the same store"),
        (["same.db", "./same.db"], "the same store"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    open_store(tmp_path / "same.db").close()
    result = journeyc("store", "copy", *args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_an_unreachable_target_is_one_line_exit_1(simulated: Path, tmp_path: Path) -> None:
    result = journeyc(
        "store", "copy", str(simulated), "postgresql://a:s3cret@127.0.0.1:1/x", cwd=tmp_path
    )
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "s3cret" not in result.stderr


# ---------------------------------------------------------------- generated stores


_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
).map(lambda v: json.dumps(v, ensure_ascii=False))
_CHOICES = {
    ("instances", "status"): st.sampled_from(["active", "waiting", "completed", "exited"]),
    ("outbox", "status"): st.sampled_from(["queued", "sent", "failed", "suppressed"]),
    ("deliveries", "kind"): st.sampled_from(["delivered", "opened", "bounced"]),
}
_COLUMN_TYPES: dict[str, dict[str, tuple[str, bool]]] = {}


def _types(table: str) -> dict[str, tuple[str, bool]]:
    """Each column's SQLite type and whether it may be NULL (from a fresh store)."""
    if not _COLUMN_TYPES:
        with open_store(":memory:") as store:
            conn = store.conn
            for t in COPIED:
                info = conn.execute(
                    f"SELECT name, type, \"notnull\" FROM pragma_table_info('{t.name}')"
                )
                _COLUMN_TYPES[t.name] = {n: (kind, not bool(nn)) for n, kind, nn in info}
                _COLUMN_TYPES[t.name].setdefault("id", ("INTEGER", False))
    return _COLUMN_TYPES[table]


def _value(table: Table, column: str) -> st.SearchStrategy[Any]:
    if (table.name, column) in _CHOICES:
        return _CHOICES[(table.name, column)]
    kind, nullable = _types(table.name)[column]
    if column == table.identity:
        base: st.SearchStrategy[Any] = st.integers(1, 10**6)
    elif column in table.json:
        base = _JSON
    elif column in table.flags:
        base = st.booleans()
    elif kind == "INTEGER":
        base = st.integers(0, 2**31 - 1)
    elif kind == "REAL":
        base = st.floats(allow_nan=False, allow_infinity=False, width=64)
    else:
        base = _TEXT
    return (st.none() | base) if nullable and column not in table.key else base


@st.composite
def stores(draw: st.DrawFn) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for every copied table: keys unique, instances of deployed versions."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for table in COPIED:
        row = st.tuples(*(_value(table, c) for c in table.columns))
        unique = [table.key_indexes]
        if table.name == "events":
            unique.append((table.columns.index("message_id"),))
        if table.name == "outbox":
            unique.append((table.columns.index("key"),))
        if table.name == "deliveries":
            unique.append(
                tuple(table.columns.index(c) for c in ("outbox_key", "kind", "provider_event_id"))
            )
        if table.name == "instances":
            versions = [r[:2] for r in rows["journeys"]]
            if not versions:
                rows[table.name] = []
                continue
            i, v, u = (table.columns.index(c) for c in ("journey_id", "version", "user_id"))
            row = st.tuples(row, st.sampled_from(versions)).map(
                lambda pair, i=i, v=v: tuple(
                    pair[1][0] if n == i else pair[1][1] if n == v else x
                    for n, x in enumerate(pair[0])
                )
            )
            unique.append((i, u))  # one live instance per journey and user
        drawn = draw(st.lists(row, max_size=4))
        seen: list[set[tuple[Any, ...]]] = [set() for _ in unique]
        kept = []
        for r in drawn:
            keys = [tuple(r[n] for n in idx) for idx in unique]
            if any(k in s for k, s in zip(keys, seen, strict=True)):
                continue
            for k, s in zip(keys, seen, strict=True):
                s.add(k)
            kept.append(r)
        rows[table.name] = kept
    return rows


def _fill(path: Path, rows: dict[str, list[tuple[Any, ...]]], high: int) -> None:
    open_store(path).close()
    with sqlite3.connect(path) as conn:
        for table in COPIED:
            if table.summed:  # the triggers counted the outbox and deliveries rows
                conn.execute(f'DELETE FROM "{table.name}"')
            cols = ", ".join(_sqlite_column(table, c) for c in table.columns)
            marks = ", ".join("?" * len(table.columns))
            conn.executemany(
                f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})', rows[table.name]
            )
            if table.identity is not None and table.name != "segment_changes":
                top = max(
                    (r[table.columns.index(table.identity)] for r in rows[table.name]), default=0
                )
                conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (table.name,))
                if top + high:  # rows deleted past the highest held leave their number
                    conn.execute(
                        "INSERT INTO sqlite_sequence VALUES (?, ?)", (table.name, top + high)
                    )


def _pg_tables() -> list[str]:
    """The PostgreSQL tables behind the copied ones: a sums view's totals and deltas."""
    return [
        name
        for t in COPIED
        for name in ([f"{t.name}_totals", f"{t.name}_deltas"] if t.name in SUMMED else [t.name])
    ]


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=stores(), high=st.integers(0, 3), chunk=st.integers(1, 3))
def test_any_store_goes_to_postgresql_and_back_unchanged(
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    rows: dict[str, list[tuple[Any, ...]]],
    high: int,
    chunk: int,
) -> None:
    where = tmp_path_factory.mktemp("gen")
    with psycopg.connect(postgres_url) as conn:  # one database, emptied per example
        conn.execute(
            sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                sql.SQL(", ").join(sql.Identifier(name) for name in _pg_tables())
            )
        )
    source, back = where / "source.db", where / "back.db"
    _fill(source, rows, high)
    with open_store(source) as src, open_store(postgres_url) as pg:
        report = copy_store(src, pg, chunk=chunk)
    assert {t.name: t.rows for t in report.tables} == {k: len(v) for k, v in rows.items()}
    with open_store(postgres_url) as pg, open_store(back) as dst:
        copy_store(pg, dst, chunk=chunk)
        if report.rows:
            with pytest.raises(CopyError, match="holds data"):
                copy_store(pg, dst)
    assert sqlite_tables(back) == sqlite_tables(source)
    assert sequences(back) == sequences(source)
