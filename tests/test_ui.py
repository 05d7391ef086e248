"""The dashboard without a browser: ``journeyc ui`` end to end (read-only, exit codes,
login), the session cookie, the graph layout and the store reads."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from journeyc.cli.common import load_valid
from journeyc.compile import ir
from journeyc.compile.graph import Arrow, Box, Drawing, draw
from journeyc.compile.layout import layered_layout
from journeyc.compile.lower import lower_project
from journeyc.engine.buckets import bucket
from journeyc.reports.build import build_report
from journeyc.serve.ui.session import Sessions
from journeyc.store.sqlite.schema import MIGRATIONS, migrate
from journeyc.store.sqlite.ui import DashboardReads
from tests.conftest import ROOT
from tests.daemon_helpers import clean_env, poll, serve_once
from tests.demo_events import simulate_demo


@pytest.fixture(scope="module")
def sim_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store ``journeyc simulate`` filled with 150 demo shoppers."""
    return simulate_demo(tmp_path_factory.mktemp("sim"), users=150, seed=5)


def _ui(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return serve_once(args, cwd, command="ui")


class Viewer:
    """A running ``journeyc ui`` process and its URL."""

    def __init__(self, db: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.err = db.parent / f"ui-{time.monotonic_ns()}.stderr"
        with self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "journeyc", "ui", "--db", str(db), "--port", "0", *args],
                env=env or clean_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

        def url() -> str | None:
            assert self.proc.poll() is None, self.err.read_text()
            text = self.err.read_text()
            return text.split("listening on ", 1)[1].split()[0] if "listening on " in text else None

        self.url = poll(url, 30, "journeyc ui to listen")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture()
def viewer(sim_db: Path) -> Iterator[Viewer]:
    v = Viewer(sim_db)
    yield v
    v.stop()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- journeyc ui


@pytest.mark.e2e
def test_ui_serves_every_page_of_a_simulation_and_changes_nothing(
    sim_db: Path, viewer: Viewer
) -> None:
    before = _digest(sim_db)
    reads = DashboardReads(sim_db)
    user = reads.find_users("shopper-0000")[0].user_id
    for path in (
        "/ui",
        "/ui?range=7d",
        "/ui?range=all",
        "/ui/journeys/cart_recovery",
        "/ui/journeys/second_purchase_test",
        f"/ui/users/{user}",
        "/ui/users?q=nobody",
        "/ui/static/dashboard.css",
    ):
        reply = httpx.get(viewer.url + path, timeout=10)
        assert reply.status_code == 200, (path, reply.text[:300])
    page = httpx.get(viewer.url + "/ui?range=all", timeout=10).text
    assert 'data-testid="entries-cart_recovery"' in page
    assert "read-only" in page
    assert httpx.get(viewer.url + "/ui/journeys/nope", timeout=10).status_code == 404
    assert httpx.get(viewer.url + "/ui/users/nobody-at-all", timeout=10).status_code == 404
    assert _digest(sim_db) == before


@pytest.mark.e2e
def test_ui_pages_hold_no_link_to_another_host(viewer: Viewer) -> None:
    for path in ("/ui", "/ui/journeys/cart_recovery"):
        page = httpx.get(viewer.url + path, timeout=10).text
        assert "http://" not in page and "https://" not in page, path
        csp = httpx.get(viewer.url + path, timeout=10).headers["content-security-policy"]
        assert "default-src 'self'" in csp


@pytest.mark.e2e
def test_ui_with_a_token_asks_for_it(sim_db: Path) -> None:
    v = Viewer(sim_db, env=clean_env(JOURNEYC_ADMIN_TOKEN="s3cret"))
    try:
        reply = httpx.get(v.url + "/ui", timeout=10)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/ui/login")
        bad = httpx.post(v.url + "/ui/login", data={"token": "nope", "next": "/ui"}, timeout=10)
        assert bad.status_code == 401 and "not the admin token" in bad.text
        good = httpx.post(v.url + "/ui/login", data={"token": "s3cret", "next": "/ui"}, timeout=10)
        assert good.status_code == 303
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
        assert "s3cret" not in cookie
        # An outside address after login is refused: no open redirect.
        off = httpx.post(
            v.url + "/ui/login", data={"token": "s3cret", "next": "//evil.example/"}, timeout=10
        )
        assert off.headers["location"] == "/ui"
        huge = httpx.post(v.url + "/ui/login", data={"token": "x" * 100_000}, timeout=10)
        assert huge.status_code == 413 and "set-cookie" not in huge.headers
        session = {"journeyc_ui": good.cookies["journeyc_ui"]}
        assert httpx.get(v.url + "/ui", cookies=session, timeout=10).status_code == 200
    finally:
        v.stop()


@pytest.mark.e2e
def test_ui_exit_codes(tmp_path: Path) -> None:
    missing = _ui("--db", "nope.db", cwd=tmp_path)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not a database")
    bad = _ui("--db", str(junk), cwd=tmp_path)
    assert bad.returncode == 1 and "not a journeyc store" in bad.stderr
    assert "Traceback" not in bad.stderr
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, MIGRATIONS[:4])
    conn.close()
    before = _digest(old)
    stale = _ui("--db", str(old), cwd=tmp_path)
    assert stale.returncode == 1 and "journeyc status --db" in stale.stderr
    assert _digest(old) == before
    open_host = _ui("--db", str(junk), "--host", "0.0.0.0", cwd=tmp_path)
    assert open_host.returncode == 2 and "--token" in open_host.stderr


