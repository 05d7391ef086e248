"""Hostile input, deep nesting: every command on a file nested past the limits prints
a `too_deep` diagnostic and exits 1, never a traceback; at the limits, they all work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from journeyc.cli import main
from journeyc.lang.depth import MAX_BLOCK_DEPTH, MAX_EXPR_DEPTH
from tests.daemon_helpers import Daemon, serve_once, write_file


def _and_chain(n: int) -> str:
    return f'when x where {" and ".join(f"a{i}" for i in range(n))}\nsend push "hi"\n'


def _plus_chain(n: int) -> str:
    return f"when x\nset y = {' + '.join(f'a{i}' for i in range(n))}\n"


def _nested_ifs(n: int) -> str:
    lines = ["when x", *(f"{'  ' * i}if a{i}" for i in range(n)), f'{"  " * n}send push "hi"']
    return "\n".join(lines) + "\n"


TOO_DEEP = {
    "and_500": _and_chain(500),
    "and_300": _and_chain(300),
    "plus_5000": _plus_chain(5000),
    "if_650": _nested_ifs(650),
    "if_limit_plus_1": _nested_ifs(MAX_BLOCK_DEPTH + 1),
    "and_limit_plus_1": _and_chain(MAX_EXPR_DEPTH + 1),
}

AT_THE_LIMIT = {
    "and": _and_chain(MAX_EXPR_DEPTH),
    "plus": _plus_chain(MAX_EXPR_DEPTH),
    "if": _nested_ifs(MAX_BLOCK_DEPTH),
}


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    event = {"type": "track", "userId": "u1", "event": "x", "timestamp": "2026-01-05T10:00:00Z"}
    path.write_text(json.dumps(event) + "\n", encoding="utf-8")
    return path


def _commands(journey: str, events: Path, tmp_path: Path) -> dict[str, list[str]]:
    return {
        "validate": ["validate", journey],
        "validate --json": ["validate", "--json", journey],
        "fmt": ["fmt", "--check", journey],
        "compile": ["compile", "--json", "-o", str(tmp_path / "out.json"), journey],
        "graph": ["graph", "-f", "dot", "-o", str(tmp_path / "out.dot"), journey],
        "simulate": ["simulate", "--events", str(events), journey],
    }


@pytest.mark.parametrize("case", sorted(TOO_DEEP))
def test_every_command_reports_too_deep_and_exits_1(
    case: str, tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journey = "deep.journey"
    Path(journey).write_text(TOO_DEEP[case], encoding="utf-8")
    for name, args in _commands(journey, events, tmp_path).items():
        code, out, err = _invoke(*args)
        assert code == 1, (name, out, err)
        text = out + err
        assert "too_deep" in text, (name, text)
        assert "Traceback" not in text, name
        if name == "validate":
            assert "error[too_deep]: " in err
            assert f" --> {journey}:" in err


@pytest.mark.parametrize("case", sorted(AT_THE_LIMIT))
def test_every_command_works_at_the_limits(
    case: str, tmp_path: Path, events: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journey = "deep.journey"
    Path(journey).write_text(AT_THE_LIMIT[case], encoding="utf-8")
    for name, args in _commands(journey, events, tmp_path).items():
        code, out, err = _invoke(*args)
        assert code == 0, (name, out, err)
    ir = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert list(ir["journeys"]) == ["deep"]


def test_the_diagnostic_names_the_limit_and_the_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    journey = Path("deep.journey")
    journey.write_text(_nested_ifs(MAX_BLOCK_DEPTH + 5), encoding="utf-8")
    code, _, err = _invoke("validate", str(journey))
    assert code == 1
    assert str(MAX_BLOCK_DEPTH) in err.splitlines()[0]
    # The first step in more blocks than the limit: line 2 is the outermost `if`.
    depth = MAX_BLOCK_DEPTH + 1
    assert f" --> {journey}:{depth + 2}:{2 * depth + 1}" in err
    assert f"this step is in {depth} blocks" in err

    journey.write_text(_and_chain(MAX_EXPR_DEPTH + 5), encoding="utf-8")
    code, out, _ = _invoke("validate", "--json", str(journey))
    assert code == 1
    [d] = json.loads(out)["diagnostics"]
    assert d["code"] == "too_deep"
    assert str(MAX_EXPR_DEPTH) in d["summary"]
    assert d["range"]["start"]["line"] == 1


@pytest.mark.e2e
def test_serve_on_a_too_deep_project_exits_1_with_the_diagnostic(tmp_path: Path) -> None:
    write_file(tmp_path / "journeys" / "deep.journey", _and_chain(500))
    proc = serve_once(["journeys", "--port", "0"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "error[too_deep]" in proc.stderr
    assert "the daemon did not start" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.e2e
def test_the_watcher_refuses_a_too_deep_change(tmp_path: Path, daemons: list[Daemon]) -> None:
    journey = tmp_path / "journeys" / "main.journey"
    write_file(journey, 'when greeted\nsend push "hi"\n')
    daemon = Daemon(
        [str(tmp_path / "journeys"), "--db", str(tmp_path / "store.db"), "--port", "0"],
        tmp_path,
    )
    daemons.append(daemon)
    daemon.start()
    for text in (_nested_ifs(650), _plus_chain(5000)):
        mark = len(daemon.log())
        write_file(journey, text)
        daemon.wait_for_log(r"refused the change to main\.journey", after=mark)
        daemon.wait_for_log(r"error\[too_deep\]", after=mark)
        assert "Traceback" not in daemon.log()[mark:]
    assert daemon.admin("/v1/status")["daemon"]["last_refused_change"]["files"] == "main.journey"
    assert daemon.stop() == 0
