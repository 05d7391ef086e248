"""The daemon's HTTP API: Segment-compatible ingest, the admin API, health and metrics.

Ingest speaks Segment's HTTP tracking API, so existing SDKs and pipelines point at
journeyc unchanged: ``POST /v1/track``, ``/v1/identify`` and ``/v1/batch`` with the
write key as the HTTP Basic user name (or in the body's ``writeKey``). A call is
answered ``200 {"success": true}`` only after its events are committed; a repeated
``messageId`` is acknowledged and ignored. Bad input always gets a 4xx whose
``error`` names what is wrong (``$.batch[3].event: is required``), and a batch with
one bad event stores nothing.

A call without a ``messageId`` is given a random one: two such calls are two events,
however alike. Text that cannot be written as UTF-8 (a lone surrogate, from a JSON
``\\ud800`` escape) is a 400 naming the field, like any other bad value.

The admin API (``Authorization: Bearer ADMIN_TOKEN``) shows a user, forgets one,
reports per journey and serves the in-app inbox. A user id may hold any character:
in a path it is percent-encoded (``/v1/users/a%2Fb`` is user ``a/b``, and its
``/inbox`` stays apart from user ``a/b/inbox``; ``.`` and ``..`` as ``%2E``).
``OPTIONS`` on a path answers 200 with ``Allow`` naming every method the path takes
(a 405 names them too). Endpoints are plain ``def``
functions: SQLite blocks, so they run in FastAPI's thread pool. Writes go through
the app's one :class:`~journeyc.store.abc.Store`; reads use short-lived
connections of their own, which under WAL see committed data only and never wait
for the writer.
"""

import hmac
import json
import logging
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import (
    APIKeyHeader,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from journeyc import __version__
from journeyc.events import (
    Event,
    EventError,
    Kind,
    Problem,
    parse_batch,
    parse_call,
    random_id,
    reject_constant,
)
from journeyc.serve import ui
from journeyc.serve.deliveries import (
    SIGNATURE_HEADER,
    DeliveriesAccepted,
    DeliveriesCall,
    DeliveryWebhook,
    SignatureError,
    verify,
)
from journeyc.serve.metrics import CONTENT_TYPE, Metrics
from journeyc.serve.models import (
    ActionOut,
    AliasCall,
    BatchCall,
    Cohort,
    ErrorBody,
    Forgotten,
    Health,
    IdentifyCall,
    Inbox,
    InboxMessage,
    JourneyStats,
    JourneysView,
    LiveJourney,
    Membership,
    ProblemOut,
    Sends,
    StatusView,
    Success,
    TrackCall,
    UserView,
    VersionOut,
)
from journeyc.serve.reports_api import reports_router
from journeyc.serve.times import iso, now_ms
from journeyc.serve.why_api import why_router
from journeyc.store.abc import AdminReads, Store
from journeyc.store.errors import DatabaseError, OperationalError, StoreBusyError
from journeyc.store.open import open_full_store
from journeyc.store.targets import StoreTarget

log = logging.getLogger(__name__)

MAX_EVENT_BYTES = 32 * 1024
"""Segment's limit on one call: the body of ``/v1/track``, or one item of a batch."""

MAX_BATCH_BYTES = 500 * 1024
"""Segment's limit on a ``/v1/batch`` body (after gzip is undone)."""

RECENT_ACTIONS = 50
"""How many of a user's latest actions ``GET /v1/users/{id}`` shows."""

_JSON_TYPES = ("", "application/json", "text/plain")
_SCHEMA_REF = "#/components/schemas/{model}"


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """A request refused with ``status`` and a JSON reason (``{"error": message}``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        problems: tuple[Problem, ...] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems = problems
        self.headers = dict(headers or {})


_BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="journeyc"'}
_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="journeyc"'}

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}

# The ingest outcome a refused request counts as, by status (400s not listed: invalid).
_OUTCOMES = {401: "unauthorized", 413: "too_large", 415: "unsupported_media_type"}


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401, 413, 415, 503)
}
_ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody} for status in (400, 401)
}


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"$ref": _SCHEMA_REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class _App(FastAPI):
    """FastAPI with the ingest bodies (read by hand, capped) in the OpenAPI document."""

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document, built once; adds the Segment call schemas."""
        if self.openapi_schema is None:
            schema = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=self.routes,
            )
            _, defs = models_json_schema(
                [
                    (m, "validation")
                    for m in (TrackCall, IdentifyCall, AliasCall, BatchCall, DeliveriesCall)
                ],
                ref_template=_SCHEMA_REF,
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs["$defs"])
            self.openapi_schema = schema
        return self.openapi_schema


