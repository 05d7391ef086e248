"""Running `journeyc serve` as a real subprocess, for the end-to-end daemon tests.

The daemon listens on a port it picks itself (``--port 0``) unless told otherwise,
and logs ``listening on http://HOST:PORT`` on stderr; :meth:`Daemon.start` reads
the address from there and waits for ``/healthz``. Every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx

WRITE_KEY = "test-write-key"
ADMIN_TOKEN = "test-admin-token"

T = TypeVar("T")


def poll(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def write_file(path: Path, text: str) -> None:
    """Replace a file at once (write aside, then rename), as editors do."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without JOURNEYC_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYC_")}
    env.update(extra)
    return env


def serve_once(
    args: Sequence[str], cwd: Path, timeout: float = 60, command: str = "serve"
) -> subprocess.CompletedProcess[str]:
    """``journeyc serve ARGS`` (or another ``command``) run to its end in ``cwd`` (a
    daemon that should not start, or ``--no-watch``), in the environment of
    :func:`clean_env`."""
    return subprocess.run(
        [sys.executable, "-m", "journeyc", command, *args],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def key_env() -> dict[str, str]:
    """An environment holding the tests' write key and admin token."""
    return clean_env(JOURNEYC_WRITE_KEY=WRITE_KEY, JOURNEYC_ADMIN_TOKEN=ADMIN_TOKEN)


class Daemon:
    """One ``python -m journeyc serve …`` process with its output in files."""

    def __init__(
        self,
        args: Sequence[str],
        cwd: Path,
        env: dict[str, str] | None = None,
        name: str = "daemon",
    ) -> None:
        self.args = [sys.executable, "-m", "journeyc", "serve", *args]
        self.cwd = cwd
        self.env = key_env() if env is None else env
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.write_key = self.env.get("JOURNEYC_WRITE_KEY", "")
        self.admin_token = self.env.get("JOURNEYC_ADMIN_TOKEN", "")

    # ------------------------------------------------------------ the process

    def start(self, timeout: float = 30) -> Daemon:
        """Start the daemon and wait until ``/healthz`` answers."""
        with self.stdout_path.open("ab") as out, self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                self.args, cwd=self.cwd, env=self.env, stdout=out, stderr=err
            )
        offset = self.stderr_path.stat().st_size if self.stderr_path.exists() else 0

        def listening() -> str | None:
            self._fail_if_exited()
            found = re.search(r"listening on (http://\S+)", self.log()[offset:])
            return found.group(1) if found else None

        self.url = poll(listening, timeout, "the daemon to listen")

        def healthy() -> bool:
            self._fail_if_exited()
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        poll(healthy, timeout, "/healthz")
        return self

    def _fail_if_exited(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.proc.returncode}:\n{self.log()}\n{self.stdout()}"
            )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        """Send ``sig`` and return the exit code (the process must end within ``timeout``)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"the daemon did not stop within {timeout} s:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """End the process if it still runs (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # ------------------------------------------------------------ output

    def log(self) -> str:
        """Everything on stderr so far."""
        if not self.stderr_path.exists():
            return ""
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def stdout(self) -> str:
        """Everything on stdout so far."""
        if not self.stdout_path.exists():
            return ""
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float = 10, after: int = 0) -> re.Match[str]:
        """The first match of ``pattern`` in the log past offset ``after``."""
        return poll(lambda: re.search(pattern, self.log()[after:]), timeout, f"log /{pattern}/")

    # ------------------------------------------------------------ the API

    def track(self, user: str, event: str, **properties: Any) -> None:
        """POST /v1/track; the daemon must accept it."""
        body = {"userId": user, "event": event, "properties": properties}
        self._ingest("track", body)

    def identify(self, user: str, **traits: Any) -> None:
        """POST /v1/identify; the daemon must accept it."""
        self._ingest("identify", {"userId": user, "traits": traits})

    def _ingest(self, endpoint: str, body: dict[str, Any]) -> None:
        reply = httpx.post(
            f"{self.url}/v1/{endpoint}", json=body, auth=(self.write_key, ""), timeout=10
        )
        assert reply.status_code == 200, reply.text

    def admin(self, path: str) -> Any:
        """GET an admin endpoint; its JSON."""
        reply = httpx.get(
            f"{self.url}{path}",
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()
