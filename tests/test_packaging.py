"""The wheel: built from the checkout, it carries the grammar, and journeyc runs from it
without the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_the_wheel_carries_the_grammar_and_parses_without_the_checkout(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("journeyc-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        assert "journeyc/lang/journey.lark" in names
        assert (
            zf.read("journeyc/lang/journey.lark")
            == (ROOT / "grammar" / "journey.lark").read_bytes()
        )
        # The dashboard's templates and assets ride in the package.
        ui = ROOT / "src" / "journeyc" / "serve" / "ui"
        for path in [*ui.glob("templates/*"), *ui.glob("static/*")]:
            assert f"journeyc/serve/ui/{path.relative_to(ui).as_posix()}" in names
        zf.extractall(tmp_path / "site")
    journey = tmp_path / "a.journey"
    journey.write_text('when signed_up\nsend push "hi"\n')
    # Only the unpacked wheel on the path (and the dependencies of this environment),
    # run from elsewhere: the grammar must come from the wheel.
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    code = (
        "import sys, journeyc.lang.parser as p; from journeyc.cli import main;"
        f"assert p.grammar_path().is_relative_to({str(tmp_path / 'site')!r}), p.grammar_path();"
        "sys.argv = ['journeyc', 'validate', sys.argv[1]]; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(journey)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