# ---------------------------------------------------------------- reading bodies


def _body_reader(limit: int) -> Callable[[Request], Awaitable[bytes]]:
    """A dependency that reads the body, gunzipped, refusing it past ``limit`` bytes."""

    async def read_body(request: Request) -> bytes:
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media not in _JSON_TYPES and not media.endswith("+json"):
            raise ApiError(415, "unsupported_media_type", f"expected JSON, not {media}")
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise ApiError(
                415, "unsupported_media_type", f"unsupported Content-Encoding {encoding}"
            )
        too_large = ApiError(413, "too_large", f"the body is over the {limit // 1024} KB limit")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        body = bytearray()
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if inflater is not None:
                try:
                    # max_length stops a small gzip bomb from filling memory.
                    chunk = inflater.decompress(chunk, limit + 1 - len(body))
                except zlib.error as exc:
                    raise ApiError(400, "invalid_body", f"the body is not gzip ({exc})") from None
            body += chunk
            if len(body) > limit or received > limit:
                raise too_large
        if inflater is not None and not inflater.eof:
            raise ApiError(400, "invalid_body", "the gzip body is cut short")
        return bytes(body)

    return read_body


def _decode_json(raw: bytes) -> object:
    if not raw.strip():
        raise ApiError(400, "invalid_body", "the body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(
            400, "invalid_body", f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        return json.loads(text, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(
            400,
            "invalid_json",
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _same(given: str, secret: str) -> bool:
    # surrogatepass: a key from a JSON body may hold a lone surrogate; it is just wrong.
    return hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), secret.encode("utf-8", "surrogatepass")
    )


def _event_size(item: object) -> int:
    # surrogatepass: text that is not UTF-8 is refused by parse_batch, naming the field.
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    return len(text.encode("utf-8", "surrogatepass"))


# ---------------------------------------------------------------- the service


class _Service:
    """What the routes do, apart from HTTP: ingest into the store and admin reads."""

    def __init__(
        self,
        store: Store,
        write_key: str,
        metrics: Metrics,
        on_events: Callable[[], None] | None,
        status: Callable[[], Mapping[str, Any]] | None,
    ) -> None:
        self.store = store
        self.write_key = write_key
        self.metrics = metrics
        self.on_events = on_events
        self.status = status

    # ------------------------------------------------------------ ingest

    def ingest(self, endpoint: str, raw: bytes, header_ok: bool) -> Success:
        """Authenticate, validate and commit one ingest request."""
        cpu = time.thread_time()
        try:
            return self._ingest(endpoint, raw, header_ok)
        finally:
            self.metrics.cpu_seconds.labels("ingest").inc(time.thread_time() - cpu)

    def _ingest(self, endpoint: str, raw: bytes, header_ok: bool) -> Success:
        received_ms = now_ms()
        body = self._authorized_body(raw, header_ok)
        events: list[Event]
        ignored: list[str] = []  # fields parsing ignored: counted once the request is taken
        try:
            if endpoint == "batch":
                self._check_batch_items(body)
                events = parse_batch(body, received_ms, new_id=random_id, on_ignored=ignored.append)
            else:
                kind: Kind = (
                    "track"
                    if endpoint == "track"
                    else "alias"
                    if endpoint == "alias"
                    else "identify"
                )
                # A track call's context.traits make an identify event before it.
                events = parse_call(
                    body, received_ms, kind, new_id=random_id, on_ignored=ignored.append
                )
        except EventError as exc:
            raise ApiError(
                400, "invalid_event", "; ".join(str(p) for p in exc.problems), exc.problems
            ) from None
        seqs = self.store.append_events(events)
        added = sum(seq is not None for seq in seqs)
        # An alias event that merged nothing (the ids name one user already: every call
        # after a login carries both) is no repeated call: counted as neither.
        merged_nothing = sum(
            seq is None and e.kind == "alias" for e, seq in zip(events, seqs, strict=True)
        )
        counter = self.metrics.events_received
        counter.labels(endpoint, "accepted").inc(added)
        counter.labels(endpoint, "duplicate").inc(len(seqs) - added - merged_nothing)
        for field in ignored:
            self.metrics.ignored_fields.labels(field).inc()
        if added and self.on_events is not None:
            try:
                self.on_events()
            except Exception:
                # The events are committed: failing the request now would only
                # make the client resend what the log already holds.
                log.exception("on_events failed after %d events were committed", added)
        return Success()

    def _authorized_body(self, raw: bytes, header_ok: bool) -> dict[str, Any]:
        try:
            body = _decode_json(raw)
        except ApiError:
            if not header_ok:
                raise _no_write_key() from None
            raise
        if not header_ok:
            key = body.get("writeKey") if isinstance(body, dict) else None
            if not isinstance(key, str) or not key:
                raise _no_write_key()
            if not _same(key, self.write_key):
                raise ApiError(401, "unauthorized", "wrong write key", headers=_BASIC_CHALLENGE)
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", f"expected a JSON object, not {_json_kind(body)}")
        return body

    @staticmethod
    def _check_batch_items(body: Mapping[str, Any]) -> None:
        batch = body.get("batch")
        if not isinstance(batch, list):
            return
        for i, item in enumerate(batch):
            size = _event_size(item)
            if size > MAX_EVENT_BYTES:
                raise ApiError(
                    413,
                    "too_large",
                    f"$.batch[{i}]: the event is {size} bytes, "
                    f"over the {MAX_EVENT_BYTES // 1024} KB limit",
                )

    # ------------------------------------------------------------ admin

    def reading(self) -> AbstractContextManager[AdminReads]:
        """Reads of one snapshot of the store, for several queries."""
        return self.store.reading()

    def user(self, user_id: str) -> UserView:
        """The user's profile, live journeys and last actions; 404 for a stranger. An
        id merged into another user shows that user (``user_id`` names them)."""
        with self.reading() as reads:
            user_id = reads.canonical_user(user_id)
            traits = reads.traits(user_id)
            journeys = [
                LiveJourney(
                    journey_id=r.journey_id,
                    version=r.version,
                    entry_no=r.entry_no,
                    step=r.node,
                    status=r.status,
                    entered_at=iso(r.entered_at),
                    wake_at=iso(r.wake_at),
                    waiting_for=r.waiting_for,
                )
                for r in reads.live_instances(user_id)
            ]
            segments = [
                Membership(segment=segment, since=iso(since))
                for segment, since in reads.memberships(user_id)
            ]
            actions = [
                ActionOut(
                    at=iso(r.at),
                    journey_id=r.journey_id,
                    step=r.step,
                    action=r.action,
                    detail=r.detail,
                )
                for r in reads.recent_actions(user_id, RECENT_ACTIONS)
            ]
            seen = traits is not None or bool(journeys) or bool(actions)
            if not seen:
                seen = reads.has_events(user_id)
        if not seen:
            raise ApiError(404, "not_found", f"no user {json.dumps(user_id)}")
        return UserView(
            user_id=user_id,
            traits=traits if traits is not None else {},
            journeys=journeys,
            segments=segments,
            actions=actions,
        )

    def forget(self, user_id: str) -> Forgotten:
        """Erase the user everywhere, under every id that names them (an anonymous id
        merged into a known user forgets that user, and the other way round);
        forgetting a stranger removes nothing."""
        return Forgotten(user_id=user_id, removed=self.store.forget_user(user_id))

    def journeys(self) -> JourneysView:
        """Per journey: versions, live instances per step, entries, goals and sends."""
        stats: dict[str, JourneyStats] = {}

        def of(journey_id: str) -> JourneyStats:
            if journey_id not in stats:
                stats[journey_id] = JourneyStats(
                    id=journey_id,
                    versions=[],
                    instances={},
                    entries=0,
                    goals=0,
                    arms={},
                    holdout=Cohort(entries=0, goals=0),
                    sends=Sends(sent={}, queued={}, failed={}),
                    suppressions={},
                )
            return stats[journey_id]

        with self.reading() as reads:
            for jid, version, deployed_at, active in reads.journey_versions():
                of(jid).versions.append(
                    VersionOut(version=version, deployed_at=iso(deployed_at), active=active)
                )
            for jid, _, node, count in reads.live_per_step():
                instances = of(jid).instances
                instances[node] = instances.get(node, 0) + count
            for jid, arm, held, entries, goals in reads.entry_cohorts():
                journey = of(jid)
                journey.entries += entries
                journey.goals += goals
                if held:
                    cohort: Cohort | None = journey.holdout
                elif arm is not None:
                    cohort = journey.arms.setdefault(arm, Cohort(entries=0, goals=0))
                else:
                    cohort = None
                if cohort is not None:
                    cohort.entries += entries
                    cohort.goals += goals
            for jid, status, label, count in reads.sends_per_journey():
                journey = of(jid)
                if status == "suppressed":
                    journey.suppressions[label] = count
                else:
                    getattr(journey.sends, status)[label] = count
        return JourneysView(journeys=[stats[k] for k in sorted(stats)])

    def inbox(self, user_id: str, limit: int) -> Inbox:
        """The user's delivered in-app messages, newest first (an id merged into
        another user reads that user's inbox)."""
        with self.reading() as reads:
            user_id = reads.canonical_user(user_id)
            rows = reads.inbox(user_id, limit)
        messages = [
            InboxMessage(
                id=r.id,
                journey_id=r.journey_id,
                step=r.step,
                message=r.message,
                content=r.content,
                sent_at=iso(r.sent_at),
            )
            for r in rows
        ]
        return Inbox(user_id=user_id, messages=messages)

    def healthy(self) -> bool:
        """Whether the store file answers a query."""
        try:
            with self.reading() as reads:
                reads.ping()
        except DatabaseError:
            log.exception("health check: the store does not answer")
            return False
        return True

    def report(self) -> StatusView:
        """The daemon's status with the log's last seq and the outbox backlog."""
        with self.reading() as reads:
            last, backlog = reads.last_seq(), reads.backlog()
        daemon = dict(self.status()) if self.status is not None else {}
        return StatusView(last_event_seq=last, outbox_backlog=backlog, daemon=daemon)


def _no_write_key() -> ApiError:
    return ApiError(
        401,
        "unauthorized",
        "no write key: send it as the HTTP Basic user name with an empty password, "
        "or in the body's writeKey field",
        headers=_BASIC_CHALLENGE,
    )


# ---------------------------------------------------------------- the app


def create_app(
    store_path: StoreTarget,
    *,
    write_key: str,
    admin_token: str,
    on_events: Callable[[], None] | None = None,
    status: Callable[[], Mapping[str, Any]] | None = None,
    metrics: Metrics | None = None,
    store: Store | None = None,
    deliveries_secret: str | None = None,
) -> FastAPI:
    """The HTTP API over the store at ``store_path`` (opened, and migrated, now).

    ``store``: write through this open store instead (the daemon's API process
    keeps one for the app and its own reads; writers in other processes, the engine
    process among them, queue on the store's write lock rather than on SQLite's
    busy wait); the app leaves it open at shutdown.

    ``on_events`` is called after new events are committed (not for duplicates);
    ``status`` adds the daemon's own report to ``GET /v1/status``. ``metrics`` lets
    the daemon keep the instruments it observes; by default the app makes its own,
    and either way they are at ``app.state.metrics``. ``deliveries_secret`` signs
    ``POST /v1/deliveries`` (:mod:`journeyc.serve.deliveries`); without one, that
    route refuses every request. Raises ValueError for an empty
    write key or admin token, and :class:`~journeyc.store.errors.StoreError` for a
    file that is not a journeyc store.
    """
    if not write_key:
        raise ValueError("the write key must not be empty")
    if not admin_token:
        raise ValueError("the admin token must not be empty")
    owned = store is None
    store = open_full_store(store_path) if store is None else store
    metrics = metrics if metrics is not None else Metrics(store_path)
    service = _Service(store, write_key, metrics, on_events, status)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            store.close()

    app = _App(
        title="journeyc",
        version=__version__,
        description=__doc__ or "",
        lifespan=lifespan,
        docs_url=None,  # /docs: served by journeyc.serve.ui, its assets included
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.store = store
    app.add_middleware(_UserPaths)
    _add_error_handlers(app, metrics)

    basic = HTTPBasic(
        auto_error=False,
        realm="journeyc",
        description="The write key as user name, empty password (Segment's scheme).",
    )
    bearer = HTTPBearer(auto_error=False, description="The admin token.")

    async def basic_auth(
        credentials: Annotated[HTTPBasicCredentials | None, Security(basic)],
    ) -> bool:
        """True when the header names the write key; False when there is no Basic header."""
        if credentials is None:
            return False
        if credentials.password:
            raise ApiError(
                401,
                "unauthorized",
                "the HTTP Basic password must be empty; the write key is the user name",
                headers=_BASIC_CHALLENGE,
            )
        if not _same(credentials.username, write_key):
            raise ApiError(401, "unauthorized", "wrong write key", headers=_BASIC_CHALLENGE)
        return True

    async def admin_auth(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    ) -> None:
        """Let the request through only with the admin token as a Bearer token."""
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                "send the admin token as Authorization: Bearer TOKEN",
                headers=_BEARER_CHALLENGE,
            )
        if not _same(credentials.credentials, admin_token):
            raise ApiError(401, "unauthorized", "wrong admin token", headers=_BEARER_CHALLENGE)

    read_event = _body_reader(MAX_EVENT_BYTES)
    read_batch = _body_reader(MAX_BATCH_BYTES)

    def track(
        header_ok: Annotated[bool, Depends(basic_auth)],
        raw: Annotated[bytes, Depends(read_event)],
    ) -> Success:
        """Record one ``track`` call (Segment's ``/v1/track``)."""
        return service.ingest("track", raw, header_ok)

    def identify(
        header_ok: Annotated[bool, Depends(basic_auth)],
        raw: Annotated[bytes, Depends(read_event)],
    ) -> Success:
        """Record one ``identify`` call and merge its traits (Segment's ``/v1/identify``)."""
        return service.ingest("identify", raw, header_ok)

    def alias(
        header_ok: Annotated[bool, Depends(basic_auth)],
        raw: Annotated[bytes, Depends(read_event)],
    ) -> Success:
        """Merge ``previousId`` into ``userId`` (Segment's ``/v1/alias``): calls naming
        either id are one user's from now on."""
        return service.ingest("alias", raw, header_ok)

    def batch(
        header_ok: Annotated[bool, Depends(basic_auth)],
        raw: Annotated[bytes, Depends(read_batch)],
    ) -> Success:
        """Record a batch of calls, all or nothing (Segment's ``/v1/batch``)."""
        return service.ingest("batch", raw, header_ok)

    ingest = APIRouter(tags=["ingest"], responses=_ERRORS)
    for paths, endpoint, model in (
        (("/v1/track", "/v1/t"), track, TrackCall),
        (("/v1/identify", "/v1/i"), identify, IdentifyCall),
        (("/v1/alias", "/v1/a"), alias, AliasCall),
        (("/v1/batch",), batch, BatchCall),
    ):
        for i, path in enumerate(paths):
            ingest.add_api_route(
                path,
                endpoint,
                methods=["POST"],
                response_model=Success,
                openapi_extra=_body_doc(model),
                include_in_schema=i == 0,
                operation_id=endpoint.__name__ if i == 0 else None,
            )
    app.include_router(ingest)

    admin = APIRouter(tags=["admin"], dependencies=[Depends(admin_auth)], responses=_ADMIN_ERRORS)

    # {user_id} is one segment of the path _UserPaths rewrote: unquote gives the id.
    @admin.get("/v1/users/{user_id}", responses={404: {"model": ErrorBody}})
    def get_user(user_id: str) -> UserView:
        """A user's traits, running journeys and last actions."""
        return service.user(unquote(user_id))

    @admin.delete("/v1/users/{user_id}")
    def forget_user(user_id: str) -> Forgotten:
        """Forget a user: profile, events, instances, entries, actions and queued messages."""
        return service.forget(unquote(user_id))

    @admin.get("/v1/users/{user_id}/inbox")
    def get_inbox(
        user_id: str, limit: Annotated[int, Query(ge=1, le=500)] = RECENT_ACTIONS
    ) -> Inbox:
        """A user's delivered in-app messages, newest first."""
        return service.inbox(unquote(user_id), limit)

    @admin.get("/v1/journeys")
    def get_journeys() -> JourneysView:
        """Per journey: deployed versions, running instances per step, sends and goals."""
        return service.journeys()

    @admin.get("/v1/status")
    def get_status() -> StatusView:
        """The daemon's report, the log's last seq and the outbox backlog."""
        return service.report()

    app.include_router(admin)
    _add_deliveries(app, DeliveryWebhook(store), deliveries_secret, read_batch, metrics, on_events)
    app.include_router(reports_router(store_path, admin_auth))
    app.include_router(why_router(store_path), tags=["admin"], dependencies=[Depends(admin_auth)])
    ui.mount(app, store_path, admin_token)

    @app.get("/healthz", tags=["operations"], responses={503: {"model": Health}})
    def healthz() -> JSONResponse:
        """200 ``{"ok": true}`` while the store answers, 503 otherwise (no auth)."""
        ok = service.healthy()
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}},
    )
    def prometheus_metrics() -> Response:
        """Prometheus metrics in the text format (no auth)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app


def _add_deliveries(
    app: FastAPI,
    webhook: DeliveryWebhook,
    secret: str | None,
    read_body: Callable[[Request], Awaitable[bytes]],
    metrics: Metrics,
    on_events: Callable[[], None] | None,
) -> None:
    """``POST /v1/deliveries``: providers' reports, signed with ``secret``."""
    signature = APIKeyHeader(
        name=SIGNATURE_HEADER,
        auto_error=False,
        scheme_name="DeliveriesSignature",
        description="t=<unix seconds>,v1=<hex HMAC-SHA256 of '<t>.<body>' under the "
        "deliveries secret> (docs/deliveries.md)",
    )

    @app.post(
        "/v1/deliveries",
        tags=["deliveries"],
        operation_id="deliveries",
        responses=_ERRORS,
        openapi_extra=_body_doc(DeliveriesCall),
    )
    def deliveries(
        header: Annotated[str | None, Security(signature)],
        raw: Annotated[bytes, Depends(read_body)],
    ) -> DeliveriesAccepted:
        """Take providers' reports on sends (delivered, opened, clicked, bounced,
        complained, unsubscribed), signed with the deliveries secret."""
        if secret is None:
            raise ApiError(401, "unauthorized", "this server has no deliveries secret")
        try:
            verify(header, raw, secret, time.time())
        except SignatureError as exc:
            raise ApiError(401, "unauthorized", str(exc)) from None
        body = _decode_json(raw)
        try:
            accepted, new = webhook.receive(body, now_ms())
        except EventError as exc:
            raise ApiError(
                400, "invalid_delivery", "; ".join(str(p) for p in exc.problems), exc.problems
            ) from None
        for d in new:
            metrics.deliveries.labels(d.kind, d.channel or "none").inc()
        if new and on_events is not None:
            try:
                on_events()
            except Exception:
                log.exception("on_events failed after %d deliveries were committed", len(new))
        return accepted


