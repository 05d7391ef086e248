"""Placeholder until the checker lands: parse diagnostics only."""

from __future__ import annotations

from journeyc.lang.diagnostics import Diagnostic
from journeyc.lang.project import Project


def check_project(project: Project) -> list[Diagnostic]:
    """Every diagnostic of the project."""
    return project.parse_diagnostics
