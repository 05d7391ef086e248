"""The store's tables and the migrations that build them.

``MIGRATIONS[i]`` takes a store from schema version ``i`` to ``i + 1``; the version
lives in ``PRAGMA user_version``. A migration is a tuple of statements rather than
a script because ``executescript`` would commit the enclosing transaction.
Append new migrations; never edit one that has shipped.

Tables are STRICT, so a value of the wrong type is refused by SQLite itself.
Times are UTC epoch milliseconds; JSON columns hold text. Row ids that other rows
or readers refer to (event ``seq``, instance and outbox ids, action ``seq``) use
AUTOINCREMENT, so a deleted row's id is never handed out again: after
``forget_user`` removes the newest events, a reused ``seq`` would sit behind the
engine's cursor and never be read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from journeyc.store.errors import SchemaVersionError, StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    """One step of the schema: what it does, and its statements."""

    description: str
    statements: tuple[str, ...]


_V1 = Migration(
    "events, profiles, journeys, instances, entries, outbox, actions, cursor",
    (
        """CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id TEXT NOT NULL UNIQUE,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            at INTEGER NOT NULL,
            props TEXT NOT NULL,
            received_at INTEGER NOT NULL
        ) STRICT""",
        "CREATE INDEX events_user_name_at ON events (user_id, name, at)",
        # trait_at maps each trait (also removed ones) to the time of its last write,
        # so an identify that arrives late cannot undo a newer change.
        """CREATE TABLE profiles (
            user_id TEXT PRIMARY KEY,
            traits TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            trait_at TEXT NOT NULL DEFAULT '{}'
        ) STRICT""",
        """CREATE TABLE journeys (
            id TEXT NOT NULL,
            version TEXT NOT NULL,
            ir TEXT NOT NULL,
            source TEXT NOT NULL,
            deployed_at INTEGER NOT NULL,
            active INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (id, version)
        ) STRICT""",
        """CREATE TABLE instances (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            journey_id TEXT NOT NULL,
            version TEXT NOT NULL,
            user_id TEXT NOT NULL,
            entry_no INTEGER NOT NULL,
            node TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('active', 'waiting', 'completed', 'exited')),
            entered_at INTEGER NOT NULL,
            wake_at INTEGER,
            waiting_for TEXT,
            vars TEXT NOT NULL DEFAULT '{}',
            arm TEXT,
            holdout INTEGER NOT NULL DEFAULT 0,
            FOREIGN KEY (journey_id, version) REFERENCES journeys (id, version)
        ) STRICT""",
        """CREATE UNIQUE INDEX instances_live ON instances (journey_id, user_id)
            WHERE status IN ('active', 'waiting')""",
        "CREATE INDEX instances_due ON instances (status, wake_at)",
        "CREATE INDEX instances_waiting_for ON instances (waiting_for, user_id)",
        "CREATE INDEX instances_user ON instances (user_id)",
        """CREATE TABLE entries (
            journey_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            entry_no INTEGER NOT NULL,
            entered_at INTEGER NOT NULL,
            goal_at INTEGER,
            PRIMARY KEY (journey_id, user_id, entry_no)
        ) STRICT""",
        "CREATE INDEX entries_user ON entries (user_id)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            instance_id INTEGER REFERENCES instances (id) ON DELETE SET NULL,
            journey_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            step TEXT NOT NULL,
            channel TEXT,
            message TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL
                CHECK (status IN ('queued', 'sent', 'failed', 'suppressed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            created_at INTEGER NOT NULL,
            sent_at INTEGER,
            error TEXT
        ) STRICT""",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        "CREATE INDEX outbox_user ON outbox (user_id, created_at)",
        "CREATE INDEX outbox_instance ON outbox (instance_id)",
        """CREATE TABLE actions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at INTEGER NOT NULL,
            user_id TEXT NOT NULL,
            journey_id TEXT,
            step TEXT,
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        ) STRICT""",
        "CREATE INDEX actions_user ON actions (user_id)",
        "CREATE INDEX actions_journey ON actions (journey_id, at)",
        """CREATE TABLE cursor (
            name TEXT PRIMARY KEY,
            seq INTEGER NOT NULL
        ) STRICT""",
        # Small named values the daemon keeps: generated write key and admin token.
        """CREATE TABLE settings (
            name TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT""",
    ),
)