# ---------------------------------------------------------------- paths and methods

_USERS = "/v1/users/"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class _UserPaths:
    """Routes ``/v1/users/…`` by the path as the client wrote it.

    A user id may hold any character, ``/`` and ``%`` too. The server hands the app
    the path decoded, where ``/v1/users/a%2Fb%2Finbox`` (user ``a/b/inbox``) reads as
    the inbox of user ``a/b``. So each segment of the undecoded path is decoded here
    but for ``%`` and ``/``, which stay escaped: the routes' ``{user_id}`` is then
    one segment, which the endpoints unquote.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Rewrite the path of a ``/v1/users/`` request, then pass it on."""
        if scope["type"] == "http" and scope["path"].startswith(_USERS):
            scope = {**scope, "path": _routed_path(scope)}
        await self.app(scope, receive, send)


def _routed_path(scope: Scope) -> str:
    """The path with ``%`` and ``/`` escaped inside each segment as the client sent it."""
    raw = scope.get("raw_path")
    path: str = scope["path"]
    segments = path.split("/")
    if isinstance(raw, bytes):
        written = raw.decode("latin-1").partition("?")[0]
        # Only when the raw path is the path (no proxy prefix or rewrite in between).
        if unquote(written) == path:
            segments = [unquote(seg) for seg in written.split("/")]
    return "/".join(seg.replace("%", "%25").replace("/", "%2F") for seg in segments)


