"""``GET /v1/users/{id}/why``: why a user did (or did not) get a message, for the
dashboard's user page (docs/why.md). Registered by :func:`journeyc.serve.api.create_app`
behind the admin token."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import unquote

from fastapi import APIRouter, HTTPException, Query, Request

from journeyc.config import Config
from journeyc.serve.stores import request_store
from journeyc.store.targets import StoreTarget
from journeyc.why.model import WhyReport
from journeyc.why.replay import UnknownNameError, UnknownUserError, WhyError, explain_user

__all__ = ["why_router"]


def why_router(store_path: StoreTarget) -> APIRouter:
    """The route, reading the store at ``store_path`` (a SQLite file on a connection
    of its own per request, :mod:`.stores`: the replay runs in an in-memory store,
    the daemon's is only read). The
    daemon's config (reachability, quiet hours, caps, zone) is ``app.state.config``
    when the daemon set it, else the defaults."""
    router = APIRouter()

    @router.get(
        "/v1/users/{user_id}/why",
        responses={400: {"description": "an unknown journey or message"}, 404: {}},
    )
    def get_why(
        request: Request,
        user_id: str,
        journey: Annotated[str | None, Query(description="Only this journey.")] = None,
        message: Annotated[
            str | None,
            Query(description="Only the decisions leading to sends of this message."),
        ] = None,
    ) -> WhyReport:
        """Every decision the journeys made for a user, in order, with the values that
        decided it: a replay of their events through the engine (docs/why.md)."""
        config = getattr(request.app.state, "config", None)
        with request_store(request, store_path) as store:
            try:
                return explain_user(
                    store,
                    unquote(user_id),
                    config=config if isinstance(config, Config) else None,
                    now_ms=int(time.time() * 1000),
                    journey=journey,
                    message=message,
                )
            except UnknownUserError as exc:
                raise HTTPException(404, str(exc)) from None
            except UnknownNameError as exc:
                raise HTTPException(400, f"query parameter `{exc.param}`: {exc.detail}") from None
            except WhyError as exc:
                raise HTTPException(409, str(exc)) from None

    return router