_V2 = Migration(
    "segments, segment membership and changes, schedules, product catalog, outbox claims",
    (
        # Aggregates over all users (segment refresh, best sellers) read one event name
        # over a time range.
        "CREATE INDEX events_name_at ON events (name, at)",
        # The definition each segment's memberships were computed with: a changed
        # definition is evaluated again for everyone.
        """CREATE TABLE segments (
            name TEXT PRIMARY KEY,
            hash TEXT NOT NULL,
            expr TEXT NOT NULL,
            refreshed_at INTEGER
        ) STRICT""",
        # One row per evaluated (user, segment); recheck_at is the earliest time the
        # clock alone can change the answer (NULL: only the user's data can).
        """CREATE TABLE segment_members (
            user_id TEXT NOT NULL,
            segment TEXT NOT NULL,
            member INTEGER NOT NULL CHECK (member IN (0, 1)),
            since INTEGER NOT NULL,
            recheck_at INTEGER,
            PRIMARY KEY (user_id, segment)
        ) STRICT, WITHOUT ROWID""",
        "CREATE INDEX segment_members_segment ON segment_members (segment, member)",
        """CREATE INDEX segment_members_recheck ON segment_members (recheck_at)
            WHERE recheck_at IS NOT NULL""",
        """CREATE TABLE segment_changes (
            segment TEXT NOT NULL,
            user_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            entered INTEGER NOT NULL CHECK (entered IN (0, 1))
        ) STRICT""",
        "CREATE INDEX segment_changes_segment_at ON segment_changes (segment, at)",
        "CREATE INDEX segment_changes_user ON segment_changes (user_id)",
        # `every …` entries: the next time each (journey, trigger) fires in each zone;
        # after_user is how far a firing has got through its audience (NULL: not begun).
        """CREATE TABLE schedules (
            journey_id TEXT NOT NULL,
            trigger INTEGER NOT NULL,
            zone TEXT NOT NULL,
            spec TEXT NOT NULL,
            next_at INTEGER NOT NULL,
            after_user TEXT,
            PRIMARY KEY (journey_id, trigger, zone)
        ) STRICT""",
        "CREATE INDEX schedules_next ON schedules (next_at)",
        """CREATE TABLE products (
            id TEXT PRIMARY KEY,
            name TEXT,
            brand TEXT,
            category TEXT,
            price REAL,
            url TEXT,
            image TEXT,
            in_stock INTEGER NOT NULL DEFAULT 1 CHECK (in_stock IN (0, 1)),
            extra TEXT NOT NULL DEFAULT '{}',
            updated_at INTEGER NOT NULL
        ) STRICT""",
        # Which dispatcher holds a row's lease: a daemon starting on the store takes
        # back the rows a dead one had claimed instead of waiting out their lease.
        "ALTER TABLE outbox ADD COLUMN claimed_by TEXT",
        # Every user the log names has a profile row from v2 on (traits or not): the
        # users a v1 store logged without an identify get theirs here.
        """INSERT INTO profiles (user_id, traits, updated_at)
            SELECT DISTINCT user_id, '{}', 0 FROM events WHERE true
            ON CONFLICT (user_id) DO NOTHING""",
        "CREATE INDEX products_category ON products (category)",
        "CREATE INDEX products_brand ON products (brand)",
    ),
)

_OUTBOX_V3_COLS = (
    "id, key, instance_id, journey_id, user_id, step, channel, message, content, status, "
    "attempts, next_attempt_at, created_at, sent_at, error, claimed_by"
)

