"""Scheduled entries: ``every day at 10:00 for dormant``, ``every 6h for everyone``.

A schedule fires in each user's local time, so the engine keeps one row per
(journey, trigger, time zone in use) in the ``schedules`` table with the next time
it fires there. When that time comes, the engine enters the audience — the
segment's members (or everyone) whose zone it is — in batches, recording how far it
got (``after_user``), so a large audience never holds the write lock for long and a
crash mid-way resumes where it stopped. Then the row moves to the next firing.
The rows are the ledger: a firing missed while the daemon was down runs when it
comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from journeyc.compile import ir
from journeyc.engine.aggregates import from_ms, to_ms
from journeyc.engine.localtime import next_interval_time, next_local_time, user_zone
from journeyc.store.abc import ScheduleRows
from journeyc.store.rows import ScheduleRowValues

__all__ = ["Firing", "ScheduleBook", "ScheduleRowValues", "next_fire"]


def next_fire(trigger: ir.ScheduleTrigger, zone: ZoneInfo, after_ms: int) -> int:
    """The first time strictly after ``after_ms`` at which ``trigger`` fires in
    ``zone``. An interval (``every 6h``) runs on a grid from local midnight of
    2000-01-01 in the zone: 00:00, 06:00, 12:00, 18:00 local."""
    after = from_ms(after_ms)
    if trigger.interval is not None:
        anchor = datetime(2000, 1, 1, tzinfo=zone)
        return to_ms(next_interval_time(after, trigger.interval, anchor))
    assert trigger.hour is not None and trigger.minute is not None
    return to_ms(next_local_time(after, trigger.hour, trigger.minute, zone, trigger.day))


@dataclass(frozen=True, slots=True)
class Firing:
    """One due row: a journey's trigger in one zone, and how far its audience got."""

    journey_id: str
    trigger_index: int
    zone: str
    trigger: ir.ScheduleTrigger
    next_at: int
    after_user: str | None


class ScheduleBook:
    """The schedules' rows (in the store's ``schedules``), and the audiences of their
    firings."""

    def __init__(self, rows: ScheduleRows, default_zone: ZoneInfo) -> None:
        self.rows = rows
        self.default = default_zone
        self.zones: set[str] = {default_zone.key}
        self._triggers: dict[tuple[str, int], ir.ScheduleTrigger] = {}
        # keep: this book writes every change to the table (the simulator), so the
        # earliest next_at, once read, stays known until it writes again.
        self.keep = False
        self._next: tuple[int | None] | None = None

    def _zone(self, name: str | None) -> ZoneInfo:
        return user_zone({"timezone": name}, self.default)

    def deploy(self, journeys: Mapping[str, ir.JourneyIR], now_ms: int) -> None:
        """Make the rows match the active journeys' schedules in every zone in use. A
        trigger that is unchanged keeps its row (and its progress); a new or changed
        one first fires at its next time at or after ``now_ms``."""
        self.zones, self._triggers, rows = self.planned(journeys, now_ms)
        self._next = None
        self.rows.replace(rows)

    def planned(
        self, journeys: Mapping[str, ir.JourneyIR], now_ms: int
    ) -> tuple[set[str], dict[tuple[str, int], ir.ScheduleTrigger], list[ScheduleRowValues]]:
        """What :meth:`deploy` would make of ``journeys`` at ``now_ms``, writing
        nothing (``journeyc plan`` reads it): the zones in use, the scheduled
        triggers by (journey, trigger index), and the rows (journey, trigger, zone,
        spec, next_at, after_user)."""
        zones = {self.default.key} | {self._zone(name).key for name in self.rows.zone_names()}
        triggers = {
            (jid, i): t
            for jid, j in journeys.items()
            for i, t in enumerate(j.triggers)
            if isinstance(t, ir.ScheduleTrigger)
        }
        kept: list[ScheduleRowValues] = [
            row
            for row in self.rows.rows()
            if (t := triggers.get((row[0], row[1]))) is not None
            and t.model_dump_json() == row[3]
            and row[2] in zones
        ]
        have = {(jid, i, zone) for jid, i, zone, *_ in kept}
        fresh: list[ScheduleRowValues] = [
            (jid, i, zone, t.model_dump_json(), next_fire(t, ZoneInfo(zone), now_ms - 1), None)
            for (jid, i), t in sorted(triggers.items())
            for zone in sorted(zones)
            if (jid, i, zone) not in have
        ]
        return zones, triggers, kept + fresh

    def add_zone(self, name: object, now_ms: int) -> None:
        """A profile now names ``name`` as its zone: give every schedule a row there."""
        zone = self._zone(name if isinstance(name, str) else None)
        if zone.key in self.zones:
            return
        self.zones.add(zone.key)
        self._next = None
        self.rows.add(
            [
                (jid, i, zone.key, t.model_dump_json(), next_fire(t, zone, now_ms - 1))
                for (jid, i), t in sorted(self._triggers.items())
            ],
        )

    def next_due(self) -> int | None:
        """When the earliest firing is due."""
        if self._next is not None:
            return self._next[0]
        nxt = self.rows.next_at()
        if self.keep:
            self._next = (nxt,)
        return nxt

    def due(self, now_ms: int) -> Firing | None:
        """The earliest firing due by ``now_ms`` (ties: by journey, trigger, zone)."""
        if self._next is not None and (self._next[0] is None or self._next[0] > now_ms):
            return None
        row = self.rows.due(now_ms)
        if row is None:
            return None
        jid, i, zone, spec, next_at, after = row
        return Firing(jid, i, zone, ir.ScheduleTrigger.model_validate_json(spec), next_at, after)

    def audience(self, f: Firing, limit: int) -> tuple[list[str], str | None]:
        """The next users of the firing's audience in its zone, and the last user id
        looked at (None when the audience is exhausted)."""
        rows = self.rows.audience(f.trigger.segment, f.after_user, limit)
        users = [u for u, tz in rows if self._zone(tz).key == f.zone]
        last = rows[-1][0] if len(rows) == limit else None
        return users, last

    def progress(self, f: Firing, after_user: str | None) -> None:
        """Record how far the firing got; at the end, move it to its next time."""
        self._next = None
        if after_user is not None:
            self.rows.set_after_user(f.journey_id, f.trigger_index, f.zone, after_user)
            return
        nxt = next_fire(f.trigger, ZoneInfo(f.zone), f.next_at)
        self.rows.set_next_at(f.journey_id, f.trigger_index, f.zone, nxt)