def _allowed_methods(routes: list[BaseRoute], scope: Scope) -> str:
    """Every method some route takes on the request's path, and OPTIONS."""
    # Asked of each route through the public ``matches`` (FastAPI nests routers).
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join([*allowed, "OPTIONS"])


def _add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    ingest_paths = {
        "/v1/track": "track",
        "/v1/t": "track",
        "/v1/identify": "identify",
        "/v1/i": "identify",
        "/v1/batch": "batch",
        "/v1/alias": "alias",
        "/v1/a": "alias",
    }

    def refuse(request: Request, error: ApiError) -> JSONResponse:
        endpoint = ingest_paths.get(request.url.path)
        if endpoint is not None and request.method == "POST":
            outcome = _OUTCOMES.get(error.status, "invalid")
            if error.status >= 500:
                outcome = "unavailable"
            metrics.events_received.labels(endpoint, outcome).inc()
        body = ErrorBody(
            error=error.message,
            code=error.code,
            problems=[ProblemOut(path=p.path, message=p.message) for p in error.problems],
        )
        return JSONResponse(jsonable_encoder(body), status_code=error.status, headers=error.headers)

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return refuse(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        headers = exc.headers
        if exc.status_code == 405:
            # Starlette names the methods of the first route of the path only.
            allow = {"Allow": _allowed_methods(app.router.routes, request.scope)}
            if request.method == "OPTIONS":
                return Response(status_code=200, headers=allow)
            headers = {**(headers or {}), **allow}
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return refuse(request, ApiError(exc.status_code, code, message, headers=headers))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return refuse(request, ApiError(400, "bad_request", "; ".join(parts) or "bad request"))

    async def on_store_busy(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OperationalError)
        log.error("store unavailable: %s", exc)
        error = ApiError(
            503,
            "unavailable",
            "the store is busy or unavailable; retry later",
            headers={"Retry-After": "1"},
        )
        return refuse(request, error)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(OperationalError, on_store_busy)

    async def on_write_lock_busy(request: Request, exc: Exception) -> JSONResponse:
        # Another writer held the store's write lock past [store] lock_timeout:
        # nothing was written, and the client retries rather than hanging.
        assert isinstance(exc, StoreBusyError)
        log.warning("%s", exc)
        error = ApiError(
            503,
            "unavailable",
            "the store is busy; nothing was stored; retry later",
            headers={"Retry-After": str(exc.retry_after_s)},
        )
        return refuse(request, error)

    app.add_exception_handler(StoreBusyError, on_write_lock_busy)
