"""The dashboard's pages under ``/ui``: journeys, one journey, users, and the login.

Server-rendered HTML (Jinja2, autoescaped) over :class:`DashboardReads`; charts and
the journey graph are SVG drawn here (:mod:`journeyc.serve.ui.svg`). Every number a
test or a script may compare carries a stable ``data-testid``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from journeyc import __version__
from journeyc.compile import ir
from journeyc.compile.graph import draw
from journeyc.compile.layout import layered_layout
from journeyc.config import Config
from journeyc.engine.actions import iso_ms
from journeyc.fastjson import dumps
from journeyc.reports.build import build_report
from journeyc.reports.model import ArmReport, Comparison, ExperimentReport
from journeyc.serve.times import iso
from journeyc.serve.ui import svg
from journeyc.serve.ui.session import COOKIE, MAX_AGE_S, PATH, Sessions
from journeyc.store.abc import DashboardReads
from journeyc.store.rows import DAY_MS, Deployed, JourneyTotals
from journeyc.why.model import Decision
from journeyc.why.replay import WhyError, explain_user

log = logging.getLogger(__name__)

RANGES = {"7d": 7, "30d": 30, "90d": 90, "all": 0}
DEFAULT_RANGE = "30d"
MAX_TREND_DAYS = 120
MAX_FORM_BYTES = 8192
"""The login form's largest body: a token and a path."""

WHY = {
    "holdout": "held out: this user is in the journey's control group, which gets no messages",
    "no_channel": "no channel could reach the user (no reach rule of the send's channels held)",
    "quiet_hours": "quiet hours in the user's time zone, and the journey skips rather than waits",
    "cap": "the frequency cap was reached",
    "render_error": "the message could not be rendered",
}
"""Why a send was suppressed, for people, by the reason the engine logs."""


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("journeyc.serve.ui", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda n: "—" if n is None else f"{n:,}"
    env.filters["pct"] = lambda x: "—" if x is None else f"{x:.1%}"
    env.filters["when"] = _when
    env.filters["iso"] = iso
    env.filters["pp"] = _points
    env.filters["span"] = _span
    env.filters["p"] = lambda p: "—" if p is None else ("< 0.001" if p < 0.001 else f"{p:.3f}")
    env.filters["val"] = lambda v: v if isinstance(v, str) else dumps(v)
    env.filters["q"] = lambda s: quote(str(s), safe="")
    env.globals["version"] = __version__
    return env


def _when(ms: int | None) -> str:
    if ms is None:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_MS / 1000, UTC).strftime("%b %d")


