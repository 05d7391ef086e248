"""``GET /v1/journeys/{id}/report``: a journey's report (docs/reports.md), admin only.

The route reads the store through a connection of its own, in one read transaction,
beside the daemon's writers (WAL): a report never holds the write lock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from journeyc.lang.testfile import parse_timestamp
from journeyc.reports.build import ReportError, UnknownJourneyError, build_report
from journeyc.reports.model import JourneyReport
from journeyc.serve.stores import request_store
from journeyc.serve.times import iso
from journeyc.store.targets import StoreTarget

_TIME = "An ISO-8601 time (`2026-01-05T10:00:00Z`; no zone is UTC)."


def _ms(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    ms = parse_timestamp(value)
    if ms is None:
        raise HTTPException(
            400,
            f"query parameter `{name}`: not an ISO-8601 time: {value!r}"
            " (like 2026-01-05T10:00:00Z)",
        )
    return ms


def reports_router(store_path: StoreTarget, admin: Callable[..., Any]) -> APIRouter:
    """The report route over the store at ``store_path``, behind the ``admin``
    dependency (the admin token)."""
    router = APIRouter(tags=["admin"], dependencies=[Depends(admin)])

    @router.get(
        "/v1/journeys/{journey_id}/report",
        responses={
            400: {"description": "A bad query parameter, named in the error."},
            401: {"description": "No or a wrong admin token."},
            404: {"description": "The store never deployed the journey."},
        },
    )
    def get_report(
        request: Request,
        journey_id: str,
        since: Annotated[
            str | None, Query(alias="from", description=f"From (inclusive). {_TIME}")
        ] = None,
        until: Annotated[str | None, Query(description=f"Until (exclusive). {_TIME}")] = None,
        version: Annotated[
            str | None, Query(description="Only this version (the time it took entries).")
        ] = None,
    ) -> JourneyReport:
        """A journey's entries, steps, funnel, goal, A/B figures and delivery over a
        time range (docs/reports.md)."""
        since_ms, until_ms = _ms(since, "from"), _ms(until, "until")
        try:
            with request_store(request, store_path) as store:
                return build_report(
                    store,
                    journey_id,
                    version=version,
                    since_ms=since_ms,
                    until_ms=until_ms,
                    iso=iso,
                )
        except UnknownJourneyError as exc:
            raise HTTPException(404, str(exc)) from None
        except ReportError as exc:
            raise HTTPException(400, f"query parameter `{exc.parameter}`: {exc}") from None

    return router
