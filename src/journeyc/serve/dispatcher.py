"""The outbox dispatcher: hands queued sends to channel providers, once each.

:meth:`Dispatcher.run_once` works in three steps, and never calls a provider inside
a transaction — ingest and the engine write the same file, and a slow SMTP server
must not hold its write lock:

1. **Claim**, in one short transaction: the due rows (``status = 'queued'`` and
   ``next_attempt_at <= now``, by ``next_attempt_at`` then ``id``) and their
   profiles. Claiming moves each row's ``next_attempt_at`` a lease into the future,
   so a second dispatcher on the same file skips them, and a dispatcher that dies
   mid-batch leaves them to be retried when the lease runs out — or at once, when a
   daemon starts on the store and :meth:`Dispatcher.reclaim` takes back the rows
   another (dead) dispatcher had claimed.
2. **Send** each row through its channel's provider, outside any transaction.
3. **Record** the outcomes in one short transaction at the end of the run (or each
   :data:`RECORD_EVERY_S` when a slow provider makes the run long): ``sent``
   (``sent_at``, ``attempts + 1``); a retry (``attempts + 1``, ``next_attempt_at``
   after an exponential backoff, ``error``); or ``failed`` (a permanent error, no
   provider for the channel, or the last attempt spent; ``error`` says which).

Delivery is at least once, made effectively once by the key. A row is marked sent
only after its provider accepted it, and the outbox key travels to the receiver as
an idempotency key (``Idempotency-Key`` header, SMTP ``Message-ID``). A crash
between the provider's acceptance and the mark re-sends the message with the same
key when the lease expires, and the receiver can drop the copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from journeyc.channels.base import OutboundMessage, PermanentError, Provider, TransientError
from journeyc.store import Store

__all__ = ["DispatchStats", "Dispatcher", "backoff_ms"]

log = logging.getLogger(__name__)

RECORD_EVERY_S = 1.0
"""The longest a delivered row waits to be marked: outcomes are written once per run
(one transaction, not one per row), or sooner when a slow provider makes the run long.
A crash before the mark re-sends the row with the same key (see above)."""

_ROW_COLS = "id, key, journey_id, user_id, step, channel, message, content, attempts"


@dataclass(frozen=True, slots=True)
class DispatchStats:
    """What one :meth:`Dispatcher.run_once` did: rows sent, rows to retry, rows failed."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        """Rows handled in the run."""
        return self.sent + self.retried + self.failed


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    attempts: int
    msg: OutboundMessage | None
    error: str | None


def backoff_ms(key: str, attempts: int, base_delay_s: float, max_delay_s: float) -> int:
    """The wait before the next try of row ``key`` after its ``attempts``-th failure.

    ``base · 2^(attempts-1)``, capped at ``max_delay_s``, then scaled into its upper
    half by a jitter drawn from the key and the attempt: rows that failed together
    do not all come back at once, and the schedule is the same on every run.
    """
    ceiling = min(max_delay_s, base_delay_s * 2.0 ** max(0, attempts - 1)) * 1000.0
    digest = hashlib.blake2b(f"{key}:{attempts}".encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return max(1, round(ceiling * (0.5 + 0.5 * fraction)))


class Dispatcher:
    """Delivers due outbox rows of ``store`` through ``providers`` (by channel).

    Safe to run from a scheduler thread while other threads use the store: its
    transactions are short and it calls providers outside them. Runs of one
    dispatcher are serialized. :meth:`open` gives the dispatcher a connection of
    its own. The daemon shares its engine's store instead, so that their write
    transactions queue on the store's lock; the one read outside a transaction,
    :meth:`next_due`, may then see a row the engine has not committed yet, which at
    worst arms a run that finds nothing to do.
    """

    def __init__(
        self,
        store: Store,
        providers: Mapping[str, Provider],
        *,
        max_attempts: int = 8,
        base_delay_s: float = 5,
        max_delay_s: float = 3600,
        batch: int = 100,
        lease_s: float = 900,
    ) -> None:
        if max_attempts < 1 or batch < 1:
            raise ValueError("max_attempts and batch must be at least 1")
        if base_delay_s <= 0 or max_delay_s < base_delay_s or lease_s <= 0:
            raise ValueError("delays must be positive, with max_delay_s >= base_delay_s")
        self.store = store
        self.providers = dict(providers)
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.batch = batch
        self.lease_ms = round(lease_s * 1000)
        self.id = uuid.uuid4().hex  # marks the rows this dispatcher has claimed
        self._run_lock = threading.Lock()
        self._owns_store = False

    @classmethod
    def open(cls, path: Path | str, providers: Mapping[str, Provider], **kwargs: Any) -> Dispatcher:
        """A dispatcher with its own connection to the store at ``path``;
        :meth:`close` closes that connection (not the providers)."""
        dispatcher = cls(Store.open(path), providers, **kwargs)
        dispatcher._owns_store = True
        return dispatcher

    def close(self) -> None:
        """Close the store connection if this dispatcher opened it."""
        if self._owns_store:
            self.store.close()
            self._owns_store = False

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def next_due(self) -> int | None:
        """When the earliest queued row is due (epoch ms), or None when none is queued:
        the time to arm the next run for."""
        row = self.store.conn.execute(
            "SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'queued'"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def reclaim(self, now_ms: int) -> int:
        """Make the rows other dispatchers claimed and never recorded due at
        ``now_ms``; return how many. Only for a dispatcher that knows it is the only
        one on the store (the daemon, at start): the others are dead, and their
        receivers drop a repeat by its idempotency key."""
        with self.store.transaction() as conn:
            cur = conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_by = NULL WHERE status = 'queued'"
                " AND claimed_by IS NOT NULL AND claimed_by != ?",
                (now_ms, self.id),
            )
        return cur.rowcount

    def run_once(self, now_ms: int) -> DispatchStats:
        """Deliver up to ``batch`` rows due at ``now_ms``; return what happened.

        Call again while the result's ``handled`` equals ``batch`` to drain a backlog.
        """
        with self._run_lock:
            sent = retried = failed = 0
            outcomes = _Outcomes()
            try:
                for row in self._claim(now_ms):
                    outcome = self._deliver(row, now_ms, outcomes)
                    if outcome == "sent":
                        sent += 1
                    elif outcome == "retry":
                        retried += 1
                    else:
                        failed += 1
                    if outcomes.due():
                        self._record(outcomes)
            finally:
                self._record(outcomes)
            return DispatchStats(sent, retried, failed)

    # ------------------------------------------------------------ steps

    def _claim(self, now_ms: int) -> list[_Claimed]:
        with self.store.transaction() as conn:
            rows = conn.execute(
                f"SELECT {_ROW_COLS} FROM outbox WHERE status = 'queued' "
                "AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
                (now_ms, self.batch),
            ).fetchall()
            if not rows:
                return []
            conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, claimed_by = ?"
                " WHERE id IN (SELECT value FROM json_each(?))",
                (now_ms + self.lease_ms, self.id, json.dumps([row[0] for row in rows])),
            )
            profiles = self.store.get_profiles(list(dict.fromkeys(row[3] for row in rows)))
        claimed = []
        for rid, key, journey, user, step, channel, message, content, attempts in rows:
            if channel is None:
                claimed.append(_Claimed(rid, attempts, None, "the row has no channel"))
                continue
            if channel not in self.providers:
                reason = f"no provider for channel `{channel}`"
                claimed.append(_Claimed(rid, attempts, None, reason))
                continue
            try:
                loaded = json.loads(content)
            except ValueError:
                loaded = None
            if not isinstance(loaded, dict):
                claimed.append(_Claimed(rid, attempts, None, "the row's content is not an object"))
                continue
            fields = {str(k): str(v) for k, v in loaded.items()}
            msg = OutboundMessage(
                key, channel, user, journey, step, message, fields, profiles[user]
            )
            claimed.append(_Claimed(rid, attempts, msg, None))
        return claimed

    def _deliver(self, row: _Claimed, now_ms: int, outcomes: _Outcomes) -> str:
        if row.msg is None:
            self._fail(row, row.error or "undeliverable", outcomes)
            return "failed"
        msg = row.msg
        try:
            self.providers[msg.channel].send(msg)
        except PermanentError as exc:
            self._fail(row, exc.reason, outcomes)
            return "failed"
        except TransientError as exc:
            return self._retry(row, now_ms, exc.reason, exc.retry_after_s, outcomes)
        except Exception as exc:
            # A provider bug must not stop the batch or lose the row: count it as a
            # transient failure so the row is retried, then fails with the reason.
            log.exception("provider for %s raised on %s", msg.channel, msg.key)
            reason = f"provider error: {type(exc).__name__}: {exc}"
            return self._retry(row, now_ms, reason, None, outcomes)
        outcomes.sent.setdefault(now_ms, []).append(row.id)
        return "sent"

    def _retry(
        self,
        row: _Claimed,
        now_ms: int,
        reason: str,
        hint_s: float | None,
        outcomes: _Outcomes,
    ) -> str:
        attempts = row.attempts + 1
        assert row.msg is not None
        if attempts >= self.max_attempts:
            self._fail(row, f"gave up after {attempts} attempts: {reason}", outcomes)
            return "failed"
        delay = backoff_ms(row.msg.key, attempts, self.base_delay_s, self.max_delay_s)
        if hint_s is not None:
            delay = max(delay, round(min(hint_s, self.max_delay_s) * 1000))
        outcomes.retried.append((attempts, now_ms + delay, reason, row.id))
        log.info("retrying %s in %d ms: %s", row.msg.key, delay, reason)
        return "retry"

    def _fail(self, row: _Claimed, reason: str, outcomes: _Outcomes) -> None:
        attempts = row.attempts + (1 if row.msg is not None else 0)
        outcomes.failed.append((attempts, reason, row.id))
        key = row.msg.key if row.msg is not None else f"row {row.id}"
        log.warning("failed %s: %s", key, reason)

    def _record(self, outcomes: _Outcomes) -> None:
        """Write the outcomes noted so far in one transaction, and forget them."""
        if not (outcomes.sent or outcomes.retried or outcomes.failed):
            return
        with self.store.transaction() as conn:
            for sent_at, ids in outcomes.sent.items():
                conn.execute(
                    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1, "
                    "next_attempt_at = NULL, error = NULL, claimed_by = NULL "
                    # `+status`: look the rows up by id, not by scanning the queue.
                    "WHERE id IN (SELECT value FROM json_each(?)) AND +status = 'queued'",
                    (sent_at, json.dumps(ids)),
                )
            if outcomes.retried:
                conn.executemany(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, error = ?, "
                    "claimed_by = NULL WHERE id = ? AND status = 'queued'",
                    outcomes.retried,
                )
            if outcomes.failed:
                conn.executemany(
                    "UPDATE outbox SET status = 'failed', attempts = ?, next_attempt_at = NULL, "
                    "error = ?, claimed_by = NULL WHERE id = ? AND status = 'queued'",
                    outcomes.failed,
                )
        outcomes.clear()


class _Outcomes:
    """Outcomes of one run not written yet: parameters of the ``sent``, retry and
    ``failed`` updates. They are written together, at the end of the run or once
    :data:`RECORD_EVERY_S` has passed since the last write (a slow provider)."""

    def __init__(self) -> None:
        self.sent: dict[int, list[int]] = {}  # sent_at → row ids
        self.retried: list[tuple[int, int, str, int]] = []
        self.failed: list[tuple[int, str, int]] = []
        self.since = time.monotonic()

    def due(self) -> bool:
        return time.monotonic() - self.since >= RECORD_EVERY_S

    def clear(self) -> None:
        self.sent, self.retried, self.failed = {}, [], []
        self.since = time.monotonic()
