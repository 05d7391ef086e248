"""Cursors and settings, on every store."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from journeyc.store.abc import Store
from tests.store_contract.conftest import Opener


def test_cursors(store: Store, open_again: Opener) -> None:
    assert store.get_cursor("engine") == 0
    store.set_cursor("engine", 7)
    store.set_cursor("other", 3)
    store.set_cursor("engine", 9)
    assert (store.get_cursor("engine"), store.get_cursor("other")) == (9, 3)
    assert open_again().get_cursor("engine") == 9


def test_settings(store: Store) -> None:
    assert store.get_setting("token") is None
    store.put_setting("token", "a")
    store.put_setting("token", "b")
    assert store.get_setting("token") == "b"
    assert store.setting("token", lambda: "c") == "b"


def test_a_setting_is_set_once_whoever_asks_at_once(store: Store, open_again: Opener) -> None:
    stores = [store, open_again(), open_again()]
    start = threading.Barrier(12)
    made = iter(range(1000))
    lock = threading.Lock()

    def ask(k: int) -> str:
        def default() -> str:
            with lock:
                return f"value-{next(made)}"

        start.wait()
        return stores[k % 3].setting("key", default)

    with ThreadPoolExecutor(12) as pool:
        got = list(pool.map(ask, range(12)))
    assert len(set(got)) == 1
    assert store.get_setting("key") == got[0]
