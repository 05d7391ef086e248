"""The dashboard's reads (store/abc.py's DashboardReads, ``store.open.dashboard_reads``)
and the metrics' snapshot (``store.open.reading_at``) on every store, by path or URL:
read-only, one snapshot per read, the store checked before it is served."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from journeyc.store.abc import Store
from journeyc.store.errors import DatabaseError, OperationalError, StoreError
from journeyc.store.open import dashboard_reads, is_url, reading_at
from journeyc.store.report_ranges import HOUR_MS
from journeyc.store.rows import Entry, JourneyTotals, UserHit
from tests.store_contract.calls import alias, identify, log_actions, track, write_rows
from tests.store_contract.test_open import known_version, set_version
from tests.store_contract.test_report_reads import action, deploy, entries, outbox

H0 = 493_000 * HOUR_MS  # an hour's start in 2026 (day H0 // 24 h)
DAY = H0 // HOUR_MS // 24


def _fill(target: str, store: Store) -> None:
    store.append_events(
        [
            identify("1", "ann", at=H0, email="Ann@Example.com"),
            identify("2", "anna", at=H0, email=7),  # not an e-mail: no hit by it
            identify("3", "bob", at=H0),
            track("4", "anon", at=H0 + 1),
            alias("5", "anon", "ann", at=H0 + 2),
        ]
    )
    deploy(target, "j", ("v1", H0, False), ("v2", H0 + 5, True))
    deploy(target, "k", ("v1", H0 + 1, False))
    entries(
        target,
        [("j", "ann", H0 + 10, H0 + 20, "A", False), ("k", "ann", H0 + 30, None, None, True)],
    )
    log_actions(
        target,
        [
            (H0 + 10, "ann", "j", None, "enter", "{}"),
            (H0 + 20, "ann", "j", None, "goal", "{}"),
            (H0 + 25 * HOUR_MS, "bob", "j", None, "enter", "{}"),
            action(H0 + 25 * HOUR_MS + 1, "j", "s", "send", channel="inapp"),
            action(H0 + 25 * HOUR_MS + 2, "k", "s", "suppress", reason="cap"),
        ],
    )
    outbox(
        target, [("m1", "j", "inapp", "sent", 1, H0 + 40), ("m2", "j", "email", "sent", 1, H0 + 50)]
    )
    write_rows(target, "UPDATE outbox SET user_id = 'ann', sent_at = created_at", [()])


def test_the_dashboard_reads_a_store(target: str, store: Store) -> None:
    _fill(target, store)
    reads = dashboard_reads(target)
    reads.check()
    assert reads.path == store.path
    assert [(d.journey_id, d.version, d.active) for d in reads.deployed()] == [
        ("j", "v2", True),
        ("k", "v1", False),  # none active: the latest
    ]
    assert reads.latest_activity() == H0 + 25 * HOUR_MS + 2
    assert reads.journey_totals(H0, H0 + 48 * HOUR_MS) == {
        "j": JourneyTotals("j", 2, 1, 1, 0, {DAY: 1, DAY + 1: 1}),
        "k": JourneyTotals("k", 0, 0, 0, 1, {}),
    }
    # Whole hours: the range is widened to the hours it touches.
    assert reads.journey_totals(H0 + 1, H0 + 2)["j"].entries == 1
    ann = UserHit("ann", "Ann@Example.com")
    # anon's profile (of its event before the alias) stays: found by its id too.
    assert reads.find_users("an") == [ann, UserHit("anna", None), UserHit("anon", None)]
    assert reads.find_users("ann@example.COM") == [ann]
    assert reads.find_users("anon") == [UserHit("anon", None), ann]  # and the user it names
    assert reads.find_users("zed") == []
    # The e-mail index reads any value as text (both stores): found, with no e-mail.
    assert reads.find_users("7") == [UserHit("anna", None)]
    assert reads.find_users("a", limit=1) == [ann]
    user = reads.user("anon")
    assert user is not None and user.user_id == "ann" and user.aliases == ["anon"]
    assert user.traits == {"email": "Ann@Example.com"}
    assert user.entries == [
        Entry("k", 1, H0 + 30, None, None, True),
        Entry("j", 1, H0 + 10, H0 + 20, "A", False),
    ]
    assert [(m.message, m.sent_at) for m in user.inbox] == [("m", H0 + 40)]
    assert [a.action for a in user.actions] == ["goal", "enter"]
    assert reads.user("nobody") is None
    assert reads.user("bob") is not None  # a profile, nothing else


def test_the_dashboards_store_is_read_only(target: str, store: Store) -> None:
    _fill(target, store)
    with dashboard_reads(target).store() as ro:
        with ro.report_reads() as q:
            assert q.journey_ids() == ["j", "k"]
        assert ro.get_profile("ann")["email"] == "Ann@Example.com"
        with pytest.raises(DatabaseError):
            ro.set_traits("ann", {"plan": "pro"}, H0)
    assert "plan" not in store.get_profile("ann")


def test_reading_at_reads_one_snapshot(target: str, store: Store) -> None:
    store.append_events([track("1"), track("2")])
    with reading_at(target) as r:
        assert r.count_events() == 2
        store.append_events([track("3")])
        assert r.count_events() == 2 and r.last_seq() == 2
    with reading_at(target) as r:
        assert r.count_events() == 3


def test_a_database_that_is_no_store_is_refused_naming_it(
    request: pytest.FixtureRequest, tmp_path: Path, target: str
) -> None:
    if is_url(target):
        where: str = request.getfixturevalue("empty_postgres_url")
        with psycopg.connect(where) as conn:
            conn.execute("CREATE TABLE other (x integer)")
    else:
        where = str(tmp_path / "other.db")
        with closing(sqlite3.connect(where)) as conn:
            conn.execute("CREATE TABLE other (x integer)")
    with pytest.raises(StoreError, match="not a journeyc store"):
        dashboard_reads(where).check()


def test_a_server_that_cannot_be_reached_is_named_without_the_password() -> None:
    url = "postgresql://me:s3cret@127.0.0.1:1/journeyc?connect_timeout=2"
    # Operational (a scrape skips it, the API answers 503), as a store gone mid-read.
    with pytest.raises(OperationalError) as caught:
        dashboard_reads(url).check()
    assert "127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)
    with pytest.raises(OperationalError) as caught, reading_at(url):
        pass
    assert "127.0.0.1" in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_store_of_another_version_is_refused_naming_it(
    target: str, store: Store, offset: int
) -> None:
    known = known_version(target)
    store.close()
    set_version(target, known + offset)
    with pytest.raises(StoreError) as caught:
        dashboard_reads(target).check()
    said = str(caught.value)
    assert said.startswith(f"{store.path}: a store of schema version {known + offset}, ")
    if offset < 0:  # read-only: it says how to upgrade it
        assert f"older than this journeyc's ({known})" in said and "upgrade it once" in said
    else:
        assert said.endswith(f"from a newer journeyc (this one reads {known})")