_V3 = Migration(
    "instances hold live instances only, entries their arm and holdout; fewer indexes",
    (
        # An entry's split arm and holdout, kept with the entry for good (A/B
        # reports: entries and goals per arm); they lived on the instance row only.
        "ALTER TABLE entries ADD COLUMN arm TEXT",
        "ALTER TABLE entries ADD COLUMN holdout INTEGER NOT NULL DEFAULT 0",
        """UPDATE entries SET (arm, holdout) = (
            SELECT i.arm, i.holdout FROM instances i WHERE i.journey_id = entries.journey_id
            AND i.user_id = entries.user_id AND i.entry_no = entries.entry_no)
            WHERE EXISTS (SELECT 1 FROM instances i WHERE i.journey_id = entries.journey_id
            AND i.user_id = entries.user_id AND i.entry_no = entries.entry_no)""",
        # An instance's row goes when it ends (its story stays in entries and
        # actions): nothing read the finished ones, and writing them, then deleting
        # them at retention, was most of the instance writes.
        "DELETE FROM instances WHERE status NOT IN ('active', 'waiting')",
        "DROP INDEX instances_waiting_for",  # no query reads it
        "DROP INDEX instances_due",
        "CREATE INDEX instances_due ON instances (wake_at) WHERE status = 'waiting'",
        "DROP INDEX actions_journey",  # no query reads it
        # The outbox without its foreign key to instances (which now go when they
        # end): instance_id stays as the id of the instance that queued the row.
        # Instance ids are still never handed out twice (see Runtime.flush).
        """CREATE TABLE outbox_v3 (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL UNIQUE,
            instance_id INTEGER,
            journey_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            step TEXT NOT NULL,
            channel TEXT,
            message TEXT NOT NULL,
            content TEXT NOT NULL DEFAULT '{}',
            status TEXT NOT NULL
                CHECK (status IN ('queued', 'sent', 'failed', 'suppressed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            created_at INTEGER NOT NULL,
            sent_at INTEGER,
            error TEXT,
            claimed_by TEXT
        ) STRICT""",
        f"INSERT INTO outbox_v3 ({_OUTBOX_V3_COLS}) SELECT {_OUTBOX_V3_COLS} FROM outbox",
        # Ids of deleted rows are not handed out again: the sequence comes along.
        """INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v3', 0
            WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'outbox_v3')""",
        """UPDATE sqlite_sequence SET seq = max(seq, coalesce(
            (SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0))
            WHERE name = 'outbox_v3'""",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_v3 RENAME TO outbox",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        "CREATE INDEX outbox_user ON outbox (user_id, created_at)",
    ),
)

_V4 = Migration(
    "identities: the ids merged into another user (anonymous to known)",
    (
        # alias → the canonical user it names (docs/semantics.md, "Identity: anonymous
        # to known"); written when an alias event is logged, so every event logged
        # after it names the canonical user. A canonical user is never an alias.
        """CREATE TABLE identities (
            alias TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            linked_at INTEGER NOT NULL
        ) STRICT, WITHOUT ROWID""",
        # A merge moves a user's aliases along; forgetting a user forgets them all.
        "CREATE INDEX identities_user ON identities (user_id)",
    ),
)

_V5 = Migration(
    "deliveries: what providers report after a send (delivered, opened, bounced, ...)",
    (
        # One row per provider report, keyed by the outbox row's key (the idempotency
        # key the provider got with the send). A provider that repeats a report (same
        # event id) adds nothing: the unique index makes the webhook idempotent.
        """CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            outbox_key TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN (
                'delivered', 'opened', 'clicked', 'bounced', 'complained', 'unsubscribed'
            )),
            at INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            journey_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            channel TEXT,
            provider_event_id TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}'
        ) STRICT""",
        """CREATE UNIQUE INDEX deliveries_report
            ON deliveries (outbox_key, kind, provider_event_id)""",
        "CREATE INDEX deliveries_journey ON deliveries (journey_id, at)",
        "CREATE INDEX deliveries_user ON deliveries (user_id)",
    ),
)

_OUTBOX_COUNT = """INSERT INTO outbox_counts (journey_id, channel, hour, status, retried, n)
            VALUES (NEW.journey_id, NEW.channel, NEW.created_at / 3600000, NEW.status,
                NEW.attempts > 1, 1)
            ON CONFLICT (journey_id, channel, hour, status, retried) DO UPDATE SET n = n + 1;"""

