"""The channel between ``journeyc serve``'s two processes, and the engine process's
tie to the API process.

One ``AF_UNIX`` stream socket pair. The API process (the parent) writes the engine
process's settings as one JSON line, then one byte per *nudge*: events were
committed, run the engine. Nudges never block the request that sends them: when
some are already waiting unread, one more adds nothing, so a full socket buffer
just drops it. The engine process writes newline-delimited JSON messages back:
``ready`` (or ``failed``) once at start, then after every engine run, dispatcher
run and deploy what the API process shows on ``/metrics`` and ``/v1/status``.

When the API process goes, the engine process goes too: on Linux the kernel kills
it (``PR_SET_PDEATHSIG``, which also covers SIGKILL of the parent), and anywhere
the channel's end of file tells it to stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["ChildEnd", "ParentEnd", "die_with_parent", "pair"]

log = logging.getLogger("journeyc.serve")

_NUDGE = b"!"
_PR_SET_PDEATHSIG = 1


def pair() -> tuple[ParentEnd, socket.socket]:
    """The parent's end, and the socket to hand the child (inheritable; the parent
    closes its copy once the child runs)."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    child.set_inheritable(True)
    return ParentEnd(parent), child


class ParentEnd:
    """The API process's end: settings and nudges out, messages in."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")

    def send_settings(self, settings: dict[str, Any]) -> None:
        """The engine process's settings: the first line it reads."""
        self._sock.sendall(json.dumps(settings).encode() + b"\n")

    def nudge(self) -> None:
        """Ask for an engine run, without ever blocking."""
        try:
            self._sock.send(_NUDGE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            pass  # nudges wait unread already: the engine will run
        except OSError:
            pass  # the engine process is gone; the one started next catches up

    def messages(self) -> Iterator[dict[str, Any]]:
        """The engine process's messages until it closes its end (it exited)."""
        try:
            for line in self._reader:
                yield json.loads(line)
        except (OSError, ValueError):
            return

    def close(self) -> None:
        """Close the socket; a reader blocked in :meth:`messages` sees the end."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.close()
        self._sock.close()


class ChildEnd:
    """The engine process's end: settings and nudges in, messages out."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._lock = threading.Lock()

    def settings(self) -> dict[str, Any]:
        """The settings line; EOFError when the parent closed the channel first."""
        line = self._reader.readline()
        if not line:
            raise EOFError("the API process closed the channel")
        value: dict[str, Any] = json.loads(line)
        return value

    def wait_nudge(self) -> bool:
        """Block until one or more nudges come (True) or the parent is gone (False)."""
        try:
            return bool(self._reader.read1(4096))
        except OSError:
            return False

    def send(self, message: dict[str, Any]) -> None:
        """One message to the API process (from any thread); lost if it is gone."""
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        # An error means the parent is gone: this process is about to stop.
        with self._lock, contextlib.suppress(OSError):
            self._sock.sendall(data)


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel SIGKILL this process when its parent thread ends (Linux); exit
    at once if the parent is already gone. Elsewhere the channel's end of file is
    the only sign (see the engine process's nudge reader)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
    if os.getppid() != parent_pid:
        os._exit(1)  # the parent died before the signal was asked for
