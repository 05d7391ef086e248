"""``journeyc why``: why a user did (or did not) get a message, told by replaying
their events through the engine with a tracer (docs/why.md)."""
