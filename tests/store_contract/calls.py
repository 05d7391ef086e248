"""Events for the contract suite, made directly (the store takes them validated)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg

from journeyc.events import ALIAS, IDENTIFY, PREVIOUS_ID, Event
from journeyc.store.open import is_url

T0 = 1_700_000_000_000


def track(
    mid: str, user: str = "u1", name: str = "product_viewed", at: int = T0, **props: Any
) -> Event:
    return Event(mid, user, "track", name, at, props, at)


def identify(mid: str, user: str = "u1", at: int = T0, **traits: Any) -> Event:
    return Event(mid, user, "identify", IDENTIFY, at, traits, at)


def alias(mid: str, previous: str, user: str, at: int = T0) -> Event:
    return Event(mid, user, "alias", ALIAS, at, {PREVIOUS_ID: previous}, at)


def write_rows(target: str, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """Write ``rows`` with ``statement`` (``?`` placeholders) through the database's own
    driver: rows the engine writes through parts a store may not have yet."""
    if is_url(target):
        with psycopg.connect(target) as conn, conn.cursor() as cur:
            cur.executemany(statement.replace("?", "%s"), rows)
    else:
        with sqlite3.connect(target) as conn:
            conn.executemany(statement, rows)


def read_rows(target: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows ``query`` (``?`` placeholders) reads, through the database's own
    driver: what the store wrote, seen from outside it."""
    if is_url(target):
        with psycopg.connect(target) as conn:
            return [tuple(r) for r in conn.execute(query.replace("?", "%s"), params).fetchall()]
    with sqlite3.connect(target) as conn:
        return [tuple(r) for r in conn.execute(query, params).fetchall()]


ActionRow = tuple[int, str, str | None, str | None, str, str]
"""``(at, user, journey, step, action, detail JSON)``, as the engine logs an action."""


def log_actions(target: str, rows: list[ActionRow], *, apart: bool = False) -> None:
    """Log ``rows`` in the action log and add them to the reports' hourly sums, each
    store by its own rule (the engine's unit of work does both in one transaction);
    on PostgreSQL in one statement, or ``apart``: inserted, then summed."""
    # Imported here: the stores' modules, as their runtimes call them.
    from journeyc.store.postgres import action_counts as postgres
    from journeyc.store.sqlite.action_counts import add_logged, last_seq

    insert = "INSERT INTO actions (at, user_id, journey_id, step, action, detail) VALUES"
    if is_url(target):
        with psycopg.connect(target) as conn, conn.cursor() as cur:
            if apart:
                cur.executemany(f"{insert} (%s, %s, %s, %s, %s, %s::jsonb)", rows)
                postgres.add_actions(conn, rows)
            else:
                postgres.log_actions(conn, rows)
    else:
        with sqlite3.connect(target) as conn:
            after = last_seq(conn)
            conn.executemany(f"{insert} (?, ?, ?, ?, ?, ?)", rows)
            add_logged(conn, after)
