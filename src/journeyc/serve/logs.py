"""The log of the daemon's two processes (the API process and the engine process):
one line per record on stderr, with UTC times."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["configure_logging"]


class _UtcFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """The record's time as ISO-8601 UTC with milliseconds."""
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{t}.{int(record.msecs):03d}Z"


def configure_logging(level: str) -> None:
    """One line per record on stderr; the libraries' chatter held back to warnings."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("apscheduler", "asyncio", "uvicorn.error", "watchfiles", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