@dataclass(frozen=True, slots=True)
class Window:
    """The time range a page shows: ``[since, until)`` in epoch ms, by whole days."""

    name: str
    since: int
    until: int

    @property
    def days(self) -> list[int]:
        """The epoch day numbers of the range, capped to the last MAX_TREND_DAYS."""
        first = max(self.since // DAY_MS, self.until // DAY_MS - MAX_TREND_DAYS)
        return list(range(first, self.until // DAY_MS))


@dataclass(frozen=True, slots=True)
class JourneyLine:
    """A row of the journeys page: the deployed journey, its IR, its totals, its trend."""

    d: Deployed
    j: ir.JourneyIR
    t: JourneyTotals
    trend: Markup

    @property
    def conversion(self) -> float | None:
        """Goals per entry of the range."""
        return conversion(self.t.goals, self.t.entries)


def _journey_ir(d: Deployed) -> ir.JourneyIR:
    return ir.JourneyIR.model_validate_json(d.ir_json)


def conversion(goals: int, entries: int) -> float | None:
    """Goals per entry; None without entries."""
    return goals / entries if entries else None


def make_router(reads: DashboardReads, sessions: Sessions | None, live: bool) -> APIRouter:
    """The ``/ui`` routes over ``reads``. ``sessions`` None: no login (``journeyc ui``
    on a local file); ``live``: a daemon's store (else a file, shown as such)."""
    env = _env()
    router = APIRouter(prefix="/ui", include_in_schema=False)

    def page(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
        started = time.perf_counter()
        html = env.get_template(name).render(
            request=request,
            live=live,
            login=sessions is not None,
            store=reads.path,
            store_name=Path(reads.path).name,
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.headers["Server-Timing"] = (
            f"render;dur={(time.perf_counter() - started) * 1e3:.1f}"
        )
        _harden(response)
        return response

    def guarded(
        handler: Callable[..., Response],
    ) -> Callable[..., Response]:
        @functools.wraps(handler)
        def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            if sessions is not None and not sessions.valid(request.cookies.get(COOKIE)):
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", 303)
            return handler(request, *args, **kwargs)

        return run

    def window(name: str | None) -> Window:
        name = name if name in RANGES else DEFAULT_RANGE
        latest = reads.latest_activity()
        end_day = (latest if latest is not None else int(time.time() * 1000)) // DAY_MS + 1
        days = RANGES[name]
        since = (end_day - days) * DAY_MS if days else 0
        return Window(name, since, end_day * DAY_MS)

    # ------------------------------------------------------------ login

    @router.get("/login")
    def login_form(request: Request, next: str = "/ui") -> Response:
        if sessions is None:
            return RedirectResponse("/ui", 303)
        return page("login.html", request, next=_local(next), error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        if sessions is None:
            return RedirectResponse("/ui", 303)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return page("login.html", request, 413, next="/ui", error="The form is too large.")
        form = parse_qs(body.decode("utf-8", "replace"))
        token = form.get("token", [""])[0]
        target = _local(form.get("next", ["/ui"])[0])
        if not sessions.token_ok(token):
            return page(
                "login.html", request, 401, next=target, error="That is not the admin token."
            )
        response = RedirectResponse(target, 303)
        response.set_cookie(
            COOKIE,
            sessions.new(),
            max_age=MAX_AGE_S,
            path=PATH,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    @router.post("/logout")
    def logout() -> Response:
        response = RedirectResponse("/ui/login", 303)
        response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
        return response

    # ------------------------------------------------------------ journeys

    @router.get("")
    @guarded
    def journeys(request: Request) -> Response:
        w = window(request.query_params.get("range"))
        totals = reads.journey_totals(w.since, w.until)
        rows = []
        for d in reads.deployed():
            j = _journey_ir(d)
            t = totals.get(d.journey_id) or JourneyTotals(d.journey_id)
            trend = [t.entries_by_day.get(day, 0) for day in w.days]
            rows.append(
                JourneyLine(d, j, t, svg.sparkline(trend, label=f"entries per day, {d.journey_id}"))
            )
        total = {
            "entries": sum(r.t.entries for r in rows),
            "goals": sum(r.t.goals for r in rows),
            "sends": sum(r.t.sends for r in rows),
            "suppressed": sum(r.t.suppressed for r in rows),
        }
        return page(
            "journeys.html",
            request,
            rows=rows,
            total=total,
            window=w,
            ranges=list(RANGES),
            first_day=_day(w.days[0]) if w.days else "",
            last_day=_day(w.days[-1]) if w.days else "",
        )

    @router.get("/journeys/{journey_id}")
    @guarded
    def journey(request: Request, journey_id: str) -> Response:
        deployed = {d.journey_id: d for d in reads.deployed()}
        d = deployed.get(journey_id)
        if d is None:
            return page("missing.html", request, 404, what=f"no journey {journey_id!r}")
        name = request.query_params.get("range") or "all"
        w = window(name)
        with reads.store() as store:
            r = build_report(
                store,
                journey_id,
                since_ms=None if w.name == "all" else w.since,
                until_ms=None if w.name == "all" else w.until,
            )
        j = _journey_ir(d)
        steps = {s.id: s for s in r.steps}
        counts = {
            s.id: svg.NodeCounts(
                reached=s.reached,
                waiting=s.waiting_now,
                sent=sum(s.sends.values()),
                suppressed=sum(s.suppressed.values()),
            )
            for s in r.steps
        }
        goals = r.goal.conversions if r.goal is not None else 0
        bars = [svg.Bar("Entered", r.entries, "funnel-entered")]
        for i, layer in enumerate(send_layers(j), start=1):
            sent = sum(counts[n].sent for n in layer if n in counts)
            label = " / ".join(_send_name(j, n) for n in layer)
            bars.append(svg.Bar(f"Message {i}: {label}", sent, f"funnel-message-{i}"))
        if r.goal is not None:
            bars.append(svg.Bar(f"Converted ({r.goal.event})", goals, "funnel-converted"))
        return page(
            "journey.html",
            request,
            d=d,
            j=j,
            r=r,
            window=w,
            ranges=list(RANGES),
            goals=goals,
            sends=sum(sum(s.sends.values()) for s in steps.values()),
            suppressed=sum(sum(s.suppressed.values()) for s in steps.values()),
            graph=svg.journey_graph(j, counts, r.entries),
            funnel=svg.funnel(bars),
            ab=_ab_rows(r.experiment),
            report_kinds=sorted({k for c in r.delivery for k in c.feedback}),
        )

    # ------------------------------------------------------------ users

    @router.get("/users")
    @guarded
    def users(request: Request) -> Response:
        q = (request.query_params.get("q") or "").strip()
        hits = reads.find_users(q) if q else []
        if len(hits) == 1:
            return RedirectResponse(f"/ui/users/{quote(hits[0].user_id, safe='')}", 303)
        return page("users.html", request, q=q, hits=hits)

    @router.get("/users/{user_id:path}")
    @guarded
    def user(request: Request, user_id: str) -> Response:
        record = reads.user(user_id)
        if record is None:
            return page("missing.html", request, 404, what=f"no user {user_id!r}")
        decisions, replay_note = _decisions(request, reads, record.user_id, live)
        timeline = [
            {
                "a": a,
                "why": _why(a.action, a.detail),
                "what": _what(a.action, a.detail),
                "d": decisions.get((a.journey_id, a.step, iso_ms(a.at)))
                if a.action in ("send", "suppress")
                else None,
            }
            for a in record.actions
        ]
        now_in = {(x.journey_id, x.entry_no): x for x in record.live}
        return page(
            "user.html",
            request,
            u=record,
            timeline=timeline,
            now_in=now_in,
            replay_note=replay_note,
        )

    return router


def _send_name(j: ir.JourneyIR, node_id: str) -> str:
    """A send step's name (``as NAME``), else its first message."""
    node = j.nodes[node_id]
    if node_id[0].isdigit() and isinstance(node, ir.SendNode):
        return node.targets[0].message or "inline message"
    return node_id


def send_layers(j: ir.JourneyIR) -> list[list[str]]:
    """The journey's send steps by layer of its drawing (sends side by side are
    alternatives, such as the arms of a branch): the steps of its funnel."""
    places = layered_layout(draw(j, prefix="f"))
    layers: dict[int, list[str]] = {}
    for i, (node_id, node) in enumerate(j.nodes.items()):
        place = places.get(f"fn{i}")
        if isinstance(node, ir.SendNode) and place is not None:
            layers.setdefault(place.layer, []).append(node_id)
    return [layers[k] for k in sorted(layers)]


@dataclass(frozen=True, slots=True)
class ABRow:
    """A row of the A/B table: a group, its rate, and its comparison with the
    baseline (None for the baseline itself)."""

    arm: ArmReport
    vs: Comparison | None
    baseline: bool


def _ab_rows(experiment: ExperimentReport | None) -> list[ABRow]:
    if experiment is None:
        return []
    by_arm = {c.arm: c for c in experiment.comparisons}
    return [ABRow(a, by_arm.get(a.name), a.name == experiment.baseline) for a in experiment.arms]


def _span(seconds: float) -> str:
    """A duration for people: minutes, hours or days."""
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _points(x: float | None, sign: bool = True) -> str:
    """A difference of rates in percentage points: ``+2.1 pp``."""
    if x is None:
        return "—"
    return f"{x * 100:+.1f} pp".replace("-", "−") if sign else f"{x * 100:.1f} pp"


def _decisions(
    request: Request, reads: DashboardReads, user_id: str, live: bool
) -> tuple[dict[tuple[str | None, str | None, str], Decision], str | None]:
    """The why-trace's send decisions of the user by (journey, step, time), and a
    note when there is none or the replay differs from the store (journeyc.why)."""
    config = getattr(request.app.state, "config", None)
    now_ms = int(time.time() * 1000) if live else None
    try:
        with reads.store() as store:
            report = explain_user(
                store,
                user_id,
                config=config if isinstance(config, Config) else None,
                now_ms=now_ms,
            )
    except WhyError as exc:
        return {}, f"No why-trace: {exc}"
    except Exception:
        # The why-trace explains the timeline; a replay that breaks (a store made by
        # an older journeyc, say) must not take the user's page down with it.
        log.exception("why-trace of %r failed", user_id)
        return {}, "No why-trace: the replay failed (see the server's log)."
    found: dict[tuple[str | None, str | None, str], Decision] = {
        (j.journey, d.step, d.at): d
        for j in report.journeys
        for d in j.decisions
        if d.kind == "send"
    }
    note = None
    if not report.agrees:
        note = (
            f"The replay differs from the store in {len(report.mismatches)} place(s); "
            "the why of those actions may be missing (docs/why.md)."
        )
    return found, note


def _what(action: str, detail: dict[str, Any]) -> str:
    if action == "send":
        return f"{detail.get('channel', '?')} → {detail.get('message') or 'inline message'}"
    if action in ("exit", "suppress"):
        return str(detail.get("reason", ""))
    if action in ("set", "unset"):
        return str(detail.get("attr", ""))
    if action == "track":
        return str(detail.get("event", ""))
    return ""


def _why(action: str, detail: dict[str, Any]) -> str:
    """The reason of a send or a suppression, for people."""
    if action == "suppress":
        reason = str(detail.get("reason", ""))
        text = WHY.get(reason, reason)
        return f"{text}: {detail['error']}" if detail.get("error") else text
    if action == "send":
        content = detail.get("content")
        subject = ""
        if isinstance(content, dict):
            subject = str(content.get("subject") or content.get("title") or "")
        channel = detail.get("channel", "?")
        return f"first reachable channel: {channel}" + (f" · “{subject}”" if subject else "")
    return ""


def _local(target: str) -> str:
    """``target`` if it is a dashboard path, else ``/ui``: no open redirect."""
    return target if target.startswith("/ui") and "//" not in target else "/ui"


def _harden(response: Response) -> None:
    """No framing, no sniffing, and scripts, styles and images from this server only."""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
        " frame-ancestors 'none'; form-action 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