_V6 = Migration(
    "journey reports: sums of actions, outbox rows and provider reports per hour; indexes",
    (
        # Sends, suppressions and exits per journey, hour, step and label: a report
        # sums a few thousand rows instead of scanning millions of actions. The
        # runtime adds each batch it logs (store/sqlite/action_counts.py).
        """CREATE TABLE action_counts (
            journey_id TEXT NOT NULL,
            hour INTEGER NOT NULL,
            step TEXT NOT NULL,
            action TEXT NOT NULL,
            label TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (journey_id, hour, step, action, label)
        ) STRICT, WITHOUT ROWID""",
        # The sums of what was logged before this version (the SQL of v6's time,
        # written out: a migration never changes once shipped).
        """INSERT INTO action_counts (journey_id, hour, step, action, label, n)
            SELECT journey_id, at / 3600000, coalesce(step, ''), action,
                CASE action WHEN 'send' THEN coalesce(json_extract(detail, '$.channel'), '')
                WHEN 'suppress' THEN coalesce(json_extract(detail, '$.reason'), '')
                WHEN 'exit' THEN coalesce(json_extract(detail, '$.reason'), '') ELSE '' END,
                count(*)
            FROM actions WHERE journey_id IS NOT NULL GROUP BY 1, 2, 3, 4, 5""",
        # Outbox rows (sends, not suppressions) per journey, channel, hour queued,
        # status and whether tried more than once, kept by triggers as rows are
        # queued and change status; retention deletes rows, not their counts.
        """CREATE TABLE outbox_counts (
            journey_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            hour INTEGER NOT NULL,
            status TEXT NOT NULL,
            retried INTEGER NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (journey_id, channel, hour, status, retried)
        ) STRICT, WITHOUT ROWID""",
        """INSERT INTO outbox_counts (journey_id, channel, hour, status, retried, n)
            SELECT journey_id, channel, created_at / 3600000, status, attempts > 1, count(*)
            FROM outbox WHERE channel IS NOT NULL AND status != 'suppressed'
            GROUP BY 1, 2, 3, 4, 5""",
        f"""CREATE TRIGGER outbox_counts_insert AFTER INSERT ON outbox
            WHEN NEW.channel IS NOT NULL AND NEW.status != 'suppressed'
            BEGIN {_OUTBOX_COUNT} END""",
        f"""CREATE TRIGGER outbox_counts_update AFTER UPDATE OF status, attempts ON outbox
            WHEN NEW.channel IS NOT NULL AND NEW.status != 'suppressed'
                AND (OLD.status != NEW.status OR (OLD.attempts > 1) != (NEW.attempts > 1))
            BEGIN
                UPDATE outbox_counts SET n = n - 1 WHERE journey_id = OLD.journey_id
                    AND channel = OLD.channel AND hour = OLD.created_at / 3600000
                    AND status = OLD.status AND retried = (OLD.attempts > 1);
                {_OUTBOX_COUNT}
            END""",
        # Messages with a provider report of each kind, counted at the first report
        # of that kind for the message (its outbox key) to arrive.
        """CREATE TABLE delivery_counts (
            journey_id TEXT NOT NULL,
            channel TEXT NOT NULL,
            hour INTEGER NOT NULL,
            kind TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (journey_id, channel, hour, kind)
        ) STRICT, WITHOUT ROWID""",
        """INSERT INTO delivery_counts (journey_id, channel, hour, kind, n)
            SELECT d.journey_id,
                coalesce(d.channel,
                    (SELECT o.channel FROM outbox o WHERE o.key = d.outbox_key), ''),
                d.at / 3600000, d.kind, count(*)
            FROM deliveries d WHERE NOT EXISTS (SELECT 1 FROM deliveries e
                WHERE e.outbox_key = d.outbox_key AND e.kind = d.kind AND e.id < d.id)
            GROUP BY 1, 2, 3, 4""",
        """CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
            WHEN NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.outbox_key = NEW.outbox_key
                AND e.kind = NEW.kind AND e.id < NEW.id)
            BEGIN
                INSERT INTO delivery_counts (journey_id, channel, hour, kind, n)
                VALUES (NEW.journey_id, coalesce(NEW.channel,
                    (SELECT o.channel FROM outbox o WHERE o.key = NEW.outbox_key), ''),
                    NEW.at / 3600000, NEW.kind, 1)
                ON CONFLICT (journey_id, channel, hour, kind) DO UPDATE SET n = n + 1;
            END""",
        # The partial hours at a report's edges read the rows by journey and time.
        "CREATE INDEX actions_journey_at ON actions (journey_id, at)",
        "CREATE INDEX outbox_journey_at ON outbox (journey_id, created_at)",
        # Entries per group (holdout, arm) in index order, with their goal: a report
        # reads the index alone.
        """CREATE INDEX entries_report
            ON entries (journey_id, holdout, arm, entered_at, goal_at)""",
        # The converted entries in order of their time to goal: the median is read
        # at an offset of this index instead of sorting the conversions.
        """CREATE INDEX entries_to_goal ON entries (journey_id, goal_at - entered_at, entered_at)
            WHERE goal_at IS NOT NULL""",
    ),
)

