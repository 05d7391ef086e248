"""Store URLs: `--store` (alias `--db`), `store = "…"` in journeyc.toml and
`JOURNEYC_STORE` name a SQLite file or a PostgreSQL database; commands and the daemon
open either (real PostgreSQL, real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from fastapi import FastAPI, Request

from journeyc.config import STORE_ENV, Config, ConfigError, load_config, store_target
from journeyc.serve.stores import request_store
from journeyc.store.open import open_store
from journeyc.store.targets import is_url, shown, target_of
from tests.conftest import ROOT
from tests.daemon_helpers import Daemon, clean_env, key_env, poll

EVENTS = [
    {"type": "track", "userId": "u1", "event": "signed_up", "messageId": "m1"},
    {"type": "identify", "userId": "u1", "traits": {"email": "a@x"}, "messageId": "m2"},
    {"type": "track", "userId": "u2", "event": "signed_up", "messageId": "m3"},
]

PROJECT = """\
journey welcome "Welcome"
  when signed_up
  entry always
  send push "Hello" as hello
"""


def journeyc(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``journeyc ARGS`` as a real process in ``cwd``."""
    return subprocess.run(
        [sys.executable, "-m", "journeyc", *args],
        cwd=cwd,
        env=clean_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` in its user part (the test server trusts any)."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    name = user.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{name}:{password}@{host}"))


def events_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    return path


# ---------------------------------------------------------------- targets and config


def test_a_url_stays_text_and_a_path_becomes_one() -> None:
    url = "postgresql://u:pw@db.example//weird/db"
    assert target_of(url) == url  # a Path would fold the // and name another thing
    assert target_of("journeyc.db") == Path("journeyc.db")
    assert is_url("POSTGRES://x/y") and not is_url(Path("postgresql:/x"))
    assert shown(url) == "postgresql://u@db.example//weird/db"
    assert shown(Path("a.db")) == "a.db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('store = "postgresql://u:pw@db/jc"', "postgresql://u:pw@db/jc"),
        ('[store]\nurl = "postgres://db/jc"\nlock_timeout = "3s"', "postgres://db/jc"),
        ('[store]\npath = "postgresql://db/jc"', "postgresql://db/jc"),  # taken as url
        ('store = "data/jc.db"', "DIR/data/jc.db"),
        ('[store]\npath = "jc.db"', "DIR/jc.db"),
    ],
)
def test_journeyc_toml_names_a_file_or_a_url(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "journeyc.toml").write_text(text + "\n")
    config = load_config(tmp_path / "journeyc.toml")
    want = expected.replace("DIR", str(tmp_path))
    assert str(store_target(None, config, {STORE_ENV: "postgresql://env/ignored"})) == want


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[store]\nurl = "jc.db"', "store.url: expected a postgresql:// URL"),
        ('[store]\npath = "a.db"\nurl = "postgresql://db/jc"', "store: set path"),
        ("store = 3", "store: expected a table"),
    ],
)
def test_a_bad_store_in_journeyc_toml_names_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    (tmp_path / "journeyc.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "journeyc.toml")


def test_the_config_the_engine_process_is_sent_reads_again() -> None:
    for store in ("postgresql://u:pw@db/jc", "jc.db"):
        config = Config.model_validate({"store": store})
        again = Config.model_validate_json(config.model_dump_json(by_alias=True))
        assert again.store.target == config.store.target


def test_the_option_then_the_file_then_the_environment_then_journeyc_db(tmp_path: Path) -> None:
    env = {STORE_ENV: "postgresql://env/jc"}
    (tmp_path / "journeyc.toml").write_text('[store]\nlock_timeout = "2s"\n')
    unset = load_config(tmp_path / "journeyc.toml")  # [store] without a place
    assert store_target(Path("given.db"), unset, env) == Path("given.db")
    assert store_target(None, unset, env) == "postgresql://env/jc"
    assert store_target(None, unset, {}) == tmp_path / "journeyc.db"
    assert store_target(None, load_config(None), {STORE_ENV: "x.db"}) == Path("x.db")


# ---------------------------------------------------------------- commands


def test_ingest_takes_a_store_url_and_never_prints_the_password(
    postgres_url: str, tmp_path: Path
) -> None:
    url = with_password(postgres_url, "s3cret")
    result = journeyc("ingest", str(events_file(tmp_path)), "--store", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "3 new" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    assert shown(url) in result.stdout
    with open_store(postgres_url) as store:
        assert [e.message_id for e in store.events_after(0)] == ["m1", "m2", "m3"]
        assert store.get_profile("u1") == {"email": "a@x"}
    # --db is the same option; JOURNEYC_STORE names the store when nothing else does.
    again = journeyc("ingest", str(events_file(tmp_path)), "--db", url, cwd=tmp_path)
    assert "0 new, 3 duplicate(s)" in again.stdout
    env = journeyc(
        "ingest", str(events_file(tmp_path)), cwd=tmp_path, env=clean_env(**{STORE_ENV: url})
    )
    assert "0 new, 3 duplicate(s)" in env.stdout
    assert not (tmp_path / "journeyc.db").exists()


def test_status_reads_a_store_url(postgres_url: str, tmp_path: Path) -> None:
    journeyc("ingest", str(events_file(tmp_path)), "--store", postgres_url, cwd=tmp_path)
    result = journeyc("status", "--store", postgres_url, "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["store"] == shown(postgres_url)
    assert report["events"] == 3
    assert report["profiles"] == 2


@pytest.mark.parametrize("command", ["status", "ingest", "serve", "why", "report", "plan"])
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://alice:s3cret@127.0.0.1:1/journeyc",  # nothing listens on port 1
        "postgresql://alice:s3cret@127.0.0.1:notaport/journeyc",
    ],
)
def test_an_unreachable_server_is_one_line_exit_1_without_the_password(
    tmp_path: Path, command: str, url: str
) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.journey").write_text(PROJECT)
    args = {
        "status": ["status"],
        "ingest": ["ingest", str(events_file(tmp_path))],
        "serve": ["serve", "journeys", "--port", "0"],
        "why": ["why", "u1"],
        "report": ["report"],
        "plan": ["plan", "journeys"],
    }[command]
    result = journeyc(*args, "--store", url, cwd=tmp_path, env=key_env())
    assert result.returncode == 1, result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "postgresql://" in line]
    assert len(lines) == 1, result.stderr
    assert "alice@127.0.0.1" in lines[0]
    assert "cannot open the PostgreSQL store" in lines[0]


def test_a_refused_login_is_one_line_exit_1(postgres_url: str, tmp_path: Path) -> None:
    # The test server trusts every known role: an unknown one is refused at login.
    parts = urlsplit(postgres_url)
    host = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=f"nobody:s3cret@{host}"))
    result = journeyc("status", "--store", url, cwd=tmp_path)
    assert result.returncode == 1
    assert "s3cret" not in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert '"nobody"' in result.stderr


def test_validate_compares_event_names_with_a_store_url(postgres_url: str, tmp_path: Path) -> None:
    journeyc("ingest", str(events_file(tmp_path)), "--store", postgres_url, cwd=tmp_path)
    (tmp_path / "misspelt.journey").write_text(PROJECT.replace("when signed_up", "when signed_upp"))
    result = journeyc(
        "validate", "misspelt.journey", "--store", postgres_url, "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "similar_event_name" in result.stdout


@pytest.mark.parametrize(
    "command",
    [
        "plan",
        "deploy",
        "segments",
        "catalog",
        "report",
        "why",
    ],
)
def test_every_command_runs_on_a_store_url(postgres_url: str, tmp_path: Path, command: str) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.journey").write_text(PROJECT)
    if command == "segments":  # one over events, evaluated over the store (set-based)
        (tmp_path / "journeys" / "segments.journey").write_text(
            "segment signed = count(signed_up within 30d) >= 1\n"
        )
    ingested = journeyc("ingest", str(events_file(tmp_path)), "--store", postgres_url, cwd=tmp_path)
    assert ingested.returncode == 0, ingested.stderr
    if command in ("report", "why"):  # they read what was deployed
        deployed = journeyc("deploy", "journeys", "--store", postgres_url, cwd=tmp_path)
        assert deployed.returncode == 0, deployed.stderr
    args = {
        "plan": ["plan", "journeys", "--json"],
        "deploy": ["deploy", "journeys", "--json"],
        "segments": ["segments", "journeys", "--json"],
        "catalog": ["catalog", "load", str(ROOT / "examples" / "catalog.jsonl"), "--json"],
        "report": ["report", "--json"],
        "why": ["why", "u1", "--json"],
    }[command]
    result = journeyc(*args, "--store", postgres_url, cwd=tmp_path)
    assert result.returncode in ((0, 2) if command == "plan" else (0,)), result.stderr
    assert "Traceback" not in result.stderr
    assert shown(postgres_url) in result.stdout or command in ("plan", "deploy", "why")


def test_ui_shows_a_store_url(postgres_url: str, tmp_path: Path) -> None:
    env = clean_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "journeyc", "ui", "--store", postgres_url, "--port", "0"],
        cwd=tmp_path,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        while line and "listening on" not in line:
            line = proc.stderr.readline()
        assert "listening on" in line, f"journeyc ui exited with {proc.wait()}"
        base = line.split("listening on ", 1)[1].strip()
        assert httpx.get(f"{base}/ui", timeout=10, follow_redirects=True).status_code == 200
    finally:
        proc.kill()
        proc.wait()


def test_simulate_keeps_its_store_in_a_file(tmp_path: Path) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.journey").write_text(PROJECT)
    args = ["simulate", "journeys", "--events", str(events_file(tmp_path))]
    result = journeyc(*args, "--db", "postgresql://a:s3cret@db/x", cwd=tmp_path)
    assert result.returncode == 2
    assert "journeyc store copy" in result.stderr and "s3cret" not in result.stderr


# ---------------------------------------------------------------- the daemon


def test_the_api_takes_events_into_a_store_url_and_reads_them_back(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API process's side of `serve --store URL`, in process: ingest, /v1/status
    # and the /metrics scrape (a connection of its own) all on the database.
    from fastapi.testclient import TestClient

    from journeyc.serve.api import create_app

    monkeypatch.chdir(tmp_path)
    app = create_app(postgres_url, write_key="wk", admin_token="at")
    admin = {"Authorization": "Bearer at"}
    with TestClient(app) as client:
        for body in ({"userId": "u1", "event": "signed_up"}, {"userId": "u2", "event": "x"}):
            assert client.post("/v1/track", json=body, auth=("wk", "")).status_code == 200
        status = client.get("/v1/status", headers=admin).json()
        assert status["last_event_seq"] == 2
        metrics = client.get("/metrics").text
        assert "journeyc_outbox_backlog 0.0" in metrics
    with open_store(postgres_url) as store:
        assert [e.user_id for e in store.events_after(0)] == ["u1", "u2"]
    assert list(tmp_path.iterdir()) == []  # no SQLite file, lock file or log for a URL


def test_serve_no_watch_on_a_database_without_a_deployment_exits_1(
    postgres_url: str, tmp_path: Path
) -> None:
    url = with_password(postgres_url, "s3cret")
    result = journeyc(
        "serve", "--no-watch", "--store", url, "--port", "0", cwd=tmp_path, env=key_env()
    )
    assert result.returncode == 1, result.stderr
    assert f"nothing was ever deployed into {shown(url)}" in result.stderr
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no SQLite file made for the URL


def test_serve_on_a_store_url_takes_events_and_shows_them_in_status(
    postgres_url: str, tmp_path: Path, daemons: list[Daemon]
) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "welcome.journey").write_text(PROJECT)
    url = with_password(postgres_url, "s3cret")
    daemon = Daemon(["journeys", "--store", url, "--port", "0"], tmp_path)
    daemons.append(daemon)
    daemon.start(timeout=60)
    daemon.identify("u1", push_enabled=True)  # reachable on push (the default rule)
    daemon.track("u1", "signed_up")
    daemon.identify("u2", email="b@x")

    def logged() -> dict[str, object] | None:
        status = daemon.admin("/v1/status")
        return status if status["last_event_seq"] == 3 else None

    status = poll(logged, 20, "both events in /v1/status")
    assert list(status["daemon"]["journeys"]) == ["welcome"]
    # The engine process runs on the same database: the entry is made and sent.
    poll(
        lambda: "Hello" in daemon.stdout(),
        20,
        "the engine process to send the welcome push",
    )
    # A report reads the app's own store (test_a_request_reads_the_apps_postgresql_store).
    assert daemon.admin("/v1/journeys/welcome/report")["journey_id"] == "welcome"
    metrics = httpx.get(f"{daemon.url}/metrics", timeout=10).text
    assert "journeyc_outbox_backlog" in metrics  # the scrape reads the database
    assert "s3cret" not in daemon.log()
    assert shown(url) in daemon.log()
    # No SQLite file, lock file or write-ahead log was made for the URL.
    assert (
        sorted(p.name for p in tmp_path.iterdir() if "journeyc" in p.name or "postgres" in p.name)
        == []
    )
    assert daemon.stop() == 0


def _request(store: object) -> Request:
    """A request of an app whose ``state.store`` is ``store``."""
    app = FastAPI()
    app.state.store = store
    return Request({"type": "http", "app": app})


def test_a_request_reads_the_apps_postgresql_store(postgres_url: str, tmp_path: Path) -> None:
    """On PostgreSQL a report's request reads the app's store (its pool): opening a
    store per request would open a pool each time. A SQLite file is opened for the
    request, on a connection of its own, and closed after it."""
    with (
        open_store(postgres_url) as app_store,
        request_store(_request(app_store), postgres_url) as store,
    ):
        assert store is app_store
    db = tmp_path / "journeyc.db"
    with open_store(db) as app_store, request_store(_request(app_store), db) as store:
        assert store is not app_store
        assert store.path == app_store.path
