"""The tables a store holds, as ``journeyc store copy`` moves them between stores.

Both stores hold the same tables and columns (tests/test_postgres_schema.py); what
differs is how values are kept: JSON as text in SQLite and ``jsonb`` in PostgreSQL,
flags as 0/1 and ``boolean``. A copy moves rows in one neutral form, whatever the
stores: JSON columns as JSON text, flags as ``bool``, everything else as the driver
reads it (``int``, ``float``, ``str``, ``None``). Each store converts its own
(:class:`~journeyc.store.abc.TableDump`, :class:`~journeyc.store.abc.TableLoad`).

Rows are read in the order of each table's primary key, a chunk at a time, the next
chunk past the last key read (keyset paging: no ``OFFSET`` rescans). Tables are loaded
in :data:`COPIED` order, so a row is loaded after the rows it refers to (an instance
after its journey's version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["COPIED", "NOT_COPIED", "Row", "Table"]

Row: TypeAlias = tuple[Any, ...]
"""One row of a table, its columns in the table's order (or one key's values)."""


@dataclass(frozen=True, slots=True)
class Table:
    """One table as a copy moves it.

    ``key``: the primary key, the order rows are read in. ``json`` and ``flags``: the
    columns that hold JSON text and booleans. ``identity``: the column the store
    numbers itself (an event's ``seq``, an instance's ``id``): copied as it is, and
    the store's numbering goes on after the highest number the source handed out.
    ``summed``: the reports' sums that triggers keep as outbox rows and delivery
    reports are written, so loading those rows fills them too; a copy replaces them
    with the source's afterwards (the source's survive its retention, which deletes
    the rows they counted).
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    json: frozenset[str] = field(default_factory=frozenset)
    flags: frozenset[str] = field(default_factory=frozenset)
    identity: str | None = None
    summed: bool = False

    @property
    def key_indexes(self) -> tuple[int, ...]:
        """Where the key's columns are in a row."""
        return tuple(self.columns.index(c) for c in self.key)


def _table(
    name: str,
    columns: str,
    key: str,
    *,
    json: str = "",
    flags: str = "",
    identity: str | None = None,
    summed: bool = False,
) -> Table:
    return Table(
        name,
        tuple(columns.split()),
        tuple(key.split()),
        frozenset(json.split()),
        frozenset(flags.split()),
        identity,
        summed,
    )


COPIED: tuple[Table, ...] = (
    _table(
        "events",
        "seq message_id user_id name at props received_at",
        "seq",
        json="props",
        identity="seq",
    ),
    _table("profiles", "user_id traits updated_at trait_at", "user_id", json="traits trait_at"),
    _table("identities", "alias user_id linked_at", "alias"),
    _table("journeys", "id version ir source deployed_at active", "id version", flags="active"),
    _table(
        "instances",
        "id journey_id version user_id entry_no node status entered_at wake_at waiting_for"
        " vars arm holdout",
        "id",
        json="vars",
        flags="holdout",
        identity="id",
    ),
    _table(
        "entries",
        "journey_id user_id entry_no entered_at goal_at arm holdout",
        "journey_id user_id entry_no",
        flags="holdout",
    ),
    _table(
        "outbox",
        "id key instance_id journey_id user_id step channel message content status attempts"
        " next_attempt_at created_at sent_at error claimed_by",
        "id",
        json="content",
        identity="id",
    ),
    _table(
        "actions",
        "seq at user_id journey_id step action detail",
        "seq",
        json="detail",
        identity="seq",
    ),
    _table(
        "deliveries",
        "id outbox_key kind at received_at journey_id user_id channel provider_event_id detail",
        "id",
        json="detail",
        identity="id",
    ),
    _table("segments", "name hash expr refreshed_at", "name"),
    _table(
        "segment_members",
        "user_id segment member since recheck_at",
        "user_id segment",
        flags="member",
    ),
    _table(
        "segment_changes",
        "id segment user_id at entered",
        "id",
        flags="entered",
        identity="id",
    ),
    _table(
        "schedules",
        "journey_id trigger zone spec next_at after_user",
        "journey_id trigger zone",
    ),
    _table(
        "products",
        "id name brand category price url image in_stock extra updated_at",
        "id",
        json="extra",
        flags="in_stock",
    ),
    _table("settings", "name value", "name"),
    _table("cursor", "name seq", "name"),
    _table(
        "action_counts",
        "journey_id hour step action label n",
        "journey_id hour step action label",
    ),
    _table(
        "outbox_counts",
        "journey_id channel hour status retried n",
        "journey_id channel hour status retried",
        flags="retried",
        summed=True,
    ),
    _table(
        "delivery_counts",
        "journey_id channel hour kind n",
        "journey_id channel hour kind",
        summed=True,
    ),
)
"""Every table a copy moves, in the order it loads them."""

NOT_COPIED = frozenset({"leases", "workers"})
"""Tables a copy leaves out: the engine workers' partition leases and membership
(``workers``, as several workers share a store) belong to the processes running on a
store, not to its data."""
