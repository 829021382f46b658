"""The agents' web panel: server-rendered pages under /panel, static files under /static.

`install_panel(app)` is the one call the composition root makes. Every route of `router` is
guarded by `current_panel_agent` (declared once, on the router); only the log-in page sits
outside it, on `public`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from api.panel import (
    admin,
    approvals,
    auth,
    bulk,
    bundle,
    dashboard,
    intake,
    links,
    macros,
    notifications,
    queue,
    views,
    webhooks,
    workspace,
)
from api.panel.i18n import LazyCatalogs
from api.panel.pages import STATIC_DIR, TEMPLATES_DIR, PanelState, build_environment

PREFIX = "/panel"

router = APIRouter(dependencies=[Depends(auth.current_panel_agent)], include_in_schema=False)
router.include_router(queue.router, prefix=PREFIX)
# Before the workspace, whose /cases/{number} would otherwise take /cases/new.
router.include_router(intake.router, prefix=PREFIX)
router.include_router(workspace.router, prefix=PREFIX)
router.include_router(macros.router, prefix=PREFIX)
router.include_router(links.router, prefix=PREFIX)
router.include_router(notifications.router, prefix=PREFIX)
router.include_router(bulk.router, prefix=PREFIX)
router.include_router(approvals.router, prefix=PREFIX)
router.include_router(dashboard.router, prefix=PREFIX)
router.include_router(webhooks.router, prefix=PREFIX)
router.include_router(admin.router, prefix=PREFIX)
router.include_router(bundle.router, prefix=PREFIX)
router.include_router(auth.account, prefix=PREFIX)
router.include_router(views.router, prefix=PREFIX)


def install_panel(app: FastAPI) -> None:
    """Add the panel to the app: its routes, its static files, its templates and catalogs.
    Idempotent, so a test or an entry point may call it on an app that already has it."""
    if getattr(app.state, "panel", None) is not None:
        return
    # Read by the first page, not now (api/panel/i18n.py).
    catalogs = LazyCatalogs(TEMPLATES_DIR / "i18n")
    state = PanelState(env=build_environment(catalogs), catalogs=catalogs)
    app.state.panel = state
    app.add_exception_handler(auth.LoginRequired, auth.login_redirect)
    app.include_router(auth.public)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


__all__ = ["install_panel", "router"]
