"""The engine process as the API process sees it: started, watched, restarted.

:class:`EngineProcess` starts ``python -m journeyc.serve.worker`` with one end of
the channel (:mod:`.ipc`), hands it the settings and waits for ``ready``. A thread
of its own then reads the engine process's messages (each goes to ``on_message``)
until the channel ends. If that happens while the daemon is not stopping, the engine
process died: the thread logs it (with its exit code or signal) and starts another
after a pause that doubles with each death in quick succession (1 s up to 30 s;
one that ran for a minute resets it). Events are committed by the API either way,
so the new engine process catches up with what came in meanwhile; sends the dead
one had claimed are taken back when the new one starts.

The same thread starts every engine process: Linux delivers the engine process's
parent-death signal when the *thread* that started it ends, so it must be one that
lives as long as the daemon serves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from journeyc.serve.ipc import ParentEnd, pair

__all__ = ["EngineProcess", "EngineStartError"]

log = logging.getLogger("journeyc.serve")

RESTART_MIN_S = 1.0
"""The pause before the first restart after the engine process died."""

RESTART_MAX_S = 30.0
"""The longest pause between restarts."""

HEALTHY_S = 60.0
"""An engine process that ran this long before dying resets the pause."""

STOP_TIMEOUT_S = 30.0
"""How long :meth:`EngineProcess.stop` waits for the engine process to finish the
run in hand before it kills it."""


class EngineStartError(Exception):
    """The first engine process could not start; ``message`` is its ``failed``
    message (with ``text`` and ``errors`` for an invalid project)."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(str(message.get("failed", "the engine process could not start")))
        self.message = message


class EngineProcess:
    """The engine process of one daemon (see the module docstring)."""

    def __init__(
        self, settings: dict[str, Any], on_message: Callable[[dict[str, Any]], None]
    ) -> None:
        self._settings = settings
        self._on_message = on_message
        self._channel: ParentEnd | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._first: dict[str, Any] = {}
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The running engine process's pid (None between a death and the restart)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self, timeout: float = 120.0) -> dict[str, Any]:
        """Start the engine process and return its ``ready`` message; raises
        :class:`EngineStartError` when it reports ``failed`` or exits first."""
        self._thread = threading.Thread(target=self._run, name="journeyc-engine", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            self.stop()
            raise EngineStartError({"failed": f"the engine process did not start in {timeout} s"})
        if "ready" not in self._first:
            self.stop()
            raise EngineStartError(self._first)
        return self._first

    def nudge(self) -> None:
        """Wake the engine: events were committed (never blocks)."""
        channel = self._channel
        if channel is not None:
            channel.nudge()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the engine process and wait for it to finish the run in hand (SIGKILL
        after ``timeout``). Safe to call more than once."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("the engine process did not stop in %.0f s: killing it", timeout)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        pause = RESTART_MIN_S
        while True:
            started = time.monotonic()
            code = self._run_one()
            if self._stopping.is_set() or "ready" not in self._first:
                self._started.set()  # the first start failed: start() reports it
                return
            lived = time.monotonic() - started
            if lived >= HEALTHY_S:
                pause = RESTART_MIN_S
            # Exit 0 is a SIGTERM sent to it, not by this process: most likely to the
            # whole process group, and this process stops too (then it is not started
            # again: the pause gives the signal time to arrive here).
            log.log(
                logging.WARNING if code == 0 else logging.ERROR,
                "the engine process %s after %.1f s; starting another in %.0f s",
                _how(code),
                lived,
                pause,
            )
            if self._stopping.wait(pause):
                return
            pause = min(RESTART_MAX_S, pause * 2)
            self.restarts += 1

    def _run_one(self) -> int:
        """Start one engine process, relay its messages until it exits, and return its
        exit code (negative: the signal that ended it)."""
        parent, child = pair()
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "journeyc.serve.worker",
                    str(child.fileno()),
                    str(os.getpid()),
                ],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self._proc = proc
        # An error means it died at once: the messages below end at once too.
        with contextlib.suppress(OSError):
            parent.send_settings(self._settings)
        self._channel = parent
        try:
            for message in parent.messages():
                if not self._started.is_set():
                    if "ready" not in message and "failed" not in message:
                        self._on_message(message)
                        continue
                    self._first = message
                    if "ready" in message:
                        self._on_message(message)
                    self._started.set()
                    continue
                try:
                    self._on_message(message)
                except Exception:
                    log.exception("a message from the engine process could not be used")
        finally:
            self._channel = None
            parent.close()
        return proc.wait()


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"
