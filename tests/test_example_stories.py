"""The stories of examples/README.md that segments, schedules and recommendations tell,
checked on `journeyc simulate` of the example project, events and catalog."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
CATALOG = [json.loads(line) for line in (ROOT / "examples" / "catalog.jsonl").open()]
OUT_OF_STOCK = {p["name"] for p in CATALOG if not p["in_stock"]}


def simulate(*extra: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "journeyc",
            "simulate",
            "journeys",
            "--events",
            "examples/events.jsonl",
            "--catalog",
            "examples/catalog.jsonl",
            "--json",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


@pytest.fixture(scope="module")
def whole() -> list[dict[str, Any]]:
    return simulate()


def of(actions: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [a for a in actions if all(a.get(k) == v for k, v in match.items())]


def test_carla_is_at_risk_60_days_after_her_order_then_dormant_at_180(
    whole: list[dict[str, Any]],
) -> None:
    carla = of(whole, user="u3")
    winback = of(carla, journey="at_risk_winback", action="send")
    assert [(a["at"], a["channel"], a["message"]) for a in winback] == [
        ("2025-08-19T08:30:00Z", "email", "miss_you"),  # 2025-06-20 08:30 + 60 days
        ("2025-08-24T08:30:00Z", "email", "miss_you"),  # no app open within 5 days
    ]
    # Dormant from 2025-12-17 08:30 (180 days); the first 10:00 in Bangkok after that.
    (cross,) = of(carla, journey="dormant_cross_sell", action="send")
    assert (cross["at"], cross["channel"]) == ("2025-12-18T03:00:00Z", "email")
    assert len(of(carla, journey="dormant_cross_sell", action="enter")) == 1  # once per 90d


def test_from_the_week_of_the_stories_carla_hears_on_monday_at_ten() -> None:
    week = simulate("--from", "2026-01-05T00:00:00Z")
    (cross,) = of(week, user="u3", journey="dormant_cross_sell", action="send")
    assert cross["at"] == "2026-01-05T03:00:00Z"
    # History made her dormant and no longer at risk: nothing from at_risk_winback.
    assert of(week, user="u3", journey="at_risk_winback") == []


def test_eve_gets_the_friday_flash_sale_while_regular_then_hero_early_access(
    whole: list[dict[str, Any]],
) -> None:
    eve = of(whole, user="u6")
    flash = of(eve, journey="regular_flash_sale", step="flash", action="send")
    assert flash[0]["at"] == "2025-09-26T11:00:00Z"  # the Friday after her second order
    assert flash[-1]["at"] == "2025-12-26T11:00:00Z"  # 01-02 her fifth order made her a hero
    # Every Friday at 18:00 in Bangkok in between, one a week.
    days = [datetime.fromisoformat(a["at"].replace("Z", "+00:00")) for a in flash]
    assert all(d.weekday() == 4 and d.strftime("%H:%M") == "11:00" for d in days)
    assert all(b - a == timedelta(days=7) for a, b in itertools.pairwise(days))
    (preview,) = of(eve, journey="hero_early_access", action="send")
    assert preview["at"] == "2026-01-05T02:00:00Z"  # Monday 09:00 in Bangkok
    assert preview["channel"] == "inapp"


def test_recommendations_never_show_out_of_stock_products(whole: list[dict[str, Any]]) -> None:
    sends = of(whole, action="send")
    assert sends
    for a in sends:
        text = json.dumps(a["content"], ensure_ascii=False)
        for name in OUT_OF_STOCK:
            assert name not in text, (a["journey"], a["user"], name)
