"""Regenerate the dashboard screenshots of the README and docs/dashboard.md.

    python scripts/screenshot.py [--users N] [--out docs/img]

Simulates the example project (journeys/) on seeded demo shoppers
(tests/demo_events.py) into a temporary store, serves it with ``journeyc ui``, and
has headless Chromium (Debian's ``chromium``, driven by Playwright; nothing is
downloaded) save ``dashboard.png`` (the cart recovery journey), ``journeys.png`` and
``user.png``. Needs ``pip install -e '.[test]'`` and ``apt-get install chromium``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.daemon_helpers import clean_env, poll  # noqa: E402
from tests.demo_events import write_demo  # noqa: E402
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

SHOTS = {
    "dashboard.png": "/ui/journeys/cart_recovery",
    "journeys.png": "/ui?range=all",
    "user.png": "/ui/users/shopper-00007",
}


def main() -> None:
    """Simulate, serve, and save the screenshots."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=2000, help="demo shoppers (default 2000)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder of the images")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        db = tmp / "sim.db"
        events = write_demo(tmp / "demo.jsonl", users=args.users)
        subprocess.run(
            [
                *(sys.executable, "-m", "journeyc", "simulate", str(ROOT / "journeys")),
                *("--events", str(events), "--catalog", str(ROOT / "examples" / "catalog.jsonl")),
                *("--db", str(db)),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        log = tmp / "ui.log"
        with log.open("wb") as err:
            ui = subprocess.Popen(
                [sys.executable, "-m", "journeyc", "ui", "--db", str(db), "--port", "0"],
                env=clean_env(),
                stderr=err,
            )
        try:
            url = poll(
                lambda: (
                    log.read_text().split("listening on ", 1)[1].split()[0]
                    if "listening on " in log.read_text()
                    else None
                ),
                30,
                "journeyc ui",
            )
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                for name, path in SHOTS.items():
                    page.goto(url + path)
                    page.screenshot(path=str(args.out / name), full_page=True)
                    print(args.out / name)
                browser.close()
        finally:
            ui.terminate()
            ui.wait(10)


if __name__ == "__main__":
    main()
