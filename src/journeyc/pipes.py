"""Messages between a process and the processes it forked, over a pipe.

marshal writes and reads plain values (numbers, text, lists, tuples, dicts) several
times faster than pickle; a message holding anything else goes with pickle. The
first byte says which.
"""

from __future__ import annotations

import marshal
import pickle
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["GONE", "receive", "send"]

GONE = (EOFError, ConnectionResetError)
"""What :func:`receive` raises when the other process is gone (one that died with a
message unread resets the connection rather than closing it)."""


def send(conn: Connection, message: Any) -> None:
    """Send ``message``: with marshal, or with pickle for a value marshal does not
    write."""
    try:
        data = b"m" + marshal.dumps(message)
    except ValueError:
        data = b"p" + pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    conn.send_bytes(data)


def receive(conn: Connection) -> Any:
    """A message :func:`send` sent."""
    data = conn.recv_bytes()
    body = memoryview(data)[1:]
    return marshal.loads(body) if data[:1] == b"m" else pickle.loads(body)
