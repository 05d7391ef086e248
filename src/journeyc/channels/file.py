"""The ``file`` provider: one JSON object per line, appended and fsync'd.

Each line is :meth:`OutboundMessage.record` — ``key``, ``channel``, ``user_id``,
``journey``, ``step``, ``message``, ``content`` — so a file is easy to diff, to grep
and to feed to another program. A line reaches the disk before ``send`` returns.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from journeyc.channels.base import (
    OutboundMessage,
    ProviderOptions,
    TransientError,
    option_error,
    parse_options,
)


class FileOptions(ProviderOptions):
    """``[channels.X] provider = "file"``: ``path`` of the JSON-lines file (relative
    paths are taken from the configuration file's folder)."""

    path: str = Field(min_length=1)


class FileProvider:
    """Appends each message to ``path``, creating the file (not its folder)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    @classmethod
    def from_options(
        cls, channel: str, options: Mapping[str, Any], base_dir: Path | None = None
    ) -> FileProvider:
        """A provider for ``[channels.CHANNEL]``; raises ConfigError for bad options."""
        opts = parse_options(FileOptions, channel, options)
        path = Path(opts.path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.parent.is_dir():
            raise option_error(channel, "path", f"no folder {str(path.parent)!r}")
        return cls(path)

    def send(self, msg: OutboundMessage) -> None:
        """Append the message's line and fsync the file."""
        line = json.dumps(msg.record(), ensure_ascii=False, separators=(",", ":")) + "\n"
        data = line.encode("utf-8")
        try:
            with self._lock:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    # One write on an O_APPEND descriptor: lines from several
                    # processes appending to one file do not interleave.
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise TransientError(f"cannot append to {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        """Nothing to release: the file is opened per message."""
