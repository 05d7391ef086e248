"""The daemon's project directory: load and check it, and watch it for changes.

:func:`load_checked` is what the daemon does with the directory at start and after
every change: parse, check and lower it, or raise :class:`InvalidProjectError` with the
diagnostics rendered as text. :class:`ProjectWatcher` runs ``watchfiles`` in a
thread of its own and calls back with the changed paths; the daemon decides what
a change means (deploy, or keep the last good version and log why).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import watchfiles

from journeyc.compile import ir
from journeyc.lang.diagnostics import render_text, sort_key

__all__ = ["Checked", "InvalidProjectError", "ProjectFilter", "ProjectWatcher", "load_checked"]

log = logging.getLogger(__name__)


class InvalidProjectError(Exception):
    """A project that cannot be deployed: ``text`` says why, compiler-style."""

    def __init__(self, text: str, errors: int) -> None:
        super().__init__(text)
        self.text = text
        self.errors = errors


@dataclass(frozen=True, slots=True)
class Checked:
    """A valid project's IR, its warnings rendered as text ("" for none), and how
    many `.journey` files it was read from."""

    project: ir.ProjectIR
    warnings: str
    files: int


def load_checked(project_dir: Path) -> Checked:
    """Parse, check and lower every `.journey` file under ``project_dir``.

    Raises :class:`InvalidProjectError` when the checker finds errors, a message's
    template file cannot be read, or the directory is gone. A directory without
    journey files is a valid, empty project.
    """
    from journeyc.compile.lower import LowerError, lower_project
    from journeyc.lang.checker import check_project
    from journeyc.lang.project import ProjectPathError, load_project

    try:
        project = load_project([project_dir])
    except ProjectPathError as exc:
        raise InvalidProjectError(f"{exc}\n", 1) from None
    diagnostics = sorted(check_project(project), key=sort_key)
    errors = [d for d in diagnostics if d.is_error]
    if errors:
        raise InvalidProjectError(render_text(diagnostics, project.sources), len(errors))
    try:
        lowered = lower_project(project)
    except LowerError as exc:
        raise InvalidProjectError(f"{exc}\n", 1) from None
    return Checked(lowered, render_text(diagnostics, project.sources), len(project.files))


EDITOR_TEMP_PATTERNS = (
    r"^\.",  # hidden: .name.tmp, .#name (Emacs locks), .name.swp (Vim)
    r"^sed[A-Za-z0-9]{6}$",  # GNU `sed -i` writes sedXXXXXX, then renames it
    r"^perl[A-Za-z0-9]{6}$",  # `perl -i`
    r"~$",  # backups: name~ (Emacs, nano, many others)
    r"^#.*#$",  # Emacs auto-save
    r"^4913$",  # Vim's probe that the directory is writable
    r"\.(tmp|temp|bak|orig|rej|swp|swx|swo)$",
)
"""Names of files editors and tools write beside the one they save, briefly: a change
to one of these is no change to the project (regular expressions on the file name)."""


class ProjectFilter(watchfiles.DefaultFilter):
    """``watchfiles``' default filter, and editors' and tools' temporary files too
    (:data:`EDITOR_TEMP_PATTERNS`): they come and go around a save, and the change
    that matters is the saved file's own."""

    ignore_entity_patterns = (
        *watchfiles.DefaultFilter.ignore_entity_patterns,
        *EDITOR_TEMP_PATTERNS,
    )


class ProjectWatcher:
    """Watches a directory (deeply) in a background thread.

    ``on_change`` gets the set of changed paths, once per burst of changes
    (``watchfiles`` groups changes until none came for ``step_ms``, at most
    ``debounce_ms``). It runs in the watcher's thread; an exception it raises is
    logged and watching goes on. Hidden files, editor swap files, VCS and cache
    folders are ignored (:class:`ProjectFilter`).
    """

    def __init__(
        self,
        directory: Path,
        on_change: Callable[[set[str]], None],
        *,
        debounce_ms: int = 1600,
        step_ms: int = 50,
    ) -> None:
        self.directory = directory
        self.on_change = on_change
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start watching in a new thread (the watch is set up within milliseconds)."""
        if self._thread is not None:
            raise RuntimeError("the watcher is already started")
        self._thread = threading.Thread(target=self._run, name="journeyc-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Stop watching and wait (up to ``timeout`` seconds) for the thread to end."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """Whether the watching thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            # The stop event is checked every step, so stop() returns promptly.
            for batch in watchfiles.watch(
                self.directory,
                watch_filter=ProjectFilter(),
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=self._stop,
                raise_interrupt=False,
            ):
                if self._stop.is_set():
                    break
                try:
                    self.on_change({path for _, path in batch})
                except Exception:
                    log.exception("handling a change under %s failed", self.directory)
        except Exception:
            # The directory went away, or the OS refused a watch: say so and stop;
            # the daemon keeps serving the last good version.
            log.exception("stopped watching %s", self.directory)
