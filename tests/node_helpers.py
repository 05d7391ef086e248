"""Node and npm packages for the tests that run real JavaScript (SDK clients, grammar).

:func:`node_packages` finds ``node`` and a ``node_modules`` directory holding the
given npm packages. ``.ci/run`` installs them; outside CI the helper installs them
itself when npm is at hand, or skips the test; under CI (``CI=true``) a missing
``node`` or package fails the test, it is never skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest


def package_name(spec: str) -> str:
    """``@scope/name@3`` -> ``@scope/name``; ``name@9`` -> ``name``."""
    at = spec.rfind("@")
    return spec[:at] if at > 0 else spec


def node_packages(packages: Sequence[str], prefix: Path, modules: Path | None = None) -> Path:
    """The ``node_modules`` directory holding ``packages``, installed if they may be.

    By default the packages are looked for (and installed) under ``prefix``; a
    ``modules`` directory given by the user is only looked in, never installed into.
    """
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if shutil.which("node") is None:
        message = "node is not installed (.ci/run installs it: apt-get install nodejs npm)"
        if ci:
            pytest.fail(message)
        pytest.skip(message)
    installable = modules is None
    modules = prefix / "node_modules" if modules is None else modules
    missing = [p for p in packages if not (modules / package_name(p) / "package.json").is_file()]
    if missing:
        install = f"npm install --prefix {prefix} {' '.join(packages)}"
        if ci:
            pytest.fail(
                f"{', '.join(missing)} not installed in {modules} (.ci/run does: {install})"
            )
        npm = shutil.which("npm")
        if npm is None or not installable:
            pytest.skip(f"{', '.join(missing)} not installed in {modules}")
        subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *packages],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return modules
