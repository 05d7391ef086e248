"""A project: all `.journey` files of the paths given, parsed, in one namespace."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from journeyc.lang.ast import SourceFile
from journeyc.lang.diagnostics import Diagnostic
from journeyc.lang.parser import ParseResult, parse_file
from journeyc.lang.testfile import is_test_file

SUFFIX = ".journey"


def inside_project(path: Path, roots: Sequence[Path]) -> bool:
    """Whether ``path``, once resolved (``..`` and symbolic links followed), lies in
    one of the directories ``roots`` (resolved too): where a ``file`` template may
    be read from."""
    resolved = path.resolve()
    return any(resolved.is_relative_to(root.resolve()) for root in roots)


class ProjectPathError(Exception):
    """A path given on the command line that is not a journey file or directory."""


@dataclass
class Project:
    """The parsed files of a project. ``files`` are in path order."""

    files: list[ParseResult] = field(default_factory=list)
    # Texts of other files diagnostics point into (message templates read by `file`).
    extra_sources: dict[str, str] = field(default_factory=dict)
    # The directories `file` templates must be inside: each directory given, and the
    # directory of each file given. None: each journey file's own directory.
    roots: list[Path] | None = None
    # The test files (`*.test.journey`) found beside the project: not part of it (they
    # never deploy); `validate` checks them and `journeyc test` runs them.
    tests: list[ParseResult] = field(default_factory=list)

    @property
    def trees(self) -> list[SourceFile]:
        """The ASTs of the files that parsed."""
        return [f.tree for f in self.files if f.tree is not None]

    @property
    def sources(self) -> dict[str, str]:
        """File name → text, for rendering diagnostics."""
        return {
            **self.extra_sources,
            **{f.path: f.text for f in self.tests},
            **{f.path: f.text for f in self.files},
        }

    @property
    def parse_diagnostics(self) -> list[Diagnostic]:
        """The diagnostics found while parsing, file by file."""
        return [d for f in self.files for d in f.diagnostics]

    @property
    def has_syntax_errors(self) -> bool:
        """Whether any file failed to parse."""
        return any(f.tree is None for f in self.files)

    def file_dir(self, path: str) -> Path:
        """The directory a file's ``file "…"`` fields are relative to."""
        return Path(path).parent

    def template_roots(self, path: str) -> list[Path]:
        """The directories the ``file "…"`` templates of the journey file ``path`` must
        be inside (after ``..`` and symbolic links): the project's directories."""
        return self.roots if self.roots is not None else [self.file_dir(path)]


def display_name(path: Path) -> str:
    """A path as diagnostics show it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def find_files(paths: Sequence[str | Path], *, tests: bool = True) -> list[Path]:
    """The journey files named by ``paths``: files as given, directories searched deeply.

    ``tests=False`` leaves test files (``*.test.journey``, docs/testing.md) out: they
    are not part of the project. A test file given by name brings in the journey
    files of its directory instead, the project it tests."""
    found: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found.extend(
                sorted(
                    x
                    for x in path.rglob(f"*{SUFFIX}")
                    if x.is_file() and (tests or not is_test_file(x.name))
                )
            )
        elif path.is_file() and not tests and is_test_file(path.name):
            found.extend(
                sorted(
                    x
                    for x in path.parent.glob(f"*{SUFFIX}")
                    if x.is_file() and not is_test_file(x.name)
                )
            )
        elif path.is_file():
            found.append(path)
        elif path.exists():
            raise ProjectPathError(f"{p}: not a file or directory")
        else:
            raise ProjectPathError(f"{p}: no such file or directory")
    unique: dict[Path, None] = {}
    for f in found:
        unique.setdefault(f.resolve(), None)
    return list(unique)


def find_test_files(paths: Sequence[str | Path]) -> list[Path]:
    """The test files (``*.test.journey``) named by ``paths`` or under them."""
    return [f for f in find_files(paths) if is_test_file(f.name)]


def load_project(paths: Sequence[str | Path], max_errors: int = 50) -> Project:
    """Parse every journey file under ``paths`` into one project; the test files
    there are parsed into ``tests``, apart from it."""
    files = [parse_file(f, display_name(f), max_errors) for f in find_files(paths, tests=False)]
    tests = [parse_file(f, display_name(f), max_errors) for f in find_test_files(paths)]
    roots = [Path(p) if Path(p).is_dir() else Path(p).parent for p in paths]
    return Project(files, roots=roots, tests=tests)
