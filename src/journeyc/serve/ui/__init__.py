"""The dashboard (``/ui``) and the API docs (``/docs``, Swagger UI), every asset served
from the package: machines without internet see whole pages. (FastAPI's ``/redoc``
is not served: ReDoc's bundle fetches its logo from a CDN.)

:func:`mount` adds both to the daemon's app; :func:`create_app` makes the read-only
app of ``journeyc ui --db FILE``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from journeyc import __version__
from journeyc.serve.ui.pages import make_router
from journeyc.serve.ui.session import Sessions
from journeyc.store.abc import DashboardReads
from journeyc.store.open import dashboard_reads

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = "/docs/assets"


def swagger_assets() -> Path:
    """The folder of Swagger UI's built files, from the fastapi-offline package (MIT;
    Swagger UI itself is Apache-2.0)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def mount(app: FastAPI, store_path: Path | str, admin_token: str) -> None:
    """Serve the dashboard over the daemon's store at ``store_path`` (read-only, behind
    a login with ``admin_token``) and the API docs on ``app`` (made with
    ``docs_url=None, redoc_url=None``)."""
    _mount_dashboard(app, dashboard_reads(store_path), Sessions(admin_token), live=True)
    _mount_docs(app)


def _mount_dashboard(
    app: FastAPI, reads: DashboardReads, sessions: Sessions | None, live: bool
) -> None:
    app.include_router(make_router(reads, sessions, live))
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")


def _mount_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) with its scripts from the package; the app must be made
    with ``docs_url=None, redoc_url=None``."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_assets()), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} API",
                swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            )
        )


def _local_only(page: HTMLResponse) -> HTMLResponse:
    """The page with a policy that keeps the browser on this server (FastAPI's page
    starts Swagger UI with an inline script)."""
    page.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline';"
        " style-src 'self' 'unsafe-inline'; worker-src 'self' blob:; frame-ancestors 'none'"
    )
    return page


def create_app(store_path: Path | str, admin_token: str | None = None) -> FastAPI:
    """The dashboard alone over a store file, read-only (``journeyc ui``); with no
    ``admin_token``, no login. Raises StoreError for a file that is not a store."""
    reads = dashboard_reads(store_path)
    reads.check()
    app = FastAPI(
        title="journeyc dashboard",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    sessions = Sessions(admin_token) if admin_token else None
    _mount_dashboard(app, reads, sessions, live=False)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui", 303)

    return app
