"""`journeyc serve` as two processes: the API process and the engine process.

The engine process dies with the API process (SIGKILL included), a dead engine
process is logged and replaced, ingest nudges the engine at once (no polling
period), and writers in two processes queue on the store's ``flock`` instead of
meeting in SQLite's busy handler.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from journeyc.serve.ipc import pair
from tests.daemon_helpers import Daemon, poll, write_file

pytestmark = pytest.mark.e2e

NOW = """\
journey hello "Says hello at once"
  when greeted
  entry always
  send inapp "Hello" as hi
"""


def start(tmp_path: Path, daemons: list[Daemon]) -> Daemon:
    write_file(tmp_path / "journeys" / "main.journey", NOW)
    daemon = Daemon(
        [str(tmp_path / "journeys"), "--db", str(tmp_path / "store.db"), "--port", "0"],
        tmp_path,
    )
    daemons.append(daemon)
    return daemon.start()


def engine_pid(daemon: Daemon) -> int | None:
    pid = daemon.admin("/v1/status")["daemon"]["engine_process"]["pid"]
    return int(pid) if pid is not None else None


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def outbox_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        (n,) = conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(n)
    finally:
        conn.close()


def test_the_engine_process_dies_with_the_api_process_even_on_sigkill(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = start(tmp_path, daemons)
    pid = engine_pid(daemon)
    assert pid is not None and pid != daemon.proc.pid  # type: ignore[union-attr]
    daemon.proc.kill()  # type: ignore[union-attr]
    daemon.proc.wait()  # type: ignore[union-attr]
    poll(lambda: gone(pid), 5, "the engine process to die with its parent")


def test_a_dead_engine_process_is_logged_and_replaced_and_sigterm_stops_both(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = start(tmp_path, daemons)
    daemon.track("u1", "greeted")
    poll(lambda: outbox_rows(tmp_path / "store.db") == 1, 10, "the first send")
    first = engine_pid(daemon)
    assert first is not None

    os.kill(first, signal.SIGKILL)
    daemon.wait_for_log(r"the engine process was killed by SIGKILL after [\d.]+ s; starting")
    # Ingest goes on while there is no engine process; the next one catches up.
    daemon.track("u2", "greeted")

    def replaced() -> int | None:
        pid = engine_pid(daemon)
        return pid if pid != first else None

    second = poll(replaced, 15, "a new engine process")
    poll(lambda: outbox_rows(tmp_path / "store.db") == 2, 10, "the send after the restart")
    status = daemon.admin("/v1/status")["daemon"]
    assert status["engine_process"] == {"pid": second, "alive": True, "restarts": 1}
    assert status["journeys"].keys() == {"hello"}
    metrics = httpx.get(f"{daemon.url}/metrics").text
    assert "journeyc_engine_process_cpu_seconds_total" in metrics

    assert daemon.stop(signal.SIGTERM) == 0
    assert gone(int(second))
    log = daemon.log()
    assert "stopping (SIGTERM)" in log
    assert "Traceback" not in log


def test_an_engine_process_started_on_an_invalid_project_runs_the_last_deployed_one(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = start(tmp_path, daemons)
    write_file(tmp_path / "journeys" / "main.journey", NOW.replace("send inapp", "send nowhere"))
    daemon.wait_for_log(r"refused the change to main.journey")
    first = engine_pid(daemon)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    daemon.wait_for_log(r"invalid; running the versions last deployed until it is fixed")
    poll(lambda: engine_pid(daemon) not in (None, first), 15, "a new engine process")
    # The last good version runs in the new engine process.
    daemon.track("u1", "greeted")
    poll(lambda: outbox_rows(tmp_path / "store.db") == 1, 10, "a send by the last good version")
    assert daemon.admin("/v1/status")["daemon"]["engine_process"]["restarts"] == 1


def test_ingest_nudges_the_engine_without_waiting_for_the_poll(
    tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = start(tmp_path, daemons)
    db = tmp_path / "store.db"
    waits = []
    for n in range(1, 6):
        daemon.track(f"u{n}", "greeted")
        posted = time.monotonic()
        poll(lambda: outbox_rows(db) >= n, 10, "the send", interval=0.005)  # noqa: B023
        waits.append(time.monotonic() - posted)
        time.sleep(0.3)  # land at different phases of the 2 s poll job
    # The poll job alone would take a second on average (up to two).
    assert statistics.median(waits) < 0.5, waits


def test_a_nudge_never_blocks_and_the_end_of_the_channel_is_seen() -> None:
    parent, child_sock = pair()
    from journeyc.serve.ipc import ChildEnd

    child = ChildEnd(child_sock)
    started = time.monotonic()
    for _ in range(100_000):  # far past the socket buffer: the extra nudges are dropped
        parent.nudge()
    assert time.monotonic() - started < 5
    assert child.wait_nudge()
    child.send({"status": {"ok": True}})
    assert next(parent.messages()) == {"status": {"ok": True}}
    parent.close()
    while child.wait_nudge():  # what was sent before the end, then the end
        pass


WRITER = textwrap.dedent(
    """
    import sys, time
    from journeyc.events import parse_event
    from journeyc.store.sqlite import Store

    db, name, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
    # busy_timeout 0: meeting the other writer in SQLite's busy handler would fail at
    # once with "database is locked" instead of sleeping.
    store = Store.open(db, busy_timeout_ms=0)
    print("ready", flush=True)
    sys.stdin.readline()
    waits = []
    for i in range(int(sys.argv[4])):
        asked = time.time()
        with store.transaction() as conn:
            got = time.time()
            event = {"type": "track", "userId": name, "event": "e", "messageId": f"{name}-{i}"}
            store.append_events([parse_event(event, 0)])
            time.sleep(hold)
            committed = time.time()  # just before the commit and the unlock
        waits.append((asked, got, committed))
    for w in waits:
        print(*w, flush=True)
    """
)


def test_writers_in_two_processes_queue_on_the_flock_not_in_the_busy_handler(
    tmp_path: Path,
) -> None:
    from journeyc.store.sqlite import Store

    db = tmp_path / "store.db"
    Store.open(db).close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), name, "0.004", "60"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("a", "b")
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    spans: list[tuple[float, float, float]] = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err  # no "database is locked": nobody met the busy handler
        for line in out.splitlines():
            asked, got, committed = map(float, line.split())
            spans.append((asked, got, committed))
    assert len(spans) == 120
    # The transactions never overlapped, and a writer that waited got the lock as
    # soon as the other committed (the busy handler sleeps up to 100 ms per try).
    spans.sort(key=lambda s: s[1])
    late = []
    for (_, _, committed), (asked, got, _) in itertools.pairwise(spans):
        assert got >= committed - 0.001
        if asked < committed:  # it waited for that commit
            late.append(got - committed)
    assert late, "the writers never contended"
    assert max(late) < 0.05, sorted(late)[-5:]
