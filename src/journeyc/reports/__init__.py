"""Journey reports: what a journey did over a time range, read from a store.

:mod:`~journeyc.reports.model` holds the report's JSON shape (what ``journeyc report
--json``, ``GET /v1/journeys/{id}/report`` and the dashboard read),
:mod:`~journeyc.reports.stats` the A/B statistics (statsmodels) and
:mod:`~journeyc.reports.build` puts a report together from the store's aggregates
(:class:`journeyc.store.abc.ReportReads`). docs/reports.md explains every figure.
"""
