"""The SQL compiled from the IR, for every SQL store: aggregates one user at a time
(:mod:`~journeyc.store.compiled.aggregates`) and for a set of users at once
(:mod:`~journeyc.store.compiled.population`), written once and spelled per database by
a :class:`~journeyc.store.compiled.dialect.Dialect` (SQLite's in
:mod:`journeyc.store.sqlite.dialect`, PostgreSQL's in
:mod:`journeyc.store.postgres.dialect`)."""
