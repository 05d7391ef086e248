"""The project watcher: a save is one change to the saved file, whatever the editor."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from watchfiles import Change

from journeyc.serve.watch import ProjectFilter, ProjectWatcher


@pytest.mark.parametrize(
    "name",
    [
        "sedBtoq9F",
        "perlAb12Cd",
        "main.journey~",
        "#main.journey#",
        "4913",
        ".main.journey.swp",
        "main.journey.tmp",
        "main.journey.orig",
        ".#main.journey",
    ],
)
def test_editor_temporary_files_are_ignored(tmp_path: Path, name: str) -> None:
    assert not ProjectFilter()(Change.added, str(tmp_path / name))


@pytest.mark.parametrize("name", ["main.journey", "journeyc.toml", "welcome.html", "sedan.txt"])
def test_project_files_are_watched(tmp_path: Path, name: str) -> None:
    assert ProjectFilter()(Change.modified, str(tmp_path / name))


@pytest.mark.skipif(shutil.which("sed") is None, reason="needs GNU sed")
def test_sed_in_place_is_one_change_to_the_file(tmp_path: Path) -> None:
    journey = tmp_path / "main.journey"
    journey.write_text('when a\nsend push "x"\n')
    seen: list[set[str]] = []
    changed = threading.Event()

    def on_change(paths: set[str]) -> None:
        seen.append(paths)
        changed.set()

    watcher = ProjectWatcher(tmp_path, on_change, debounce_ms=300, step_ms=20)
    watcher.start()
    try:
        # The watch is set up within milliseconds of start(); give it a moment.
        threading.Event().wait(0.3)
        subprocess.run(["sed", "-i", "s/x/y/", str(journey)], check=True)
        assert changed.wait(5), "no change seen"
        threading.Event().wait(0.5)  # a second burst would land here
    finally:
        watcher.stop()
    names = {Path(p).name for batch in seen for p in batch}
    assert names == {"main.journey"}
