"""Shared test set-up: hypothesis profiles and paths."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.daemon_helpers import Daemon

ROOT = Path(__file__).resolve().parent.parent

# `ci` keeps the suite fast on 2 cores; `thorough` goes deep when asked for with
# `pytest --hypothesis-profile=thorough`.
settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Daemons a test starts (append them): killed at the end, whatever happened."""
    started: list[Daemon] = []
    yield started
    for d in started:
        d.kill()
