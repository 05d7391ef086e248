"""The daemon side of journeyc: the scheduler that drives the engine, the HTTP API
that takes events, and the dispatcher that delivers the outbox to providers."""