# ---------------------------------------------------------------- reads


def test_reads_find_users_by_id_prefix_and_email(sim_db: Path) -> None:
    reads = DashboardReads(sim_db)
    hit = reads.find_users("shopper-00003")[0]
    assert hit.user_id == "shopper-00003" and hit.email is not None
    assert [h.user_id for h in reads.find_users(hit.email)] == ["shopper-00003"]
    assert [h.user_id for h in reads.find_users(hit.email.upper())] == ["shopper-00003"]
    assert reads.find_users("nobody") == []


@pytest.mark.e2e
def test_ab_table_of_a_holdout_without_a_split_shows_the_messaged_group(
    sim_db: Path, viewer: Viewer
) -> None:
    # cart_recovery has `holdout 5%` and no split: messaged against the holdout.
    with DashboardReads(sim_db).store() as store:
        report = build_report(store, "cart_recovery")
    e = report.experiment
    assert e is not None and [a.name for a in e.arms] == ["messaged", "holdout"]
    assert all(a.entries > 0 for a in e.arms)
    html = httpx.get(viewer.url + "/ui/journeys/cart_recovery", timeout=10).text

    def cell(testid: str) -> str:
        found = re.search(rf'data-testid="{testid}">([^<]*)<', html)
        assert found, testid
        return unescape(found.group(1)).strip()

    for a in e.arms:
        assert int(cell(f"arm-{a.name}-entries").replace(",", "")) == a.entries
        assert int(cell(f"arm-{a.name}-goals").replace(",", "")) == a.conversions
        assert cell(f"arm-{a.name}-rate") == ("—" if a.rate is None else f"{a.rate:.1%}")
    (vs,) = e.comparisons
    assert (vs.arm, vs.baseline) == ("messaged", "holdout")
    if vs.enough_data:
        assert vs.lift is not None and vs.p_value is not None
        lift = cell("arm-messaged-lift").replace("−", "-")
        assert lift == f"{vs.lift * 100:+.1f} pp"
        p = cell("arm-messaged-p")
        assert p == ("< 0.001" if vs.p_value < 0.001 else f"{vs.p_value:.3f}")
    else:
        assert cell("arm-messaged-note") == "not enough data"
    assert "arm-holdout-lift" not in html and "arm-holdout-note" not in html  # the baseline
    assert "messaged: every entry not held out" in cell("messaged-note")
    assert 'data-testid="unassigned"' not in html


