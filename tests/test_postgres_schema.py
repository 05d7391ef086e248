"""The PostgreSQL store's schema is the SQLite store's: the same tables and columns."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from journeyc.store import StoreError, open_store
from journeyc.store.postgres import SCHEMA_VERSION
from journeyc.store.postgres.schema import PARTITIONED, POSTGRES_TABLES
from journeyc.store.sqlite.schema import TABLES
from tests.store_contract.calls import track

# SQLite orders the segment changes of one instant by rowid; PostgreSQL needs a column.
# The partitions (PostgreSQL's migration 9): a generated column and an index per table.
EXTRA = {("segment_changes", "id")} | {(table, "part") for table in PARTITIONED}
PARTITION_INDEXES = {"events_part_seq", "instances_part_due", "segment_members_part_recheck"}


def test_the_tables_and_columns_are_the_sqlite_stores(postgres_url: str, tmp_path: Path) -> None:
    db = tmp_path / "journeyc.db"
    open_store(db).close()
    with sqlite3.connect(db) as conn:
        lite = {
            (t, c)
            for t in TABLES
            for (c,) in conn.execute(f"SELECT name FROM pragma_table_info('{t}')")
        }
    open_store(postgres_url).close()
    with psycopg.connect(postgres_url) as conn:
        pg = set(
            conn.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name <> 'schema_version'"
            ).fetchall()
        )
    assert {(t, c) for t, c in pg if t not in POSTGRES_TABLES} - EXTRA == lite
    assert {t for t, _ in pg} >= set(POSTGRES_TABLES)


def test_the_indexes_are_the_sqlite_stores(postgres_url: str, tmp_path: Path) -> None:
    db = tmp_path / "journeyc.db"
    open_store(db).close()
    with sqlite3.connect(db) as conn:
        lite = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        }
    with psycopg.connect(postgres_url) as conn:
        # Leaving out the ones PostgreSQL names itself (primary keys, UNIQUE columns).
        pg = {
            name
            for (name,) in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
                " AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'"
            )
        }
    assert pg - PARTITION_INDEXES == lite
    assert pg >= PARTITION_INDEXES


def test_text_with_a_nul_character_is_a_store_error_writing_nothing(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        with pytest.raises(StoreError, match="NUL"):
            store.append_events([track("a"), track("b", user="x\x00y")])
        assert store.events_after(0) == []


def test_stores_opening_an_empty_database_at_once_migrate_it_once(
    empty_postgres_url: str,
) -> None:
    def opened(_: int) -> int:
        with open_store(empty_postgres_url) as store:
            return store.schema_version

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(opened, range(4))) == [SCHEMA_VERSION] * 4
    with psycopg.connect(empty_postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


def test_the_reports_sums_follow_the_outbox_and_deliveries_as_in_sqlite(
    postgres_url: str, tmp_path: Path
) -> None:
    # The same writes on both stores (the engine's and the dispatcher's, as SQL):
    # the triggers leave the same sums.
    writes = [
        "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, status,"
        " created_at) VALUES ('k1', 'j', 'u', 's', 'email', 'm', 'queued', 7200000),"
        " ('k2', 'j', 'u', 's', 'email', 'm', 'queued', 7200001),"
        " ('k3', 'j', 'u', 's', 'push', 'm', 'suppressed', 7200002),"
        " ('k4', 'j', 'u', 's', 'push', 'm', 'queued', 3600000)",
        "UPDATE outbox SET status = 'sent', attempts = 1 WHERE key = 'k1'",
        "UPDATE outbox SET attempts = 2 WHERE key = 'k2'",
        "UPDATE outbox SET status = 'failed', attempts = 3 WHERE key = 'k2'",
        "INSERT INTO deliveries (outbox_key, kind, at, received_at, journey_id, user_id,"
        " channel, provider_event_id) VALUES ('k1', 'opened', 7300000, 0, 'j', 'u', NULL, 'e1'),"
        " ('k1', 'opened', 7300001, 0, 'j', 'u', NULL, 'e2'),"
        " ('k4', 'delivered', 3600001, 0, 'j', 'u', 'push', 'e3')",
    ]
    reads = {
        "outbox": "SELECT journey_id, channel, hour, status, retried <> 0, n FROM outbox_counts"
        " WHERE n <> 0 ORDER BY 1, 2, 3, 4, 5",
        "deliveries": "SELECT journey_id, channel, hour, kind, n FROM delivery_counts"
        " ORDER BY 1, 2, 3, 4",
    }
    db = tmp_path / "journeyc.db"
    open_store(db).close()
    with sqlite3.connect(db) as lite:
        for statement in writes:
            lite.execute(statement)
        expected = {k: [tuple(r) for r in lite.execute(q)] for k, q in reads.items()}
    with psycopg.connect(postgres_url) as conn:
        for statement in writes:
            conn.execute(statement.replace("retried <> 0", "retried"))
        got = {
            k: [tuple(r) for r in conn.execute(q.replace("retried <> 0", "retried"))]
            for k, q in reads.items()
        }
    assert expected["outbox"]  # the test writes what the sums count
    assert got == expected
    # The daemon folds the deltas (migration 11) into the totals: the sums stay.
    with open_store(postgres_url) as store:
        assert store.upkeep().fold_sums() > 0
        assert store.upkeep().fold_sums() == 0
    with psycopg.connect(postgres_url) as conn:
        folded = {
            k: [tuple(r) for r in conn.execute(q.replace("retried <> 0", "retried"))]
            for k, q in reads.items()
        }
        deltas = conn.execute("SELECT count(*) FROM outbox_counts_deltas").fetchone()
    assert folded == expected and deltas == (0,)
