"""Reading a large file of lines in parts, one process a part.

The file's bytes are cut at line ends into parts of about equal size. Each part is
read by a function given the number of its first line and its lines; this process
reads the first part while processes forked from it read the others and send back
what they made, as plain values (``pack``: :mod:`journeyc.pipes` sends those with
marshal, several times faster than pickle sends records), which ``unpack`` makes
whole again here. The parts' results come back in file order.
"""

from __future__ import annotations

import itertools
import multiprocessing
import traceback
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from journeyc.pipes import GONE, receive, send

__all__ = ["read_in_parts"]

T = TypeVar("T")


def read_in_parts(
    data: bytes,
    parts: int,
    read: Callable[[int, Iterable[bytes]], T],
    pack: Callable[[T], Any],
    unpack: Callable[[Any], T],
) -> list[T]:
    """``read(first_line, lines)`` of each part of ``data`` (split at ``\\n``, lines
    keep no line end), in file order; ``pack`` turns a result into plain values
    (quick to send), ``unpack`` turns them back. One part, or where processes cannot fork:
    read here, whole."""
    cuts = _cuts(data, parts)
    if len(cuts) <= 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [read(1, data.split(b"\n"))]
    ctx = multiprocessing.get_context("fork")
    firsts = [1]  # the number of each part's first line
    for a, b in itertools.pairwise(cuts[:-1]):
        firsts.append(firsts[-1] + data.count(b"\n", a, b))
    workers = []
    for k in range(1, len(cuts) - 1):
        mine, theirs = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_read_part,
            args=(theirs, read, pack, firsts[k], data, cuts[k], cuts[k + 1]),
            daemon=True,
        )
        proc.start()
        theirs.close()
        workers.append((mine, proc))
    results = [read(1, data[: cuts[1] - 1].split(b"\n"))]
    for mine, proc in workers:
        with mine:
            try:
                status, payload = receive(mine)
            except GONE:
                proc.join()
                raise RuntimeError(f"a reading process died (exit code {proc.exitcode})") from None
        proc.join()
        if status != "ok":
            raise RuntimeError(f"a reading process failed:\n{payload}")
        results.append(unpack(payload))
    return results


def _cuts(data: bytes, parts: int) -> list[int]:
    """Offsets where the parts start (just past a ``\\n``), and the end."""
    cuts = [0]
    for k in range(1, parts):
        at = data.find(b"\n", max(cuts[-1], len(data) * k // parts))
        if at < 0 or at + 1 >= len(data):
            break
        cuts.append(at + 1)
    cuts.append(len(data) + 1)  # past the end: the last part has no line end to drop
    return cuts


def _read_part(
    conn: Connection,
    read: Callable[[int, Iterable[bytes]], Any],
    pack: Callable[[Any], Any],
    first: int,
    data: bytes,
    start: int,
    stop: int,
) -> None:
    try:
        message = ("ok", pack(read(first, data[start : stop - 1].split(b"\n"))))
    except BaseException:  # told to the parent, which raises
        message = ("error", traceback.format_exc())
    send(conn, message)
    conn.close()
