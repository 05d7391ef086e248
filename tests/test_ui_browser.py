"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven
by Playwright, against ``journeyc serve`` on a store that ``journeyc simulate`` filled.

The test logs in through the form, loads every page, checks the numbers the pages
show against the API's JSON, checks that no request left 127.0.0.1 (every asset is
the package's), and saves screenshots under tests/artifacts/ (gitignored). Under CI
(``CI`` set) a missing browser or Playwright fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.daemon_helpers import ADMIN_TOKEN, Daemon, poll
from tests.demo_events import write_demo

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("JOURNEYC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls home, and this closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.e2e


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI installs it: see .ci/run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    path = CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon on a store the simulator filled with 400 demo shoppers, settled: its
    dispatcher has delivered the backlog, so the numbers hold still."""
    tmp = tmp_path_factory.mktemp("ui")
    events = write_demo(tmp / "demo.jsonl", users=400, seed=3)
    store = tmp / "store.db"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "journeyc",
            "simulate",
            str(ROOT / "journeys"),
            "--events",
            str(events),
            "--catalog",
            str(ROOT / "examples" / "catalog.jsonl"),
            "--db",
            str(store),
        ],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    d = Daemon([str(ROOT / "journeys"), "--db", str(store), "--port", "0"], tmp)
    try:
        d.start()
        last: list[Any] = []

        def settled() -> bool:
            now = [d.admin("/v1/status")["outbox_backlog"], d.admin("/v1/journeys")]
            same = now == last and now[0] == 0
            last[:] = now
            return same

        poll(settled, 60, "the outbox to drain", interval=0.5)
        yield d
    finally:
        d.kill()


@pytest.fixture(scope="module")
def page(browser: Any, daemon: Daemon) -> Iterator[Any]:
    """A logged-in page; every URL it requested is in ``page.requested``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    requested: list[str] = []
    context.on("request", lambda r: requested.append(r.url))
    pg.goto(f"{daemon.url}/ui")
    assert urlsplit(pg.url).path == "/ui/login"
    pg.fill("[data-testid=token]", ADMIN_TOKEN)
    pg.click("[data-testid=login]")
    pg.wait_for_url(f"{daemon.url}/ui")
    pg.requested = requested
    yield pg
    context.close()


def _text(page: Any, testid: str) -> str:
    return str(page.locator(f"[data-testid='{testid}']").first.text_content()).strip()


def _number(page: Any, testid: str) -> int:
    return int(_text(page, testid).replace(",", ""))


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _assert_local(page: Any, daemon: Daemon) -> None:
    host = urlsplit(daemon.url).netloc
    away = [u for u in page.requested if urlsplit(u).scheme in ("http", "https", "ws", "wss")]
    away = [u for u in away if urlsplit(u).netloc != host]
    assert not away, f"requests left {host}: {away}"


# ---------------------------------------------------------------- login


def test_login_form_keeps_the_token_out_of_urls_and_sets_a_strict_cookie(
    browser: Any, daemon: Daemon
) -> None:
    context = browser.new_context()
    pg = context.new_page()
    urls: list[str] = []
    context.on("request", lambda r: urls.append(r.url))
    pg.goto(f"{daemon.url}/ui/journeys/cart_recovery")
    assert urlsplit(pg.url).path == "/ui/login"
    pg.fill("[data-testid=token]", "not-the-token")
    pg.click("[data-testid=login]")
    assert "not the admin token" in _text(pg, "login-error")
    assert not context.cookies()
    pg.fill("[data-testid=token]", ADMIN_TOKEN)
    pg.click("[data-testid=login]")
    pg.wait_for_url(f"{daemon.url}/ui/journeys/cart_recovery")
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert ADMIN_TOKEN not in cookie["value"]
    assert not [u for u in urls if ADMIN_TOKEN in u]
    # Script cannot read the session; logging out ends it.
    assert pg.evaluate("document.cookie") == ""
    pg.click("form.logout button")
    pg.wait_for_url(f"{daemon.url}/ui/login")
    pg.goto(f"{daemon.url}/ui")
    assert urlsplit(pg.url).path == "/ui/login"
    context.close()


def test_the_banner_names_the_dashboard(daemon: Daemon) -> None:
    assert f"dashboard          {daemon.url}/ui" in daemon.log()


def test_a_forged_cookie_is_refused(daemon: Daemon) -> None:
    reply = httpx.get(f"{daemon.url}/ui", cookies={"journeyc_ui": "eyJhZG1pbiI6dHJ1ZX0.x.y"})
    assert reply.status_code == 303
    assert reply.headers["location"].startswith("/ui/login")


# ---------------------------------------------------------------- pages


def test_journeys_page_shows_the_apis_numbers(page: Any, daemon: Daemon) -> None:
    page.goto(f"{daemon.url}/ui?range=all")
    stats = {j["id"]: j for j in daemon.admin("/v1/journeys")["journeys"]}
    assert stats["cart_recovery"]["entries"] > 0
    for jid, j in stats.items():
        assert _number(page, f"entries-{jid}") == j["entries"], jid
        sends = sum(sum(by.values()) for by in j["sends"].values())
        assert _number(page, f"sends-{jid}") == sends, jid
        assert _number(page, f"suppressed-{jid}") == sum(j["suppressions"].values()), jid
        if page.locator(f"[data-testid='goals-{jid}']").count():
            assert _number(page, f"goals-{jid}") == j["goals"], jid
    assert _number(page, "total-entries") == sum(j["entries"] for j in stats.values())
    assert page.locator("svg.spark").count() == len(stats)
    _shot(page, "journeys")
    _assert_local(page, daemon)


def test_journey_page_shows_the_reports_numbers(page: Any, daemon: Daemon) -> None:
    for jid in ("cart_recovery", "second_purchase_test"):
        report = daemon.admin(f"/v1/journeys/{jid}/report")
        page.goto(f"{daemon.url}/ui/journeys/{jid}")
        assert report["entries"] > 0
        assert _number(page, "entries") == report["entries"]
        assert _number(page, "funnel-entered") == report["entries"]
        assert _number(page, "goals") == report["goal"]["conversions"]
        assert _number(page, "funnel-converted") == report["goal"]["conversions"]
        assert _number(page, "in-flight") == report["in_flight"]
        # The graph: every step drawn, with the report's counts.
        assert page.locator("svg.graph g.node").count() >= len(report["steps"])
        for step in report["steps"]:
            sid = step["id"]
            if step["reached"] is not None:
                assert _number(page, f"node-{sid}-reached") == step["reached"], sid
            sent = sum(step["sends"].values())
            if sent:
                assert _number(page, f"node-{sid}-sent") == sent, sid
            suppressed = sum(step["suppressed"].values())
            if suppressed:
                assert _number(page, f"node-{sid}-suppressed") == suppressed, sid
        experiment = report["experiment"]
        groups = [(arm["name"], arm["group"]) for arm in experiment["arms"]]
        if jid == "cart_recovery":  # a holdout and no split: messaged against the holdout
            assert groups == [("messaged", "messaged"), ("holdout", "holdout")]
            assert [c["arm"] for c in experiment["comparisons"]] == ["messaged"]
            assert "every entry not held out" in _text(page, "messaged-note")
        else:
            assert {g for _, g in groups} == {"arm", "holdout"}
            assert page.locator("[data-testid='messaged-note']").count() == 0
        for arm in experiment["arms"]:
            name = arm["name"]
            assert _number(page, f"arm-{name}-entries") == arm["entries"], name
            assert _number(page, f"arm-{name}-goals") == arm["conversions"], name
            rate = "—" if arm["rate"] is None else f"{arm['rate']:.1%}"
            assert _text(page, f"arm-{name}-rate") == rate, name
        for c in experiment["comparisons"]:
            if c["enough_data"]:
                lift = _text(page, f"arm-{c['arm']}-lift").replace("−", "-")
                assert lift == f"{c['lift'] * 100:+.1f} pp"
                p = _text(page, f"arm-{c['arm']}-p")
                assert p == ("< 0.001" if c["p_value"] < 0.001 else f"{c['p_value']:.3f}")
            else:
                assert _text(page, f"arm-{c['arm']}-note") == "not enough data"
        for channel in report["delivery"]:
            for status in ("queued", "sent", "failed", "retried"):
                shown = _number(page, f"delivery-{channel['channel']}-{status}")
                assert shown == channel[status]
        _shot(page, f"journey-{jid}")
    _assert_local(page, daemon)


def test_user_page_found_by_email_with_timeline_and_why(page: Any, daemon: Daemon) -> None:
    user = daemon.admin("/v1/users/shopper-00001")
    email = user["traits"]["email"]
    page.goto(f"{daemon.url}/ui")
    page.fill("[data-testid=user-search]", email)
    page.press("[data-testid=user-search]", "Enter")
    page.wait_for_url(f"{daemon.url}/ui/users/shopper-00001")
    assert email in _text(page, "traits")
    shown = [
        (li.get_attribute("data-at"), li.get_attribute("data-action"))
        for li in page.locator("[data-testid=action]").all()
    ]
    expected = [(a["at"], a["action"]) for a in user["actions"]]
    assert shown[: len(expected)] == expected
    sends = page.locator("[data-testid=action][data-action=send]")
    assert sends.count() == page.locator("[data-testid=action][data-action=send] .why").count()
    # The why of each send is the why-trace's (GET /v1/users/{id}/why).
    why = daemon.admin("/v1/users/shopper-00001/why")
    summaries = sorted(
        d["summary"]
        for j in why["journeys"]
        for d in j["decisions"]
        if d["kind"] == "send" and d["outcome"] in ("sent", "suppressed")
    )
    assert summaries
    assert sorted(page.locator(".why-summary").all_text_contents()) == summaries
    _shot(page, "user")
    page.goto(f"{daemon.url}/ui/users?q=nobody-at-all")
    assert "No user matches" in _text(page, "no-hits")
    _assert_local(page, daemon)


def test_api_docs_render_offline(page: Any, daemon: Daemon) -> None:
    page.goto(f"{daemon.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "journeyc" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 5
    _shot(page, "docs")
    _assert_local(page, daemon)
