"""journeyc: customer journeys as code — a compiler, a simulator and a daemon."""

__version__ = "0.1.0"
