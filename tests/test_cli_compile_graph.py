"""``journeyc compile`` and ``journeyc graph`` from the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from journeyc.cli import main
from journeyc.compile import ir
from journeyc.compile.graph import GRAPHVIZ_HINT

FIXTURES = Path(__file__).parent / "fixtures" / "compile"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A two-file project in the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "cart.journey").write_text(
        FIXTURES.joinpath("cart_recovery.journey").read_text(encoding="utf-8"), encoding="utf-8"
    )
    shutil.copytree(FIXTURES / "templates", tmp_path / "journeys" / "templates")
    (tmp_path / "journeys" / "welcome.journey").write_text(
        'when signed_up\nevery day at 10:00 for everyone\nsend push "Welcome!"\n',
        encoding="utf-8",
    )
    return tmp_path / "journeys"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# ---------------------------------------------------------------- compile


def test_compile_summary(project: Path) -> None:
    code, out, _ = run("compile", str(project))
    assert code == 0
    version = json.loads(run("compile", "--json", str(project))[1])["journeys"]["cart_recovery"][
        "version"
    ]
    blocks = out.split("\n\n")
    assert len(blocks) == 2
    cart = blocks[0].splitlines()
    assert cart[0].startswith("cart_recovery — Cart abandonment recovery  (")
    assert f"  version   {version}" in cart
    assert "  triggers  when cart_abandoned where event.cart_value >= 50" in cart
    assert "  nodes     6" in cart
    assert "  messages  cart_reminder, discount_offer" in cart
    welcome = blocks[1].splitlines()
    assert welcome[0].startswith("welcome  (")
    assert welcome[2:5] == [
        "  triggers  when signed_up",
        "            every day at 10:00 for everyone",
        "  nodes     1",
    ]
    assert "  messages  (none)" in welcome


def test_compile_json_is_the_project_ir(project: Path) -> None:
    code, out, _ = run("compile", "--json", str(project))
    assert code == 0
    data = json.loads(out)
    compiled = ir.ProjectIR.model_validate(data)
    assert list(compiled.journeys) == ["cart_recovery", "welcome"]
    assert list(compiled.messages) == ["cart_reminder", "discount_offer"]
    html = compiled.messages["cart_reminder"].parts["email"]["html"]
    assert html.default == "<p>Your {{ event.item_count }} items are waiting.</p>\n"
    assert compiled.journeys["cart_recovery"].nodes["3"].kind == "wait_for"


def test_compile_to_a_file(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    code, out, _ = run("compile", "--json", "-o", str(target), str(project))
    assert code == 0
    assert out == ""
    assert "cart_recovery" in json.loads(target.read_text(encoding="utf-8"))["journeys"]


def test_compile_invalid_project_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.journey"
    bad.write_text("when go\nwait 30x\n", encoding="utf-8")
    code, out, err = run("compile", str(bad))
    assert code == 1
    assert out == ""
    assert "30x" in err


def test_compile_missing_path_exits_2(tmp_path: Path) -> None:
    code, _, err = run("compile", str(tmp_path / "nope.journey"))
    assert code == 2
    assert "no such file or directory" in err


# ---------------------------------------------------------------- graph


def test_graph_mermaid_is_the_default(project: Path) -> None:
    code, out, _ = run("graph", str(project))
    assert code == 0
    assert out.startswith("flowchart TD\n")
    assert 'subgraph j0["cart_recovery: Cart abandonment recovery"]' in out
    assert 'subgraph j1["welcome"]' in out
    assert '-->|"cart_viewed"|' in out


def test_graph_one_journey(project: Path) -> None:
    code, out, _ = run("graph", "--journey", "welcome", "--format", "dot", str(project))
    assert code == 0
    assert out.startswith("digraph journeys {")
    assert "cluster" not in out
    assert 'label="welcome";' in out
    assert "cart_viewed" not in out
    assert 'send push → \\"Welcome!\\"' in out


def test_graph_unknown_journey_lists_the_ids(project: Path) -> None:
    code, out, err = run("graph", "--journey", "nope", str(project))
    assert code == 2
    assert out == ""
    assert "no journey named `nope`" in err
    assert "cart_recovery, welcome" in err


@needs_dot
def test_graph_svg_to_a_file_and_to_stdout(project: Path, tmp_path: Path) -> None:
    target = tmp_path / "cart.svg"
    code, out, _ = run("graph", "-f", "svg", "-j", "cart_recovery", "-o", str(target), str(project))
    assert code == 0
    assert out == ""
    svg = target.read_bytes()
    assert b"<svg" in svg
    assert b"first_nudge" in svg
    result = CliRunner().invoke(main, ["graph", "-f", "svg", str(project)])
    assert result.exit_code == 0
    assert b"<svg" in result.stdout_bytes


def test_graph_svg_without_graphviz(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = project.parent / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, err = run("graph", "--format", "svg", str(project))
    assert code == 1
    assert out == ""
    assert GRAPHVIZ_HINT in err


def test_graph_mermaid_needs_no_graphviz(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(project))
    assert run("graph", str(project))[0] == 0


@pytest.mark.e2e
def test_graph_svg_without_graphviz_as_a_process(project: Path, tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    proc = subprocess.run(
        [sys.executable, "-m", "journeyc", "graph", "--format", "svg", str(project)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "install Graphviz" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "journeyc", "compile", "--json", str(project)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["journeys"]["welcome"]["nodes"]["1"]["kind"] == "send"


@pytest.mark.parametrize("command", ["compile", "graph"])
def test_help_documents_exit_codes(command: str) -> None:
    code, out, _ = run(command, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "Exit codes: 0" in text
    assert "2 usage error" in text
