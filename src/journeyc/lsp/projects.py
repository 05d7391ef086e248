"""Which files form an open document's project, read with the editor's unsaved text.

A document belongs to the project of its directory: the ``.journey`` files under it,
as ``journeyc validate DIR`` reads them. The project grows upward while the parent
directory holds ``.journey`` files of its own (``journeys/`` with a ``messages/``
folder under it), but never past the workspace folder the document is in. So a
repository opened as a whole (the project in ``journeys/``, test fixtures elsewhere)
does not make one namespace of unrelated files.

Files are named in spans by their absolute paths, which map straight back to URIs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from journeyc.lang.ast import SourceFile
from journeyc.lang.checker import check_project
from journeyc.lang.diagnostics import Diagnostic
from journeyc.lang.parser import ParseResult, parse_file, parse_source
from journeyc.lang.project import SUFFIX, Project
from journeyc.lang.testfile import is_test_file, project_test_diagnostics
from journeyc.lsp.index import Index


def _has_journeys(directory: Path) -> bool:
    """Whether ``directory`` itself (not a subdirectory) holds a ``.journey`` file."""
    try:
        return any(p.suffix == SUFFIX and p.is_file() for p in directory.iterdir())
    except OSError:
        return False


def workspace_folder(path: Path, folders: Iterable[Path]) -> Path | None:
    """The innermost workspace folder holding ``path``, if any."""
    inside = [f for f in folders if path.is_relative_to(f)]
    return max(inside, key=lambda f: len(f.parts)) if inside else None


def project_root(path: Path, folders: Iterable[Path] = ()) -> Path:
    """The directory whose ``.journey`` files form the project of the file ``path``."""
    root = path.parent
    folder = workspace_folder(path, folders)
    while root != folder and root.parent != root and _has_journeys(root.parent):
        if folder is not None and not root.parent.is_relative_to(folder):
            break
        root = root.parent
    return root


@dataclass
class Snapshot:
    """A project as the editor sees it: parsed files (unsaved text included) and, once
    :meth:`check` ran, its diagnostics."""

    root: Path
    project: Project
    # The last text and tree that parsed, of each file that does not parse now.
    stale: dict[str, tuple[str, SourceFile]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] | None = None

    @property
    def files(self) -> list[ParseResult]:
        """The project's files and its test files (``*.test.journey``, checked against
        the project as ``journeyc validate`` does, never part of it)."""
        return [*self.project.files, *self.project.tests]

    @property
    def texts(self) -> dict[str, str]:
        """File name (an absolute path) → text."""
        return {f.path: f.text for f in self.files}

    @property
    def trees(self) -> list[SourceFile]:
        """The files that parsed."""
        return [f.tree for f in self.files if f.tree is not None]

    def index(self) -> Index:
        """The names of the project. A file that does not parse contributes its last
        tree that did, so that its declarations stay reachable from the other files;
        its spans point into :attr:`index_texts`."""
        trees = {t.path: t for t in self.trees}
        trees.update({name: tree for name, (_, tree) in self.stale.items()})
        return Index.build(trees.values(), self.index_texts)

    @property
    def index_texts(self) -> dict[str, str]:
        """The texts the spans of :meth:`index` point into."""
        return {**self.texts, **{name: text for name, (text, _) in self.stale.items()}}

    def file(self, path: Path) -> ParseResult | None:
        """The parse of one file of the project."""
        name = str(path)
        return next((f for f in self.files if f.path == name), None)

    def check(self) -> list[Diagnostic]:
        """Every diagnostic of the project (computed once)."""
        if self.diagnostics is None:
            self.diagnostics = check_project(self.project) + project_test_diagnostics(
                self.project.files, self.project.tests
            )
        return self.diagnostics


@dataclass
class Projects:
    """Loads projects, reusing the parse of a file whose text did not change.

    ``last_good`` keeps each file's last text and tree that parsed, so that
    navigation still finds the declarations of a file while it is being edited into a
    syntax error.
    """

    folders: list[Path] = field(default_factory=list)
    _parsed: dict[Path, tuple[str, ParseResult]] = field(default_factory=dict)
    last_good: dict[str, tuple[str, SourceFile]] = field(default_factory=dict)

    def root_of(self, path: Path) -> Path:
        """The project directory of the file ``path``."""
        return project_root(path.resolve(), [f.resolve() for f in self.folders])

    def load(self, path: Path, open_texts: Mapping[Path, str]) -> Snapshot:
        """The project of the file ``path``, with ``open_texts`` (the editor's unsaved
        documents) in place of what is on disk."""
        path = path.resolve()
        root = self.root_of(path)
        folders = [f.resolve() for f in self.folders]
        # Subdirectories count inside a workspace folder; a file opened on its own (in
        # a home directory, say) does not make the editor read the whole tree under it.
        pattern = f"*{SUFFIX}"
        found = root.rglob(pattern) if workspace_folder(path, folders) else root.glob(pattern)
        paths = {p.resolve() for p in found if p.is_file()}
        paths.update(p for p in open_texts if p.is_relative_to(root) and p.suffix == SUFFIX)
        if path in open_texts or path.is_file():
            paths.add(path)
        files = [self._parse(p, open_texts.get(p)) for p in sorted(paths)]
        stale = {
            f.path: self.last_good[f.path]
            for f in files
            if f.tree is None and f.path in self.last_good
        }
        project = Project(
            [f for f in files if not is_test_file(f.path)],
            roots=[root],
            tests=[f for f in files if is_test_file(f.path)],
        )
        return Snapshot(root, project, stale)

    def _parse(self, path: Path, text: str | None) -> ParseResult:
        if text is None:
            try:
                text = path.read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                # parse_file words the problem as `journeyc validate` does.
                return parse_file(path, str(path))
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == text:
            return cached[1]
        result = parse_source(text, str(path))
        self._parsed[path] = (text, result)
        if result.tree is not None:
            self.last_good[result.path] = (text, result.tree)
        return result
