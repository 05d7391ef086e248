"""Opening a store by where it is: schema versions, foreign data, bad targets."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from journeyc.store import SCHEMA_VERSION, SchemaVersionError, StoreError, open_store, postgres
from journeyc.store.abc import Store
from journeyc.store.open import is_url
from journeyc.store.postgres import shown_url
from tests.store_contract.calls import track
from tests.store_contract.conftest import Opener


def set_version(target: str, version: int) -> None:
    """Record ``version`` as the store's schema version (0: no journeyc store), as a
    journeyc that wrote it would have."""
    if is_url(target):
        with psycopg.connect(target, autocommit=True) as conn:
            if version:
                conn.execute("UPDATE schema_version SET version = %s", (version,))
            else:
                conn.execute("DROP TABLE schema_version")
    else:
        with sqlite3.connect(target) as conn:
            conn.execute(f"PRAGMA user_version = {version:d}")


def known_version(target: str) -> int:
    """The schema version this journeyc writes for a store of ``target``'s kind."""
    return postgres.SCHEMA_VERSION if is_url(target) else SCHEMA_VERSION


def test_reopening_keeps_the_data_and_the_version(
    target: str, store: Store, open_again: Opener
) -> None:
    store.append_events([track("a")])
    store.close()
    again = open_again()
    assert [e.message_id for e in again.events_after(0)] == ["a"]
    assert again.schema_version == known_version(target)


def test_the_stores_versions_name_the_same_tables() -> None:
    # Up to SQLite's version a version names the same tables in either store (store
    # copy relies on it; SQLite's 9 is an index, which PostgreSQL's 11 adds, and
    # tests/test_postgres_schema.py compares the indexes); PostgreSQL's later ones are
    # its own (the partition columns, the workers' table), and say so.
    versions = [m.version for m in postgres.MIGRATIONS]
    assert SCHEMA_VERSION in versions
    own = [m for m in postgres.MIGRATIONS if m.version > SCHEMA_VERSION]
    assert [m.version for m in own] == list(range(SCHEMA_VERSION + 1, postgres.SCHEMA_VERSION + 1))
    assert all("(PostgreSQL only)" in m.description for m in own)


def test_a_newer_store_is_refused(target: str, open_again: Opener) -> None:
    open_again().close()
    set_version(target, 99)
    with pytest.raises(SchemaVersionError) as info:
        open_again()
    assert (info.value.found, info.value.known) == (99, known_version(target))
    assert "upgrade journeyc" in str(info.value)


def test_data_that_is_no_journeyc_store_is_refused(target: str, open_again: Opener) -> None:
    open_again().close()
    set_version(target, 0)
    with pytest.raises(StoreError, match="not a journeyc store"):
        open_again()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret@127.0.0.1:1/journeyc",  # nothing listens on port 1
        "postgres://alice:s3cret@127.0.0.1:notaport/journeyc",
        "postgresql://alice@127.0.0.1:1/journeyc?password=s3cret",
    ],
)
def test_an_unreachable_server_or_a_bad_url_is_a_store_error_without_the_password(
    url: str,
) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert message.startswith("postgres")
    assert "cannot open the PostgreSQL store" in message


def test_the_path_of_a_store_names_it_without_a_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgres:@", "postgres:unused-password@")
    with open_store(url) as store:  # trust authentication: any password is fine
        assert "unused-password" not in store.path
        assert store.path == shown_url(postgres_url)
        assert store.path.startswith("postgresql://postgres@")


def test_shown_url_keeps_everything_but_the_password() -> None:
    assert (
        shown_url("postgresql://bob:pw@db.example:5433/jc?sslmode=require&password=pw")
        == "postgresql://bob@db.example:5433/jc?sslmode=require"
    )
    assert shown_url("postgresql:///jc?host=/run/pg") == "postgresql:///jc?host=/run/pg"


def test_a_path_opens_the_sqlite_store() -> None:
    with open_store(":memory:") as store:
        assert store.path == ":memory:"
        assert not is_url(":memory:")
