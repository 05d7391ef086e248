"""The engine: runtime values, compiled expressions and aggregates over the event log."""
