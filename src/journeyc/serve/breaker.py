"""A circuit breaker per channel: a provider that keeps failing is left alone for a while.

``closed`` lets every send through and counts consecutive failures; ``failures`` in a
row open it. ``open`` lets nothing through until ``cooldown_s`` has passed; then it is
``half_open`` and lets exactly one send through as a probe: its success closes the
breaker, its failure opens it for another cool-down. A success (or a refusal that is
about the message, not the provider) resets the count.

Time is the caller's epoch milliseconds, the same ``now_ms`` the dispatcher runs at,
so tests drive it with a fake clock. Not thread-safe: the dispatcher changes it from
the one thread that runs it.

A library breaker (pybreaker) wraps the call itself and lets every caller through
in half-open; the dispatcher instead asks before it claims rows (an open breaker's
rows are rescheduled, not claimed) and wants exactly one probe, so this is a small
class of its own.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["BREAKER_STATES", "BreakerState", "CircuitBreaker"]

BreakerState = Literal["closed", "half_open", "open"]

BREAKER_STATES: dict[BreakerState, int] = {"closed": 0, "half_open": 1, "open": 2}
"""Each state as a number, for the ``journeyc_channel_breaker_state`` gauge."""


class CircuitBreaker:
    """The state of one channel's provider as the dispatcher has seen it (module docstring)."""

    def __init__(self, failures: int = 5, cooldown_s: float = 30.0) -> None:
        if failures < 1 or cooldown_s <= 0:
            raise ValueError("failures must be at least 1 and cooldown_s positive")
        self.failures = failures
        self.cooldown_ms = round(cooldown_s * 1000)
        self.consecutive = 0
        self.opened = 0  # how many times it has opened
        self._open_until: int | None = None  # epoch ms; None while closed
        self._probing = False  # half-open: the one probe is out

    def state(self, now_ms: int) -> BreakerState:
        """``closed``, ``open``, or ``half_open`` once the cool-down has passed."""
        if self._open_until is None:
            return "closed"
        return "open" if now_ms < self._open_until else "half_open"

    def open_until(self) -> int | None:
        """When the current cool-down ends (epoch ms), or None while closed."""
        return self._open_until

    def allowance(self, now_ms: int) -> int | None:
        """How many sends may start now: None for no limit (closed), 1 for the probe of
        a half-open breaker whose probe is not out yet, else 0."""
        state = self.state(now_ms)
        if state == "closed":
            return None
        return 1 if state == "half_open" and not self._probing else 0

    def probe_started(self) -> None:
        """The half-open breaker's probe went out: no other send until it ends."""
        self._probing = True

    def success(self) -> None:
        """A send went through (or was refused for the message's sake): close."""
        self.consecutive = 0
        self._open_until = None
        self._probing = False

    def failure(self, now_ms: int) -> bool:
        """A send failed (transient, timed out, or the provider raised). Returns True
        when this opened the breaker."""
        was_open = self._open_until is not None
        self.consecutive += 1
        if not was_open and self.consecutive < self.failures:
            return False
        # Open, or open again: a failed probe, or a send started before the breaker
        # opened that fails late. The cool-down runs from now.
        self._open_until = now_ms + self.cooldown_ms
        self._probing = False
        if was_open:
            return False
        self.opened += 1
        return True
