"""Events for the contract suite, made directly (the store takes them validated)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import psycopg

from journeyc.events import ALIAS, IDENTIFY, PREVIOUS_ID, Event
from journeyc.store.open import is_url, open_store

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


def log_actions(target: str, rows: list[ActionRow]) -> None:
    """Log ``rows`` through the store's engine unit of work, which adds them to the
    reports' hourly sums in the same transaction (each store by its own rule)."""
    with closing(open_store(target)) as store, store.transaction():
        unit = store.runtime()
        unit.log_actions(rows)
        unit.end()
