"""The composition root: `create_app(settings)` builds the engine, the rules and the routes.

Nothing is built at import time; `aftersales serve` (api/cli.py) and the tests call this.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api import errors
from api.deps import current_agent
from api.routes import orders, tickets
from api.routes import scripts as scripts_routes
from tickets.config import load_policy
from tickets.db import make_engine, make_sessionmaker
from tickets.models import utcnow
from tickets.scripts import bundled_scripts_dir, load_library
from tickets.settings import Settings

API_PREFIX = "/api/v1"


def create_app(settings: Settings, **overrides: Any) -> FastAPI:
    """The whole HTTP side of the product for these settings."""
    owns_engine = overrides.get("engine") is None
    engine = overrides.pop("engine", None) or make_engine(settings.database_url)
    policy = load_policy(settings.policy_file)
    # A shop override that breaks a check stops the start here, with the file and the reason.
    scripts = overrides.pop("scripts", None) or load_library(
        bundled_scripts_dir(), settings.scripts_dir
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="aftersales",
        version="0.1.0",
        summary="After-sales desk: orders, cases, refunds, SLA clocks.",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = overrides.pop("sessions", None) or make_sessionmaker(engine)
    app.state.policy = policy
    app.state.scripts = scripts
    # The clock every request reads `now` from (tests fix it; nothing else reads the time).
    app.state.clock = overrides.pop("clock", None) or utcnow
    app.state.service_extra = {}
    app.state.sla_view = None
    errors.install(app)

    # Every JSON route needs an agent's bearer token: declared once, on the router.
    v1 = APIRouter(prefix=API_PREFIX, dependencies=[Depends(current_agent)])
    v1.include_router(orders.router)
    v1.include_router(tickets.router)
    v1.include_router(tickets.files)
    v1.include_router(scripts_routes.router)
    app.include_router(v1)

    @app.get("/healthz", tags=["health"])
    def healthz() -> JSONResponse:
        """200 when the database answers, 503 when it does not."""
        try:
            with app.state.sessions() as session:
                session.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            return JSONResponse(
                {"status": "error", "database": f"unreachable: {type(exc).__name__}"},
                status_code=503,
            )
        return JSONResponse({"status": "ok", "database": "ok"})

    return app
