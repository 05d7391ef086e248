"""The engine's rows: instances, entries, outbox and actions, over one connection.

Kept beside the store (not in the engine) so that another store can offer the same
calls; every statement is prepared once by sqlite3's statement cache.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

_LIVE = "('active', 'waiting')"
_INSTANCE_COLS = (
    "id, journey_id, version, user_id, entry_no, node, status, entered_at, "
    "wake_at, waiting_for, vars, arm, holdout"
)


@dataclass(slots=True)
class Instance:
    """A user's entry into a journey version, and where it stands."""

    id: int
    journey_id: str
    version: str
    user_id: str
    entry_no: int
    node: str
    status: str
    entered_at: int
    wake_at: int | None = None
    waiting_for: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    arm: str | None = None
    holdout: bool = False

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Instance:
        """An instance from a row of ``_INSTANCE_COLS`` (``vars`` is JSON there)."""
        values = list(row)
        values[10] = json.loads(values[10])
        values[12] = bool(values[12])
        return cls(*values)


class Runtime:
    """The engine's queries and writes; callers hold the transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    # ------------------------------------------------------------ journeys
    def deploy(self, journey_id: str, version: str, ir_json: str, source: str, at_ms: int) -> None:
        """Record a journey version as deployed and make it the active one."""
        self.conn.execute(
            "UPDATE journeys SET active = 0 WHERE id = ? AND version != ?", (journey_id, version)
        )
        self.conn.execute(
            "INSERT INTO journeys (id, version, ir, source, deployed_at, active) "
            "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (id, version) DO UPDATE SET active = 1",
            (journey_id, version, ir_json, source, at_ms),
        )

    def versions(self) -> list[tuple[str, str, str, bool]]:
        """Every deployed (id, version, ir JSON, active)."""
        rows = self.conn.execute("SELECT id, version, ir, active FROM journeys ORDER BY id")
        return [(r[0], r[1], r[2], bool(r[3])) for r in rows]

    # ------------------------------------------------------------ instances
    def live(self, user_id: str) -> list[Instance]:
        """The user's running instances, by journey id."""
        rows = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE user_id = ? AND status IN {_LIVE} "
            "ORDER BY journey_id",
            (user_id,),
        )
        return [Instance.from_row(r) for r in rows]

    def live_in(self, journey_id: str, user_id: str) -> Instance | None:
        """The user's running instance of a journey, if any."""
        row = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE journey_id = ? AND user_id = ? "
            f"AND status IN {_LIVE}",
            (journey_id, user_id),
        ).fetchone()
        return Instance.from_row(row) if row else None

    def due(self, now_ms: int, limit: int) -> list[Instance]:
        """Waiting instances whose timer is due, earliest first (then oldest)."""
        rows = self.conn.execute(
            f"SELECT {_INSTANCE_COLS} FROM instances WHERE status = 'waiting' "
            "AND wake_at <= ? ORDER BY wake_at, id LIMIT ?",
            (now_ms, limit),
        )
        return [Instance.from_row(r) for r in rows]

    def next_wake(self) -> int | None:
        """The earliest pending timer."""
        row = self.conn.execute(
            "SELECT MIN(wake_at) FROM instances WHERE status = 'waiting'"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def create(self, inst: Instance) -> Instance:
        """Insert a new instance (its ``id`` is assigned) and its entry record."""
        cur = self.conn.execute(
            "INSERT INTO instances (journey_id, version, user_id, entry_no, node, status, "
            "entered_at, wake_at, waiting_for, vars, arm, holdout) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                inst.journey_id,
                inst.version,
                inst.user_id,
                inst.entry_no,
                inst.node,
                inst.status,
                inst.entered_at,
                inst.wake_at,
                inst.waiting_for,
                json.dumps(inst.vars),
                inst.arm,
                int(inst.holdout),
            ),
        )
        assert cur.lastrowid is not None
        inst.id = cur.lastrowid
        self.conn.execute(
            "INSERT INTO entries (journey_id, user_id, entry_no, entered_at) VALUES (?, ?, ?, ?)",
            (inst.journey_id, inst.user_id, inst.entry_no, inst.entered_at),
        )
        return inst

    def save(self, inst: Instance) -> None:
        """Write back an instance's state."""
        self.conn.execute(
            "UPDATE instances SET node = ?, status = ?, wake_at = ?, waiting_for = ?, vars = ?, "
            "arm = ? WHERE id = ?",
            (
                inst.node,
                inst.status,
                inst.wake_at,
                inst.waiting_for,
                json.dumps(inst.vars),
                inst.arm,
                inst.id,
            ),
        )

    # ------------------------------------------------------------ entries and goals
    def last_entry(self, journey_id: str, user_id: str) -> tuple[int, int, int | None] | None:
        """The user's latest entry into a journey: (entry_no, entered_at, goal_at)."""
        row = self.conn.execute(
            "SELECT entry_no, entered_at, goal_at FROM entries WHERE journey_id = ? "
            "AND user_id = ? ORDER BY entry_no DESC LIMIT 1",
            (journey_id, user_id),
        ).fetchone()
        return (int(row[0]), int(row[1]), row[2]) if row else None

    def record_goal(self, journey_id: str, user_id: str, entry_no: int, at_ms: int) -> None:
        """Mark an entry as converted."""
        self.conn.execute(
            "UPDATE entries SET goal_at = ? WHERE journey_id = ? AND user_id = ? AND entry_no = ?",
            (at_ms, journey_id, user_id, entry_no),
        )

    # ------------------------------------------------------------ outbox and actions
    def sends_since(self, user_id: str, since_ms: int, journey_id: str | None) -> int:
        """Messages queued or sent to the user after ``since_ms`` (by one journey, or all)."""
        if journey_id is None:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE user_id = ? AND created_at > ? "
                "AND status != 'suppressed'",
                (user_id, since_ms),
            ).fetchone()
        else:
            row = self.conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE user_id = ? AND created_at > ? "
                "AND status != 'suppressed' AND journey_id = ?",
                (user_id, since_ms, journey_id),
            ).fetchone()
        return int(row[0])

    def queue(
        self,
        key: str,
        inst: Instance,
        step: str,
        channel: str | None,
        message: str,
        content: dict[str, Any],
        at_ms: int,
        status: str = "queued",
        error: str | None = None,
    ) -> bool:
        """Put a send in the outbox once per key; False when the key was already there."""
        cur = self.conn.execute(
            "INSERT INTO outbox (key, instance_id, journey_id, user_id, step, channel, message, "
            "content, status, next_attempt_at, created_at, error) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (
                key,
                inst.id,
                inst.journey_id,
                inst.user_id,
                step,
                channel,
                message,
                json.dumps(content, ensure_ascii=False),
                status,
                at_ms if status == "queued" else None,
                at_ms,
                error,
            ),
        )
        return cur.rowcount == 1

    def log_actions(self, rows: Iterable[tuple[int, str, str, str | None, str, str]]) -> None:
        """Append (at, user, journey, step, action, detail JSON) rows to the action log."""
        self.conn.executemany(
            "INSERT INTO actions (at, user_id, journey_id, step, action, detail) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