@pytest.mark.e2e
def test_ab_table_shows_the_messaged_groups_lift_and_p_value(tmp_path: Path) -> None:
    """Enough data: the lift and p-value of messaging over a 25% holdout, as the
    report has them (the demo's holdouts are too small for a comparison)."""
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.journey").write_text(
        'journey welcome "Welcome"\n  when signed_up\n  goal first_order within 2d\n'
        '  holdout 25%\n\n  send push "Welcome in" as hello\n',
        encoding="utf-8",
    )
    lines = []
    for i in range(300):
        user, at = f"w{i:03d}", f"2026-03-02T{8 + i // 60:02d}:{i % 60:02d}:00Z"
        held = bucket(f"welcome:holdout:{user}") < 25
        lines.append({"type": "identify", "userId": user, "traits": {"push_enabled": True}})
        lines[-1]["timestamp"] = at
        lines.append({"type": "track", "userId": user, "event": "signed_up", "timestamp": at})
        if i % (5 if held else 2) == 0:  # the messaged order more
            order = {"type": "track", "userId": user, "event": "first_order"}
            lines.append({**order, "timestamp": "2026-03-03T00:00:00Z"})
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    db = tmp_path / "sim.db"
    subprocess.run(
        [
            *(sys.executable, "-m", "journeyc", "simulate", str(tmp_path / "journeys")),
            *("--events", str(events), "--db", str(db)),
        ],
        check=True,
        capture_output=True,
        env=clean_env(),
    )
    with DashboardReads(db).store() as store:
        report = build_report(store, "welcome")
    assert report.experiment is not None
    (vs,) = report.experiment.comparisons
    assert vs.arm == "messaged" and vs.enough_data and vs.significant
    assert vs.lift is not None and vs.p_value is not None and vs.lift_ci_low is not None
    v = Viewer(db)
    try:
        html = httpx.get(v.url + "/ui/journeys/welcome", timeout=10).text
    finally:
        v.stop()
    lift = re.search(r'data-testid="arm-messaged-lift">([^<]*)<', html)
    p = re.search(r'data-testid="arm-messaged-p">([^<]*)<', html)
    assert lift and p, html
    assert unescape(lift.group(1)).replace("−", "-") == f"{vs.lift * 100:+.1f} pp"
    assert unescape(p.group(1)) == ("< 0.001" if vs.p_value < 0.001 else f"{vs.p_value:.3f}")
    assert 'data-testid="arm-messaged-interval"' in html


def test_reads_journey_totals_agree_with_the_report(sim_db: Path) -> None:
    reads = DashboardReads(sim_db)
    totals = reads.journey_totals(0, 1 << 50)
    t = totals["cart_recovery"]
    assert t.entries == sum(t.entries_by_day.values()) > 0
    with reads.store() as store:
        report = build_report(store, "cart_recovery")
    assert (t.entries, t.goals) == (report.entries, report.goal.conversions if report.goal else 0)
    assert t.sends == sum(sum(s.sends.values()) for s in report.steps)
    assert t.suppressed == sum(sum(s.suppressed.values()) for s in report.steps)


# ---------------------------------------------------------------- session


def test_session_cookies_are_signed_by_the_token() -> None:
    one, other = Sessions("token-a"), Sessions("token-b")
    cookie = one.new()
    assert one.valid(cookie)
    assert not other.valid(cookie)
    # A character inside the signature, not its last: base64's last character can
    # carry unused bits, so changing it may decode to the same signature.
    tampered = cookie[:-5] + ("B" if cookie[-5] == "A" else "A") + cookie[-4:]
    assert not one.valid(tampered)
    assert not one.valid(None) and not one.valid("")
    assert one.token_ok("token-a") and not one.token_ok("token-A")


# ---------------------------------------------------------------- layout


def test_layout_puts_every_arrow_downwards_for_the_example_journeys() -> None:
    project = load_valid([str(ROOT / "journeys")])
    for journey in lower_project(project).journeys.values():
        drawing = draw(journey)
        places = layered_layout(drawing)
        for a in drawing.arrows:
            assert places[a.src].layer < places[a.dst].layer, (journey.id, a)
        rows = [(p.layer, p.order) for p in places.values()]
        assert len(rows) == len(set(rows)), journey.id


@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=40))
def test_layout_of_any_dag_keeps_arrows_downwards(pairs: list[tuple[int, int]]) -> None:
    # Arrows from a lower to a higher number: a DAG, as lowering makes.
    boxes = [Box(f"b{i}", "action", (str(i),)) for i in range(12)]
    arrows = [Arrow(f"b{min(a, b)}", f"b{max(a, b)}") for a, b in pairs if a != b]
    drawing = Drawing(ir.JourneyIR(id="j", file="j.journey"), boxes, arrows)
    places = layered_layout(drawing)
    assert set(places) == {b.key for b in boxes}
    for a in arrows:
        assert places[a.src].layer < places[a.dst].layer
    rows = [(p.layer, p.order) for p in places.values()]
    assert len(rows) == len(set(rows))