_V7 = Migration(
    "profiles_email: the dashboard finds a user by e-mail",
    (
        # The user search of /ui (store/sqlite/ui.py) matches the profile's e-mail in
        # any case: an index on that expression, not a scan of every profile.
        "CREATE INDEX profiles_email ON profiles (lower(traits ->> '$.email'))",
    ),
)

_V8 = Migration(
    "leases: which engine worker holds which partition of the users, until when",
    (
        # One row per partition held (or held once: an expired row is taken over in
        # place). Times are epoch milliseconds of the store's clock.
        """CREATE TABLE leases (
            partition INTEGER PRIMARY KEY,
            worker_id TEXT NOT NULL,
            heartbeat_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        ) STRICT""",
        "CREATE INDEX leases_worker ON leases (worker_id)",
    ),
)

_V9 = Migration(
    "outbox_channel_due: a channel's due sends in order, whatever the other channels hold",
    (
        # The dispatcher claims each channel's earliest due sends (store/sqlite/outbox.py
        # claim). By outbox_due (status, next_attempt_at) a claim for one channel walked
        # every due row of the others first: a backlog on one channel (a slow provider)
        # made every other channel's claim pay for it. Partial: a sent row leaves it.
        # The same index on PostgreSQL (its migration 11).
        """CREATE INDEX outbox_channel_due ON outbox (channel, next_attempt_at, id)
            WHERE status = 'queued'""",
    ),
)

MIGRATIONS: tuple[Migration, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7, _V8, _V9)
"""Every migration in order; ``len(MIGRATIONS)`` is the version this code writes."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this code knows."""

TABLES = (
    "events",
    "profiles",
    "journeys",
    "instances",
    "entries",
    "outbox",
    "actions",
    "cursor",
    "settings",
    "segments",
    "segment_members",
    "segment_changes",
    "schedules",
    "products",
    "identities",
    "deliveries",
    "action_counts",
    "outbox_counts",
    "delivery_counts",
    "leases",
)
"""The tables of the current schema."""


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file (0 for a new file)."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)`` and return that version.

    ``conn`` must be in autocommit mode (``isolation_level=None``) with no open
    transaction. All pending migrations run in one ``BEGIN IMMEDIATE`` transaction:
    a failure leaves the file as it was. The version is read again under the write
    lock, so two processes opening a new file at once migrate it once.
    """
    known = len(migrations)
    found = user_version(conn)
    if found == known:
        return known
    if found > known:
        raise SchemaVersionError(found, known)
    conn.execute("BEGIN IMMEDIATE")
    try:
        found = user_version(conn)
        if found > known:
            raise SchemaVersionError(found, known)
        if found == 0 and _has_tables(conn):
            raise StoreError("the file holds tables but is not a journeyc store")
        for migration in migrations[found:]:
            for statement in migration.statements:
                conn.execute(statement)
        # PRAGMA takes no parameters; ``known`` is an int we computed.
        conn.execute(f"PRAGMA user_version = {known:d}")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return known


def _has_tables(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1"
    ).fetchone()
    return row is not None
